"""One way to drive each chat surface for cross-platform tests: send a command, click a
button on a sandbox request's card. Each implementation goes through the real endpoint."""

from __future__ import annotations

import copy
from typing import Any, Protocol

import aiohttp
from sqlalchemy import select

from bot.reply import Actions, Reply
from bot.runtime import Runtime
from bot.store.tables import OutboxMessage, Person, PlaygroundMessage
from bot.textrender import as_text
from tests.helpers.approvals import buttons, text_of
from tests.helpers.slack import block_texts


class Surface(Protocol):
    rt: Runtime

    async def command(self, email: str, text: str) -> str: ...

    async def click(self, email: str, owner: str, key: str, label: str) -> str: ...


async def person_id(rt: Runtime, email: str) -> int:
    async with rt.db.reader() as s:
        return int(await s.scalar(select(Person.id).where(Person.email == email)))


class SlackSurface:
    def __init__(self, bot: Any):
        self.bot = bot
        self.rt = bot.rt

    async def command(self, email: str, text: str) -> str:
        _, body = await self.bot.client.command(self.bot.uid(email), text)
        return " ".join(block_texts(body.get("blocks", []))) or str(body.get("text", ""))

    async def click(self, email: str, owner: str, key: str, label: str) -> str:
        """Click ``label`` on the message queued under outbox ``key`` in ``owner``'s DM."""
        await self.bot.deliver()
        async with self.rt.db.reader() as s:
            ref = await s.scalar(select(OutboxMessage.ref).where(
                OutboxMessage.dedupe_key == f"{key}@slack"))
        message = copy.deepcopy(next(m for m in self.bot.fake.messages(ref["channel"])
                                     if m["ts"] == ref["ts"]))
        button = buttons(message).get(label)
        if button is None:
            return text_of(message)
        before = len(self.bot.fake.responses)
        forms = len(self.bot.fake.calls_to("views.open"))
        await self.bot.client.interact(self.bot.client.block_action(
            self.bot.uid(email), button["action_id"], button.get("value", ""),
            channel=ref["channel"], message_ts=ref["ts"]))
        said = [r.get("text", "") for r in self.bot.fake.responses[before:]]
        if len(self.bot.fake.calls_to("views.open")) > forms:
            said.append("[form opened]")
        updated = next(m for m in self.bot.fake.messages(ref["channel"]) if m["ts"] == ref["ts"])
        return " ".join(said) + " " + text_of(updated)


class PlaygroundSurface:
    def __init__(self, rt: Runtime, http: aiohttp.ClientSession, base: str):
        self.rt, self.http, self.base = rt, http, base

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(f"{self.base}/playground/api/{path}", json=body) as resp:
            assert resp.status == 200, (resp.status, await resp.text())
            return dict(await resp.json())

    async def _latest_private(self, viewer: int, after: int) -> str:
        async with self.rt.db.reader() as s:
            rows = (await s.scalars(select(PlaygroundMessage).where(
                PlaygroundMessage.id > after, PlaygroundMessage.visible_to == viewer,
                PlaygroundMessage.author == "bot"))).all()
        return " ".join(as_text(Reply.from_json(r.payload)) for r in rows)

    async def _max_id(self) -> int:
        async with self.rt.db.reader() as s:
            rows = (await s.scalars(select(PlaygroundMessage.id))).all()
        return max(rows, default=0)

    async def command(self, email: str, text: str) -> str:
        me = await person_id(self.rt, email)
        after = await self._max_id()
        await self._post("send", {"as": me, "conversation": f"dm:{me}", "text": text})
        return await self._latest_private(me, after)

    async def click(self, email: str, owner: str, key: str, label: str) -> str:
        from bot.outbox import drain

        await drain(self.rt)
        me, owner_id = await person_id(self.rt, email), await person_id(self.rt, owner)
        async with self.rt.db.reader() as s:
            outbox_id = await s.scalar(select(OutboxMessage.id).where(
                OutboxMessage.dedupe_key == f"{key}@playground"))
            row = await s.scalar(select(PlaygroundMessage).where(
                PlaygroundMessage.outbox_id == outbox_id))
        reply = Reply.from_json(row.payload)
        button = next((b for blk in reply.blocks if isinstance(blk, Actions)
                       for b in blk.buttons if b.label == label), None)
        if button is None:
            return as_text(reply)
        after = await self._max_id()
        # Someone else can't even open another person's DM in the playground, so a
        # click "on Priya's card" by Aisha is made from Aisha's own view of the action.
        conversation = f"dm:{owner_id}" if me == owner_id else f"dm:{me}"
        body: dict[str, Any] = {"as": me, "conversation": conversation,
                                "action": button.action, "value": button.value}
        if me == owner_id:
            body["message_id"] = row.id
        result = await self._post("action", body)
        async with self.rt.db.reader() as s:
            now_row = await s.get(PlaygroundMessage, row.id)
        told = await self._latest_private(me, after)
        form = " [form opened]" if result.get("form") else ""
        return f"{told}{form} {as_text(Reply.from_json(now_row.payload))}"


class TeamsSurface:
    """Through /api/messages with the fake connector (emulator mode)."""

    def __init__(self, harness: Any):
        self.h = harness
        self.rt = harness.rt
        self._installed: set[str] = set()

    async def _install(self, email: str) -> None:
        if email not in self._installed:
            await self.h.client.post(self.h.client.install_personal(self.h.user(email),
                                                                    self.h.fake))
            self._installed.add(email)

    def _texts(self, posted: list[Any]) -> str:
        from tests.helpers.teams import card_text

        return " ".join(card_text(p.card) if p.card else str(p.activity.get("text", ""))
                        for p in posted)

    async def command(self, email: str, text: str) -> str:
        await self._install(email)
        before = len(self.h.dm(email))
        await self.h.say(email, text)
        return self._texts(self.h.dm(email)[before:])

    async def click(self, email: str, owner: str, key: str, label: str) -> str:
        from tests.helpers.teams import buttons as card_buttons
        from tests.helpers.teams import card_text, walk

        for who in (email, owner):
            await self._install(who)
        await self.h.deliver()
        async with self.rt.db.reader() as s:
            ref = await s.scalar(select(OutboxMessage.ref).where(
                OutboxMessage.dedupe_key == f"{key}@teams"))
        posted = next(p for p in self.h.fake.in_conversation(ref["conversation_id"])
                      if p.id == ref["activity_id"])
        action = card_buttons(posted.card).get(label)
        if action is None:
            return card_text(posted.card)
        if action["type"] == "Action.ShowCard":  # a confirmation: click its "Yes"
            action = action["card"]["actions"][0]
        user = self.h.user(email)
        before = len(self.h.dm(email))
        sent = await self.h.client.post(self.h.client.execute(
            user, action, self.h.client.personal(user, self.h.fake), posted.id))
        body = sent.body if isinstance(sent.body, dict) else {}
        card = body.get("value") if isinstance(body.get("value"), dict) else None
        told = self._texts(self.h.dm(email)[before:])
        form = " [form opened]" if card and any(
            str(n.get("type", "")).startswith("Input.") for n in walk(card)) else ""
        shown = card_text(card) if card else (body.get("value") or "")
        return f"{told}{form} {shown}"
