"""Ingest parsed records (files, webhook) in batches, each batch its own transaction.

Parsing hands control back to the event loop every few hundred records, so a server stays
responsive during a large webhook body.

On PostgreSQL the next batch is parsed while earlier ones are in the database, and up to
PG_IN_FLIGHT batches are written at once, each in its own transaction on its own
connection: the database's work per record (the insert and the rollup upsert) is larger
than the client's, and two server processes use both cores. A batch that shares a key with
a batch still in flight waits for it, so a later restatement in the input still wins.
Not on SQLite: it has one writer, and its driver runs in a thread that needs the GIL for
every row it binds; Python parsing beside it makes executemany many times slower (a GIL
convoy), so there parsing and writing take turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

from bot.runtime import Runtime
from bot.usage import file_worker
from bot.usage.plausible import tell_admins
from bot.usage.record import RawUsage
from bot.usage.sources.files import SOURCE, Parsed, RowError, parse_path
from bot.usage.state import record_success
from bot.usage.writer import IngestStats, UsageWriter

MAX_REPORTED_ERRORS = 1000
# Records per transaction: larger batches write each touched index page once for more
# rows (SQLite's commit cost per record halves from 20k to 50k at a million rows).
BATCH_SIZE = 50_000
PG_IN_FLIGHT = 2  # batches written at once on PostgreSQL (one per core of the reference VM)
YIELD_EVERY = 500  # records parsed between two turns of the event loop
# A batch allocates a few container objects per record; at the default threshold (700)
# the cyclic collector runs every ~100 records and rescans every batch still in flight,
# which cost a quarter of the ingest time. While ingests run it runs every ~10k records.
BULK_GC_THRESHOLD = 100_000
_bulk: list[tuple[int, ...]] = []  # the thresholds to restore, one entry per running ingest


@contextlib.contextmanager
def _bulk_gc() -> Iterator[None]:
    """Collect cycles less often while any ingest runs in this process (never off)."""
    first = not _bulk
    _bulk.append(gc.get_threshold() if first else _bulk[0])
    if first and _bulk[0][0] < BULK_GC_THRESHOLD:
        gc.set_threshold(BULK_GC_THRESHOLD, *_bulk[0][1:])
    try:
        yield
    finally:
        saved = _bulk.pop()
        if not _bulk:
            gc.set_threshold(*saved)


async def ingest_parsed(
    rt: Runtime,
    parsed: Iterable[Parsed],
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    writer: UsageWriter | None = None,
) -> tuple[IngestStats, list[RowError]]:
    """Write every good record; collect bad ones (the first MAX_REPORTED_ERRORS of them)."""
    writer = writer or await UsageWriter.create(rt)
    total = IngestStats()
    errors: list[RowError] = []
    batch: list[RawUsage] = []
    lines: list[int] = []  # the line of each record in the batch
    # Batches being written, oldest first, with their keys and lines.
    writing: deque[tuple[asyncio.Task[IngestStats], frozenset[bytes], list[int]]] = deque()
    in_flight = 1 if rt.db.is_sqlite else PG_IN_FLIGHT

    async def settle(keep: int = 0) -> None:
        """Wait for the oldest batches in flight until ``keep`` remain, and count them."""
        while len(writing) > keep:
            stats = await writing[0][0]
            _, _, batch_lines = writing.popleft()
            refused = stats.name_notes(batch_lines)
            errors.extend(RowError(n.line or 0, n.message)
                          for n in refused[: MAX_REPORTED_ERRORS - len(errors)])
            total.add(stats)
            if progress:
                progress(stats.read)

    async def flush() -> None:
        nonlocal batch, lines
        if batch:
            keys = frozenset(r.key for r in batch) if in_flight > 1 else frozenset()
            if any(not keys.isdisjoint(other) for _, other, _ in writing):
                await settle()  # the same record twice: the later one must land last
            await settle(in_flight - 1)
            writing.append((asyncio.create_task(writer.write(batch)), keys, lines))
            batch, lines = [], []
        if in_flight == 1:
            await settle()

    async def consume() -> None:
        for count, (line, item) in enumerate(parsed, 1):
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if isinstance(item, RowError):
                total.rejected += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(item)
                continue
            batch.append(item)
            lines.append(line)
            if len(batch) >= batch_size:
                await flush()
        await flush()
        await settle()

    try:
        with _bulk_gc():
            await consume()
    finally:
        if writing:
            # Parsing or a batch failed: let the batches already handed over finish, as
            # they would have without the overlap (a cancellation reaches them through
            # gather).
            await asyncio.gather(*(task for task, _, _ in writing), return_exceptions=True)
    return await _finish(rt, total, errors)


async def ingest_file(rt: Runtime, path: Path, *, progress: Callable[[int], None] | None = None
                      ) -> tuple[IngestStats, list[RowError]]:
    """What `tokencoach ingest PATH` runs. A large file on SQLite is read, parsed and
    prepared in a worker process while this one writes (bot.usage.file_worker); any other
    file is parsed here, beside the writes (PostgreSQL) or taking turns with them."""
    writer = await UsageWriter.create(rt)
    if not file_worker.worthwhile(path, rt.db.is_sqlite):
        return await ingest_parsed(rt, parse_path(path), progress=progress, writer=writer)
    worker = file_worker.FileWorker(path, writer.preparer.setup, batch_size=BATCH_SIZE,
                                    now=rt.now(), max_errors=MAX_REPORTED_ERRORS)
    total = IngestStats()
    errors: list[RowError] = []
    worker.start()
    try:
        with _bulk_gc():
            # Each batch is taken from the queue only once the previous one is written:
            # unpickling it beside SQLite's thread would contend for the GIL like parsing.
            while (batch := await asyncio.to_thread(worker.next_batch)) is not None:
                stats = await writer.write_prepared(batch.rows, batch.stats)
                total.add(stats)
                errors += batch.errors[: MAX_REPORTED_ERRORS - len(errors)]
                if progress:
                    progress(stats.read)
    finally:
        await asyncio.to_thread(worker.stop)
    return await _finish(rt, total, errors)


async def _finish(rt: Runtime, total: IngestStats, errors: list[RowError]
                  ) -> tuple[IngestStats, list[RowError]]:
    errors.sort(key=lambda e: e.line)  # batches may report after later parse errors
    # Retention refusals are counted in stats.rejected by the writer; say why.
    refused = total.rejected - (len(errors) if len(errors) < MAX_REPORTED_ERRORS else 0)
    if refused > 0 and len(errors) < MAX_REPORTED_ERRORS:
        errors.append(RowError(0, f"{refused} record(s) older than the retention window "
                                  f"({rt.config.retention.raw_usage_days} days) were refused"))
    if total.new or total.replaced or total.unchanged:
        await _mark(rt, total.newest, total.new + total.replaced)
    await tell_admins(rt, SOURCE, total.notes, total.implausible)
    return total, errors


async def _mark(rt: Runtime, newest: datetime | None, records: int) -> None:
    async with rt.db.session() as s:
        await record_success(s, SOURCE, now=rt.now(), records=records, data_as_of=newest)
