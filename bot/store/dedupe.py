"""Deliveries already handled (a retried webhook, a replayed click): one row per key."""

from __future__ import annotations

from bot.runtime import Runtime
from bot.store.results import affected
from bot.store.tables import ProcessedEvent


async def first_time(rt: Runtime, key: str) -> bool:
    """Record ``key`` as handled; False if it already was (a retry or a replay)."""
    async with rt.db.session() as s:
        result = await s.execute(
            rt.db.insert(ProcessedEvent)
            .values(key=key[:255], at=rt.now())
            .on_conflict_do_nothing(index_elements=["key"])
        )
        return affected(result) == 1
