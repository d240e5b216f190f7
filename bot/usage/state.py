"""Per-source checkpoint and freshness bookkeeping."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.database import insert_for
from bot.store.tables import SourceState


async def _state(s: AsyncSession, source: str) -> SourceState:
    """The source's row, created if absent and locked for this transaction.

    Concurrent ingests (webhook POSTs in flight together, two replicas) both update it:
    insert-or-ignore avoids a duplicate-key error on the first run, and the row lock
    (PostgreSQL; SQLite serialises writers anyway) keeps ``records_total`` from losing
    one of two read-modify-writes."""
    await s.execute(insert_for(s.get_bind().dialect.name, SourceState)
                    .values(source=source, records_total=0)
                    .on_conflict_do_nothing(index_elements=["source"]))
    state = await s.scalar(select(SourceState).where(SourceState.source == source)
                           .with_for_update().execution_options(populate_existing=True))
    assert state is not None  # inserted or already there, in this transaction
    return state


async def record_success(s: AsyncSession, source: str, *, now: datetime, records: int = 0,
                         data_as_of: datetime | None = None,
                         checkpoint: datetime | None = None) -> None:
    state = await _state(s, source)
    state.last_run_at = now
    state.last_success_at = now
    state.last_error = None
    state.records_total = (state.records_total or 0) + records
    if data_as_of and (state.data_as_of is None or data_as_of > state.data_as_of):
        state.data_as_of = data_as_of
    if checkpoint and (state.checkpoint is None or checkpoint > state.checkpoint):
        state.checkpoint = checkpoint


async def record_error(s: AsyncSession, source: str, *, now: datetime, error: str) -> None:
    state = await _state(s, source)
    state.last_run_at = now
    state.last_error = error[:2000]
    state.last_error_at = now


async def checkpoint_of(s: AsyncSession, source: str) -> datetime | None:
    return await s.scalar(select(SourceState.checkpoint).where(SourceState.source == source))
