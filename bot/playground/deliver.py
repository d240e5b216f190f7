"""Outbox delivery into the playground's conversations (stored rows the page polls)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from bot.reply import Reply
from bot.runtime import Runtime
from bot.store.tables import OutboxMessage, PlaygroundMessage


def conversation_for(msg: OutboxMessage) -> str:
    return f"dm:{msg.target_id}" if msg.target_type == "person" else f"team:{msg.target_id}"


class PlaygroundDeliverer:
    name = "playground"

    def __init__(self, rt: Runtime):
        self.rt = rt

    async def send(self, msg: OutboxMessage, reply: Reply) -> dict[str, Any]:
        now = self.rt.now()
        async with self.rt.db.session() as s:
            row = PlaygroundMessage(
                conversation=conversation_for(msg),
                author="bot",
                visible_to=None,
                payload=reply.to_json(),
                outbox_id=msg.id,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            await s.flush()
            return {"message_id": row.id}

    async def update(self, msg: OutboxMessage, ref: dict[str, Any], reply: Reply) -> None:
        async with self.rt.db.session() as s:
            await s.execute(
                update(PlaygroundMessage)
                .where(PlaygroundMessage.id == ref["message_id"])
                .values(payload=reply.to_json(), updated_at=self.rt.now())
            )

    async def find_sent(self, msg: OutboxMessage) -> dict[str, Any] | None:
        # The row is written in one transaction with its outbox id: look it up.
        from sqlalchemy import select

        async with self.rt.db.reader() as s:
            found = await s.scalar(
                select(PlaygroundMessage.id).where(PlaygroundMessage.outbox_id == msg.id)
            )
        return {"message_id": found} if found else None

    async def close(self) -> None:
        return None
