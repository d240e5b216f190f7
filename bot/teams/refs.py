"""Where the bot can reach people and team channels proactively (``conversation_refs``).

Rows are keyed ``user:<teams user id>`` (one per person: their 1:1 chat once known, else
what is needed to open one) and ``channel:<channel id>`` (a team channel, linked to a
Team whose ``teams_channel_id`` names it or its team). The stored reference is our own
small JSON, not an SDK object: botbuilder drops the tenant from its references, and
Teams needs the tenant to open a 1:1 chat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from bot.outbox import reopen_unreachable
from bot.runtime import Runtime
from bot.store.tables import ConversationRef, Team

PLATFORM = "teams"


@dataclass(frozen=True)
class Where:
    """What a Teams activity says about where it came from."""

    service_url: str
    tenant_id: str | None
    bot_id: str
    bot_name: str | None
    conversation_id: str
    conversation_type: str  # personal | channel | groupChat
    channel_id: str | None  # a team channel (channelData.channel.id)
    team_id: str | None  # the Teams team (channelData.team.id)

    @property
    def personal(self) -> bool:
        return self.conversation_type == "personal"

    def base(self) -> dict[str, Any]:
        return {"service_url": self.service_url, "channel_id": "msteams",
                "tenant_id": self.tenant_id, "bot": {"id": self.bot_id, "name": self.bot_name}}


def where_of(reference: dict[str, Any]) -> Where:
    """A stored reference as the place to send to."""
    conversation = reference.get("conversation") or {}
    bot = reference.get("bot") or {}
    return Where(service_url=reference["service_url"], tenant_id=reference.get("tenant_id"),
                 bot_id=bot.get("id", ""), bot_name=bot.get("name"),
                 conversation_id=conversation.get("id", ""),
                 conversation_type=conversation.get("type", "personal"),
                 channel_id=conversation.get("id") if conversation.get("type") == "channel"
                 else None, team_id=reference.get("team"))


def user_key(user_id: str) -> str:
    return f"user:{user_id}"


def channel_key(channel_id: str) -> str:
    return f"channel:{channel_id}"


async def _upsert(rt: Runtime, key: str, reference: dict[str, Any], person_id: int | None,
                  team_id: int | None) -> None:
    values = dict(platform=PLATFORM, key=key, person_id=person_id, team_id=team_id,
                  reference=reference, active=True, retired_reason=None, updated_at=rt.now())
    stmt = rt.db.insert(ConversationRef).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["platform", "key"],
        set_={k: stmt.excluded[k] for k in ("person_id", "team_id", "reference", "active",
                                            "retired_reason", "updated_at")})
    async with rt.db.session() as s:
        await s.execute(stmt)
        if person_id is not None:
            await reopen_unreachable(s, rt, platform=PLATFORM, target_type="person",
                                     target_id=person_id)
        if team_id is not None:
            await reopen_unreachable(s, rt, platform=PLATFORM, target_type="team",
                                     target_id=team_id)


async def _existing(rt: Runtime, key: str) -> ConversationRef | None:
    async with rt.db.reader() as s:
        return await s.scalar(select(ConversationRef).where(
            ConversationRef.platform == PLATFORM, ConversationRef.key == key))


async def remember_user(rt: Runtime, where: Where, *, user_id: str, aad: str | None,
                        name: str | None, person_id: int | None) -> None:
    """Store or refresh a user's reference. A 1:1 conversation, once known, is kept when
    the user later speaks in a channel; a retired reference comes back to life."""
    old = await _existing(rt, user_key(user_id))
    conversation = {"id": where.conversation_id, "type": "personal"} if where.personal else \
        (old.reference.get("conversation") if old is not None else None)
    reference = {**where.base(), "user": {"id": user_id, "aad_object_id": aad, "name": name},
                 "conversation": conversation}
    person_id = person_id if person_id is not None else (old.person_id if old else None)
    if old is not None and old.active and old.reference == reference \
            and old.person_id == person_id:
        return  # nothing new: keep the hot path free of writes
    await _upsert(rt, user_key(user_id), reference, person_id, None)


async def match_team(rt: Runtime, where: Where) -> int | None:
    """The Team whose configured Teams channel is this channel (or this team)."""
    candidates = {c for c in (where.channel_id, where.team_id,
                              where.conversation_id.split(";", 1)[0]) if c}
    async with rt.db.reader() as s:
        return await s.scalar(select(Team.id).where(Team.teams_channel_id.in_(candidates),
                                                    Team.active).order_by(Team.id).limit(1))


async def remember_channel(rt: Runtime, where: Where) -> int | None:
    """Store a team channel's reference; returns the matched Team id, if any."""
    channel_id = where.channel_id or where.conversation_id.split(";", 1)[0]
    team_id = await match_team(rt, where)
    reference = {**where.base(), "team": where.team_id,
                 "conversation": {"id": channel_id, "type": "channel"}}
    old = await _existing(rt, channel_key(channel_id))
    if old is None or not old.active or old.reference != reference or old.team_id != team_id:
        await _upsert(rt, channel_key(channel_id), reference, None, team_id)
    return team_id


