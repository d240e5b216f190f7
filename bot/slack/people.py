"""Slack user -> person: by stored id, else users.info's email once, then stored.

Matching by email binds a Slack account to a person (their DMs, their approvals), so
the account must be one the company vouches for. Refused, audited, and not linked:
- an account of another workspace (Slack Connect, a shared channel): its ``team_id``
  (or Enterprise Grid organization) must be the bot's own workspace, or one listed in
  ``slack.allowed_team_ids``;
- a deactivated account (``deleted``) or a guest (``is_restricted``,
  ``is_ultra_restricted``): guests can be given any email address by whoever invites them;
- a person already linked to another Slack account: the link is not moved (it would
  redirect that person's DMs and approval cards); an admin fixes it in the directory.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select, update

from bot import audit
from bot.directory import PersonView, person_by_slack_id
from bot.runtime import Runtime
from bot.store.tables import Person

log = logging.getLogger("tokencoach.slack")
_UNKNOWN: dict[str, float] = {}  # user id -> when we last failed to match (don't hammer users.info)
UNKNOWN_TTL = 300.0
_OWN_TEAM: dict[str, str] = {}  # bot token -> its workspace id (auth.test)


async def _allowed_teams(rt: Runtime, client: AsyncWebClient) -> set[str]:
    allowed = set(rt.config.slack.allowed_team_ids)
    token = rt.env.slack_bot_token or ""
    if token not in _OWN_TEAM:
        try:
            _OWN_TEAM[token] = str((await client.auth_test()).get("team_id") or "")
        except SlackApiError as exc:
            log.warning("auth.test failed", extra={"error": exc.response.get("error")})
            return allowed  # not cached: asked again next time
    return allowed | {_OWN_TEAM[token]} - {""}


async def account_problem(rt: Runtime, client: AsyncWebClient, user: dict[str, Any]) -> str | None:
    """Why this Slack account may not be bound to a person by its email, or None."""
    if user.get("deleted"):
        return "the Slack account is deactivated"
    if user.get("is_restricted") or user.get("is_ultra_restricted"):
        return "the Slack account is a guest account"
    if user.get("is_bot"):
        return "the Slack account is a bot"
    grid = user.get("enterprise_user") or {}
    homes = {user.get("team_id"), grid.get("enterprise_id"), *(grid.get("teams") or [])}
    if not homes & await _allowed_teams(rt, client):
        return "the Slack account belongs to another workspace"
    return None


async def _refuse(rt: Runtime, user_id: str, reason: str, **detail: Any) -> None:
    log.warning("Slack account not linked", extra={"slack_user": user_id, "reason": reason})
    async with rt.db.session() as s:
        await audit.record(s, at=rt.now(), action="slack.link_refused", actor="slack",
                           subject=f"slack_user:{user_id}", detail={"reason": reason, **detail})


async def resolve(rt: Runtime, client: AsyncWebClient, user_id: str) -> PersonView | None:
    found = await person_by_slack_id(rt, user_id)  # one read on the driver: every request
    if found is not None:
        return found
    if time.monotonic() - _UNKNOWN.get(user_id, -UNKNOWN_TTL) < UNKNOWN_TTL:
        return None
    try:
        info = await client.users_info(user=user_id)
    except SlackApiError as exc:
        log.warning(
            "users.info failed", extra={"slack_user": user_id, "error": exc.response.get("error")}
        )
        _UNKNOWN[user_id] = time.monotonic()
        return None
    user = info.get("user") or {}
    email = ((user.get("profile") or {}).get("email") or "").strip().lower()
    if not email:
        _UNKNOWN[user_id] = time.monotonic()
        return None
    problem = await account_problem(rt, client, user)
    if problem:
        _UNKNOWN[user_id] = time.monotonic()
        await _refuse(rt, user_id, problem, email=email, team_id=user.get("team_id"))
        return None
    async with rt.db.session() as s:
        person = await s.scalar(select(Person).where(Person.email == email, Person.active))
        if person is None:
            _UNKNOWN[user_id] = time.monotonic()
            return None
        if person.slack_user_id and person.slack_user_id != user_id:
            linked = person.slack_user_id
        else:
            values: dict[str, object] = {"slack_user_id": user_id}
            if not person.timezone and user.get("tz"):
                values["timezone"] = user["tz"]
            await s.execute(update(Person).where(Person.id == person.id).values(**values))
            await s.refresh(person)
            return PersonView.of(person)
    _UNKNOWN[user_id] = time.monotonic()
    await _refuse(rt, user_id, "the person is already linked to another Slack account",
                  email=email, linked_to=linked)
    return None


async def slack_id_for(rt: Runtime, client: AsyncWebClient, person_id: int) -> str | None:
    """A person's Slack id for delivery: stored, else users.lookupByEmail once (the same
    account checks as above before it is stored)."""
    async with rt.db.reader() as s:
        person = await s.get(Person, person_id)
    if person is None:
        return None
    if person.slack_user_id:
        return person.slack_user_id
    try:
        found = await client.users_lookupByEmail(email=person.email)
    except SlackApiError as exc:
        if exc.response.get("error") == "users_not_found":
            return None
        raise
    user = found.get("user") or {}
    user_id = user.get("id")
    if not user_id:
        return None
    problem = await account_problem(rt, client, user)
    if problem:
        await _refuse(rt, user_id, problem, email=person.email, team_id=user.get("team_id"))
        return None
    async with rt.db.session() as s:
        await s.execute(
            update(Person)
            .where(Person.id == person_id, Person.slack_user_id.is_(None))
            .values(slack_user_id=user_id)
        )
    return str(user_id)
