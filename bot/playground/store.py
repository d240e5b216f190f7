"""The playground's conversations in the store: who is in the org, and the messages.

Conversations are ``dm:<person id>`` (a person and the bot) and ``team:<team id>`` (the
team's channel). A message with ``visible_to`` set is ephemeral: only that person sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update

from bot.reply import Reply
from bot.runtime import Runtime
from bot.store.tables import Person, PlaygroundMessage, Team

HISTORY = 200  # messages kept on screen per conversation


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    email: str
    team_id: int | None
    roles: tuple[str, ...]  # employee | manager | admin
    manager_id: int | None
    timezone: str | None


def _member(p: Person, is_manager: bool) -> Member:
    roles = tuple(r for r, on in (("admin", p.is_admin), ("manager", is_manager)) if on)
    return Member(
        id=p.id,
        name=p.name,
        email=p.email,
        team_id=p.team_id,
        roles=roles or ("employee",),
        manager_id=p.manager_id,
        timezone=p.timezone,
    )


@dataclass(frozen=True)
class Channel:
    team_id: int
    key: str
    name: str

    @property
    def conversation(self) -> str:
        return f"team:{self.team_id}"


async def members(rt: Runtime) -> list[Member]:
    async with rt.db.reader() as s:
        people = (await s.scalars(select(Person).where(Person.active).order_by(Person.name))).all()
    managers = {p.manager_id for p in people if p.manager_id}
    return [_member(p, p.id in managers) for p in people]


async def channels(rt: Runtime) -> list[Channel]:
    async with rt.db.reader() as s:
        teams = (await s.scalars(select(Team).where(Team.active).order_by(Team.id))).all()
    return [Channel(team_id=t.id, key=t.key, name=t.name) for t in teams]


async def member(rt: Runtime, person_id: int) -> Member | None:
    async with rt.db.reader() as s:
        p = await s.get(Person, person_id)
        if p is None or not p.active:
            return None
        reports = await s.scalar(
            select(Person.id).where(Person.manager_id == p.id, Person.active).limit(1)
        )
    return _member(p, reports is not None)


async def names(rt: Runtime, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    async with rt.db.reader() as s:
        return dict(
            (await s.execute(select(Person.id, Person.name).where(Person.id.in_(ids)))).all()
        )


async def post(
    rt: Runtime, conversation: str, *, author: str, reply: Reply, visible_to: int | None
) -> int:
    now = rt.now()
    async with rt.db.session() as s:
        row = PlaygroundMessage(
            conversation=conversation,
            author=author,
            visible_to=visible_to,
            payload=reply.to_json(),
            created_at=now,
            updated_at=now,
        )
        s.add(row)
        await s.flush()
        return int(row.id)


def _visible(viewer: int) -> Any:
    return or_(PlaygroundMessage.visible_to.is_(None), PlaygroundMessage.visible_to == viewer)


async def visible_messages(rt: Runtime, conversation: str, viewer: int) -> list[PlaygroundMessage]:
    async with rt.db.reader() as s:
        rows = (
            await s.scalars(
                select(PlaygroundMessage)
                .where(PlaygroundMessage.conversation == conversation, _visible(viewer))
                .order_by(PlaygroundMessage.id.desc())
                .limit(HISTORY)
            )
        ).all()
    return list(reversed(rows))


async def visible_message(
    rt: Runtime, message_id: int, conversation: str, viewer: int
) -> PlaygroundMessage | None:
    async with rt.db.reader() as s:
        return await s.scalar(
            select(PlaygroundMessage).where(
                PlaygroundMessage.id == message_id,
                PlaygroundMessage.conversation == conversation,
                _visible(viewer),
            )
        )


async def replace(rt: Runtime, message_id: int, reply: Reply) -> None:
    async with rt.db.session() as s:
        await s.execute(
            update(PlaygroundMessage)
            .where(PlaygroundMessage.id == message_id)
            .values(payload=reply.to_json(), updated_at=rt.now())
        )


async def latest_ids(rt: Runtime, conversations: list[str], viewer: int) -> dict[str, int]:
    """The newest message id per conversation, as ``viewer`` sees it (for unread dots)."""
    async with rt.db.reader() as s:
        rows = (
            await s.execute(
                select(PlaygroundMessage.conversation, func.max(PlaygroundMessage.id))
                .where(PlaygroundMessage.conversation.in_(conversations), _visible(viewer))
                .group_by(PlaygroundMessage.conversation)
            )
        ).all()
    return {conv: int(top) for conv, top in rows if top is not None}
