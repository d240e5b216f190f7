"""Ingest parsed records (files, webhook) in batches, each batch its own transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from bot.runtime import Runtime
from bot.usage.record import RawUsage
from bot.usage.sources.files import SOURCE, Parsed, RowError
from bot.usage.state import record_success
from bot.usage.writer import IngestStats, UsageWriter

MAX_REPORTED_ERRORS = 1000


async def ingest_parsed(
    rt: Runtime,
    parsed: Iterable[Parsed],
    *,
    batch_size: int = 20_000,
    progress: Callable[[int], None] | None = None,
    writer: UsageWriter | None = None,
) -> tuple[IngestStats, list[RowError]]:
    """Write every good record; collect bad ones (the first MAX_REPORTED_ERRORS of them)."""
    writer = writer or await UsageWriter.create(rt)
    total = IngestStats()
    errors: list[RowError] = []
    batch: list[RawUsage] = []

    async def flush() -> None:
        if batch:
            stats = await writer.write(batch)
            total.add(stats)
            if progress:
                progress(len(batch))
            batch.clear()

    for _line, item in parsed:
        if isinstance(item, RowError):
            total.rejected += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(item)
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            await flush()
    await flush()
    # Retention refusals are counted in stats.rejected by the writer; say why.
    refused = total.rejected - (len(errors) if len(errors) < MAX_REPORTED_ERRORS else 0)
    if refused > 0 and len(errors) < MAX_REPORTED_ERRORS:
        errors.append(RowError(0, f"{refused} record(s) older than the retention window "
                                  f"({rt.config.retention.raw_usage_days} days) were refused"))
    if total.new or total.replaced or total.unchanged:
        await _mark(rt, total.newest, total.new + total.replaced)
    return total, errors


async def _mark(rt: Runtime, newest: datetime | None, records: int) -> None:
    async with rt.db.session() as s:
        await record_success(s, SOURCE, now=rt.now(), records=records, data_as_of=newest)
