"""Ingest lag per source, for /metrics."""

from __future__ import annotations

from sqlalchemy import select

from bot import metrics
from bot.runtime import Runtime
from bot.store.tables import SourceState
from bot.timeutil import as_utc


async def refresh_lag(rt: Runtime) -> None:
    async with rt.db.reader() as s:
        rows = (await s.execute(select(SourceState.source, SourceState.data_as_of)))
        for source, as_of in rows:
            if as_of is not None:
                lag = (rt.now() - as_utc(as_of)).total_seconds()
                metrics.INGEST_LAG.labels(source).set(max(lag, 0))
