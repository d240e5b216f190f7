"""What the playground's endpoints do, apart from HTTP: speak, click, read, run jobs.

Commands and clicks go through the same ``handle_command`` / ``handle_action`` as Slack
and Teams, as ``Actor(platform="playground", platform_user_id=<person id>)``. Results are
applied the way the Slack adapter applies them: ``update`` replaces the clicked message
in place, ``reply`` is a private message to the clicker, ``form`` opens a form.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.directory import person_by_id
from bot.outbox import drain
from bot.playground import render, store
from bot.playground.simulation import Unavailable, Worlds
from bot.playground.store import Member
from bot.reply import ActionResult, Form, Reply
from bot.runtime import Runtime
from bot.scheduling.runner import RunOutcome, run_due
from bot.store.tables import OutboxMessage, PlaygroundMessage
from bot.store.types import MAX_ROW_ID
from bot.timeutil import as_utc, parse_at
from handlers import handle_action, handle_command
from handlers.context import Actor, Ctx

MAX_TEXT = 4000
MAX_FIELD = 5000
COMMAND_WORDS = ("tokens", "token")


class Refused(Exception):
    """A request the playground will not act on; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Where:
    """Who is acting, and in which conversation."""

    viewer: Member
    conversation: str

    @property
    def in_channel(self) -> bool:
        return self.conversation.startswith("team:")


# --- who and where ---------------------------------------------------------------------


async def where(rt: Runtime, body: dict[str, Any]) -> Where:
    """Check ``as`` (a person in the directory) and ``conversation`` (their DM or a channel)."""
    person_id = body.get("as")
    if not isinstance(person_id, int) or isinstance(person_id, bool):
        raise Refused("pick who you are first")
    if not 0 < person_id <= MAX_ROW_ID:
        raise Refused("no such person in the directory", 404)
    viewer = await store.member(rt, person_id)
    if viewer is None:
        raise Refused("no such person in the directory", 404)
    conversation = str(body.get("conversation") or f"dm:{viewer.id}")
    if conversation == f"dm:{viewer.id}":
        return Where(viewer, conversation)
    if conversation.startswith("team:") and conversation in {
        c.conversation for c in await store.channels(rt)
    }:
        return Where(viewer, conversation)
    raise Refused("you can only read your own DM and the team channels", 403)


async def actor_for(rt: Runtime, w: Where) -> Actor:
    async with rt.db.reader() as s:
        person = await person_by_id(s, w.viewer.id)
    return Actor(
        person=person,
        platform="playground",
        platform_user_id=str(w.viewer.id),
        in_channel=w.in_channel,
    )


# --- reading ---------------------------------------------------------------------------


def chart_path(chart_id: str) -> str:
    """Charts are served from the store the page shows (the real one or a simulation's)."""
    return f"/playground/charts/{chart_id}.png"


def etag(row: PlaygroundMessage) -> str:
    data = json.dumps(row.payload, sort_keys=True, default=str)
    stamp = as_utc(row.updated_at).isoformat()
    return hashlib.blake2b(f"{stamp}|{data}".encode(), digest_size=8).hexdigest()


def _author_id(row: PlaygroundMessage) -> int | None:
    """'person:<id>' -> id; None for the bot."""
    kind, _, ident = row.author.partition(":")
    return int(ident) if kind == "person" and ident.isdigit() else None


def _time_label(rt: Runtime, at: datetime, tz: str | None) -> str:
    return as_utc(at).astimezone(ZoneInfo(tz or rt.tz)).strftime("%b %-d, %H:%M")


def _message_html(
    rt: Runtime, row: PlaygroundMessage, names: dict[int, str], tz: str | None
) -> str:
    is_bot = row.author == "bot"
    reply = Reply.from_json(row.payload)
    if is_bot:
        author = "tokencoach"
        body = render.reply_html(reply, chart_path)
    else:
        author = names.get(_author_id(row) or 0, "someone")
        body = render.user_text_html(reply.text)
    view = render.MessageView(
        id=int(row.id),
        etag=etag(row),
        author=author,
        is_bot=is_bot,
        private=row.visible_to is not None,
        time=_time_label(rt, row.created_at, tz),
        edited=as_utc(row.updated_at) != as_utc(row.created_at),
        body=body,
    )
    return render.message_html(view)


