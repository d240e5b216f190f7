"""Slack user -> person: by stored id, else users.info's email once, then stored."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select, update

from bot.directory import PersonView, person_by_slack_id
from bot.runtime import Runtime
from bot.store.tables import Person

log = logging.getLogger("tokencoach.slack")
_UNKNOWN: dict[str, float] = {}  # user id -> when we last failed to match (don't hammer users.info)
UNKNOWN_TTL = 300.0


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
    async with rt.db.session() as s:
        person = await s.scalar(select(Person).where(Person.email == email, Person.active))
        if person is None:
            _UNKNOWN[user_id] = time.monotonic()
            return None
        values: dict[str, object] = {"slack_user_id": user_id}
        if not person.timezone and user.get("tz"):
            values["timezone"] = user["tz"]
        await s.execute(update(Person).where(Person.id == person.id).values(**values))
        await s.refresh(person)
        return PersonView.of(person)


async def slack_id_for(rt: Runtime, client: AsyncWebClient, person_id: int) -> str | None:
    """A person's Slack id for delivery: stored, else users.lookupByEmail once."""
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
    user_id = (found.get("user") or {}).get("id")
    if user_id:
        async with rt.db.session() as s:
            await s.execute(
                update(Person)
                .where(Person.id == person_id, Person.slack_user_id.is_(None))
                .values(slack_user_id=user_id)
            )
    return user_id