async def for_user(rt: Runtime, user_id: str) -> ConversationRef | None:
    return await _existing(rt, user_key(user_id))


async def for_person(rt: Runtime, person_id: int) -> ConversationRef | None:
    async with rt.db.reader() as s:
        rows = (await s.scalars(select(ConversationRef).where(
            ConversationRef.platform == PLATFORM, ConversationRef.person_id == person_id,
            ConversationRef.active).order_by(ConversationRef.updated_at.desc()))).all()
    with_chat = [r for r in rows if r.reference.get("conversation")]
    best = with_chat or list(rows)
    return best[0] if best else None


async def for_team(rt: Runtime, team_id: int) -> ConversationRef | None:
    async with rt.db.reader() as s:
        team = await s.get(Team, team_id)
        if team is None:
            return None
        if team.teams_channel_id:
            # The configured channel, exactly: other channels of the same Teams team also
            # match the team, and the digest must not follow whichever spoke last.
            return await s.scalar(select(ConversationRef).where(
                ConversationRef.platform == PLATFORM, ConversationRef.active,
                ConversationRef.key == channel_key(team.teams_channel_id)))
        return await s.scalar(select(ConversationRef).where(
            ConversationRef.platform == PLATFORM, ConversationRef.active,
            ConversationRef.team_id == team_id)
            .order_by(ConversationRef.updated_at.desc()).limit(1))


async def set_conversation(rt: Runtime, ref_id: int, conversation_id: str) -> None:
    async with rt.db.session() as s:
        ref = await s.get(ConversationRef, ref_id)
        if ref is not None:
            ref.reference = {**ref.reference,
                             "conversation": {"id": conversation_id, "type": "personal"}}
            ref.updated_at = rt.now()


async def retire(rt: Runtime, ref_id: int, reason: str) -> None:
    async with rt.db.session() as s:
        await s.execute(update(ConversationRef).where(ConversationRef.id == ref_id)
                        .values(active=False, retired_reason=reason[:2000],
                                updated_at=rt.now()))


async def retire_conversation(rt: Runtime, conversation_id: str, team_id: str | None,
                              reason: str) -> int:
    """The bot was removed: retire every reference into that chat or team."""
    async with rt.db.session() as s:
        rows = (await s.scalars(select(ConversationRef).where(
            ConversationRef.platform == PLATFORM, ConversationRef.active))).all()
        gone = [r for r in rows
                if (r.reference.get("conversation") or {}).get("id") == conversation_id
                or (team_id and r.reference.get("team") == team_id)]
        for r in gone:
            r.active, r.retired_reason, r.updated_at = False, reason, rt.now()
        return len(gone)