async def read(rt: Runtime, w: Where, known: dict[str, str]) -> dict[str, Any]:
    """The conversation as ``w.viewer`` sees it; HTML only for messages the page lacks."""
    rows = await store.visible_messages(rt, w.conversation, w.viewer.id)
    changed = [row for row in rows if known.get(str(row.id)) != etag(row)]
    names = await store.names(rt, {_author_id(row) or 0 for row in changed})
    convs = [f"dm:{w.viewer.id}"] + [c.conversation for c in await store.channels(rt)]
    return {
        "ids": [int(row.id) for row in rows],
        "messages": [
            {
                "id": int(row.id),
                "etag": etag(row),
                "html": _message_html(rt, row, names, w.viewer.timezone),
            }
            for row in changed
        ],
        "latest": await store.latest_ids(rt, convs, w.viewer.id),
    }


# --- speaking and clicking -------------------------------------------------------------


def is_command(text: str) -> bool:
    words = text.split()
    return bool(words) and words[0].lower().lstrip("/") in COMMAND_WORDS


def form_payload(form: Form, message_id: int | None) -> dict[str, Any]:
    return {"html": render.form_html(form), "message_id": message_id}


async def say(rt: Runtime, w: Where, text: str) -> dict[str, Any]:
    """Something typed: in the DM every line is a command (as in Teams); in a channel
    `/tokens …` is a command and anything else is an ordinary message to the channel."""
    text = text.strip()[:MAX_TEXT]
    if not text:
        raise Refused("type something first")
    if w.in_channel and not is_command(text):
        return await _chat(rt, w, text)
    # Like a slash command in a channel, what was typed is only shown to its author (a
    # DM is only theirs anyway); the answer is ephemeral everywhere.
    await _typed(rt, w, text, private=w.in_channel)
    result = await handle_command(Ctx(rt, await actor_for(rt, w)), text)
    if isinstance(result, Form):
        return {"ok": True, "form": form_payload(result, None)}
    await _private(rt, w, result)
    return {"ok": True}


async def _chat(rt: Runtime, w: Where, text: str) -> dict[str, Any]:
    """A line in a channel that is not `/tokens …`: shared with the channel, unless it
    looks like some other slash command (then only its author sees it, and why)."""
    other_command = text.startswith("/")
    await _typed(rt, w, text, private=other_command)
    if other_command:
        await _private(
            rt, w, Reply(text="Only `/tokens …` commands work here. Try `/tokens help`.")
        )
    return {"ok": True}


async def _typed(rt: Runtime, w: Where, text: str, *, private: bool) -> int:
    return await store.post(
        rt,
        w.conversation,
        author=f"person:{w.viewer.id}",
        reply=Reply(text=text),
        visible_to=w.viewer.id if private else None,
    )


async def _private(rt: Runtime, w: Where, reply: Reply) -> int:
    return await store.post(rt, w.conversation, author="bot", reply=reply, visible_to=w.viewer.id)


def _form_values(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise Refused("form values must be an object")
    return {
        str(k)[:100]: str(v)[:MAX_FIELD] for k, v in raw.items() if isinstance(v, str | int | float)
    }


async def act(rt: Runtime, w: Where, body: dict[str, Any]) -> dict[str, Any]:
    """A button click (``message_id`` is where the button was) or a form submission."""
    action = str(body.get("action") or "")[:255]
    if not action:
        raise Refused("which action?")
    value = str(body.get("value") or "")[:2000]
    message_id = body.get("message_id")
    row = None
    if message_id is not None:
        if not isinstance(message_id, int) or isinstance(message_id, bool) \
                or not 0 < message_id <= MAX_ROW_ID:
            raise Refused("message_id must be a message's number")
        row = await store.visible_message(rt, message_id, w.conversation, w.viewer.id)
        if row is None:
            raise Refused("that message is not in this conversation", 404)
    result = await handle_action(
        Ctx(rt, await actor_for(rt, w)), action, value, _form_values(body.get("form"))
    )
    return await apply_result(rt, w, result, row.id if row else None)


async def apply_result(
    rt: Runtime, w: Where, result: ActionResult, message_id: int | None
) -> dict[str, Any]:
    if result.errors:
        return {"ok": False, "errors": dict(result.errors)}
    if result.update is not None:
        if message_id is not None:
            await store.replace(rt, message_id, result.update)
        else:  # a command-level form has no message to replace: show it privately
            await _private(rt, w, result.update)
    if result.reply is not None:
        await _private(rt, w, result.reply)
    out: dict[str, Any] = {"ok": True}
    if result.form is not None:
        out["form"] = form_payload(result.form, message_id)
    return out


# --- the directory and the clock -------------------------------------------------------


async def directory(rt: Runtime) -> dict[str, Any]:
    people = await store.members(rt)
    chans = await store.channels(rt)
    teams = [
        {
            "id": c.team_id,
            "key": c.key,
            "name": c.name,
            "conversation": c.conversation,
            "people": [_person(m) for m in _ordered(people, c.team_id)],
        }
        for c in chans
    ]
    no_team = [_person(m) for m in _ordered(people, None)]
    if no_team:
        teams.append(
            {"id": None, "key": "", "name": "No team", "conversation": None, "people": no_team}
        )
    return {
        "org": rt.config.org.name,
        "teams": teams,
        "clock": clock(rt),
        "suggestion": _suggestion(people),
    }


def _ordered(people: list[Member], team_id: int | None) -> list[Member]:
    # Managers and admins first: they are who you switch to for approvals.
    return sorted(
        (m for m in people if m.team_id == team_id),
        key=lambda m: (m.roles == ("employee",), m.name),
    )


def _person(m: Member) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "email": m.email, "roles": list(m.roles)}


def _suggestion(people: list[Member]) -> dict[str, Any] | None:
    """An employee with a manager, to suggest the approval round trip on an empty page."""
    by_id = {m.id: m for m in people}
    for m in sorted(people, key=lambda m: m.id):  # app.yaml order: the demo's own example
        boss = by_id.get(m.manager_id or 0)
        if m.roles == ("employee",) and boss is not None:
            return {"employee": _person(m), "manager": _person(boss)}
    return None


def clock(rt: Runtime) -> dict[str, Any]:
    now = rt.now()
    local = as_utc(now).astimezone(ZoneInfo(rt.tz))
    return {
        "iso": as_utc(now).isoformat(),
        "label": local.strftime("%a %b %-d %Y, %H:%M"),
        "local": local.strftime("%Y-%m-%dT%H:%M"),
        "tz": rt.tz,
        "simulated": rt.simulated,
    }


def _outcome(o: RunOutcome) -> dict[str, Any]:
    detail = o.error if not o.ok else json.dumps(o.result or {}, default=str, sort_keys=True)
    return {
        "job": o.job,
        "period": o.period,
        "ok": o.ok,
        "late": o.late,
        "detail": (detail or "")[:300],
    }


async def run_jobs(worlds: Worlds, at_text: str | None) -> dict[str, Any]:
    """`jobs run-due` from the page: run what is due now and deliver what that queued.
    With a time ("As if it were"), first move into a simulation at that time (a copy of
    the store; see bot/playground/simulation.py): the real store is never touched."""
    rt = worlds.rt
    if at_text:
        try:
            at = parse_at(at_text, rt.tz)
        except ValueError as exc:
            raise Refused(f"not a date and time: {at_text[:40]}") from exc
        try:
            rt = await worlds.go_to(at)
        except Unavailable as exc:
            raise Refused(str(exc), 409) from None
    frozen = rt.frozen_at(rt.now())  # one clock for the jobs and the delivery after them
    outcomes = await run_due(frozen)
    await drain(frozen)
    # The background sender may have delivered some of it first: count by what this run
    # queued (every row it wrote carries its frozen time).
    async with frozen.db.reader() as s:
        rows = await s.execute(
            select(OutboxMessage.status, func.count())
            .where(
                OutboxMessage.platform == "playground",
                OutboxMessage.created_at == frozen.now(),
            )
            .group_by(OutboxMessage.status)
        )
        sent: dict[str, int] = {status: n for status, n in rows}
    return {
        "clock": clock(frozen),
        "as_if": frozen.simulated,
        "ran": [_outcome(o) for o in outcomes if o.ran],
        "delivered": sent.get("sent", 0),
        "failed": sent.get("failed", 0) + sent.get("unreachable", 0),
    }


async def back_to_now(worlds: Worlds) -> dict[str, Any]:
    """Leave simulated time: the copy is thrown away, the real store is shown again."""
    discarded = await worlds.back_to_now()
    return {"ok": True, "discarded": discarded, "clock": clock(worlds.rt)}
