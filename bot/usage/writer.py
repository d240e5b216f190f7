"""Write usage records exactly once and keep the daily rollup exact.

For each batch, in one transaction:
1. attribute, price and categorise each raw record;
2. read which keys already exist, so each record is new, replaced (a provider restated
   the bucket) or unchanged (a re-pull) — and so the counts in the summary are true;
3. insert the new rows (COPY on PostgreSQL, executemany on SQLite), update replaced ones;
4. add exact deltas to ``usage_daily`` (new - old for replacements).

Two writers racing on the same keys: the loser's insert violates the unique key, its
transaction rolls back and the batch is retried, now seeing the winner's rows.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.runtime import Runtime
from bot.store.tables import UsageDaily, UsageRecord
from bot.timeutil import local_day
from bot.usage.categories import Classifier
from bot.usage.identity import IdentityResolver
from bot.usage.pricing import PriceTable
from bot.usage.record import RawUsage

log = logging.getLogger("tokencoach.ingest")

# Column order of a prepared row (matches the COPY / executemany statements).
COLUMNS = (
    "record_key", "source", "occurred_at", "day", "person_id", "team_id", "identity",
    "provider", "model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "requests", "tool_calls", "cost_micros", "cost_basis", "category",
    "category_rule", "project", "ingested_at",
)
_VALUE_SLICE = slice(1, 20)  # every column but the key and ingested_at
(_KEY, _SOURCE, _AT, _DAY, _PERSON, _TEAM, _IDENT, _PROVIDER, _MODEL, _IN, _OUT, _CR, _CW,
 _REQ, _TOOLS, _COST, _BASIS, _CAT, _RULE, _PROJECT, _INGESTED) = range(21)

ROLLUP_SUMS = (
    "records", "requests", "cost_micros", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "notool_cost_micros", "notool_input_tokens", "notool_output_tokens",
    "notool_cache_read_tokens", "notool_cache_write_tokens",
)


@dataclass
class IngestStats:
    read: int = 0
    new: int = 0
    replaced: int = 0
    unchanged: int = 0
    unattributed: int = 0
    rejected: int = 0
    unpriced_models: set[str] = field(default_factory=set)
    newest: datetime | None = None

    def add(self, other: IngestStats) -> None:
        for name in ("read", "new", "replaced", "unchanged", "unattributed", "rejected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unpriced_models |= other.unpriced_models
        if other.newest and (self.newest is None or other.newest > self.newest):
            self.newest = other.newest

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read, "new": self.new, "replaced": self.replaced,
            "unchanged": self.unchanged, "unattributed": self.unattributed,
            "rejected": self.rejected, "unpriced_models": sorted(self.unpriced_models),
        }


class UsageWriter:
    """Turns RawUsage into stored rows. Build one per ingest run (it caches lookups)."""

    def __init__(self, rt: Runtime, resolver: IdentityResolver):
        self.rt = rt
        self.resolver = resolver
        self.prices = PriceTable(rt.config.pricing)
        self.classifier = Classifier(rt.config.categories)
        self._tz = ZoneInfo(rt.tz)
        self._days: dict[int, date] = {}
        self.horizon = date.min  # records before this day are refused (retention)

    @classmethod
    async def create(cls, rt: Runtime) -> UsageWriter:
        async with rt.db.reader() as s:
            resolver = await IdentityResolver.load(s)
        writer = cls(rt, resolver)
        writer.horizon = local_day(rt.now(), rt.tz) - timedelta(
            days=rt.config.retention.raw_usage_days)
        return writer

    def _day(self, at: datetime) -> date:
        slot = int(at.timestamp()) // 900  # zone offsets are multiples of 15 minutes
        day = self._days.get(slot)
        if day is None:
            day = at.astimezone(self._tz).date()
            self._days[slot] = day
        return day

    def prepare(self, raws: Iterable[RawUsage], stats: IngestStats,
                now: datetime) -> dict[bytes, tuple[Any, ...]]:
        """Attribute, price and categorise. Later duplicates of a key win (restatement)."""
        rows: dict[bytes, tuple[Any, ...]] = {}
        resolve = self.resolver.resolve
        lookup = self.prices.lookup
        classify = self.classifier.classify
        for r in raws:
            stats.read += 1
            day = self._day(r.occurred_at)
            if day < self.horizon:
                stats.rejected += 1
                continue
            owner = resolve(r)
            if owner.person_id is None:
                stats.unattributed += 1
            if r.cost_micros is not None:
                cost, basis = r.cost_micros, "provider"
            else:
                price = lookup(r.provider, r.model, day)
                if price is None:
                    cost, basis = 0, "unpriced"
                    stats.unpriced_models.add(f"{r.provider}/{r.model}")
                else:
                    cost = price.cost_micros(r.input_tokens, r.output_tokens,
                                             r.cache_read_tokens, r.cache_write_tokens)
                    basis = "price_table"
            category, rule = classify(r)
            rows[r.key] = (
                r.key, r.source, r.occurred_at, day, owner.person_id, owner.team_id,
                owner.identity, r.provider, r.model, r.input_tokens, r.output_tokens,
                r.cache_read_tokens, r.cache_write_tokens, r.requests, r.tool_calls, cost, basis,
                category, rule, r.project, now,
            )
            if stats.newest is None or r.occurred_at > stats.newest:
                stats.newest = r.occurred_at
        return rows

    async def write(self, raws: Sequence[RawUsage], *, attempts: int = 3) -> IngestStats:
        """Write one batch in its own transaction (retried if another writer raced us)."""
        for attempt in range(attempts):
            stats = IngestStats()
            rows = self.prepare(raws, stats, self.rt.now())
            try:
                async with self.rt.db.session() as s:
                    await self.write_rows(s, rows, stats)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
                log.info("ingest batch raced another writer; retrying")
                continue
            for name in ("new", "replaced", "unchanged"):
                metrics.INGESTED.labels(raws[0].source if raws else "-", name).inc(
                    getattr(stats, name))
            return stats
        raise AssertionError("unreachable")

    async def write_rows(self, s: AsyncSession, rows: dict[bytes, tuple[Any, ...]],
                         stats: IngestStats) -> None:
        """Store prepared rows inside the caller's transaction."""
        if not rows:
            return
        existing = await _existing(s, list(rows))
        new: list[tuple[Any, ...]] = []
        replaced: list[tuple[int, tuple[Any, ...], tuple[Any, ...]]] = []
        for key, row in rows.items():
            old = existing.get(key)
            if old is None:
                new.append(row)
            elif old[1:] == row[_VALUE_SLICE]:
                stats.unchanged += 1
            else:
                replaced.append((old[0], old, row))
        stats.new += len(new)
        stats.replaced += len(replaced)
        if new:
            await _insert_rows(s, new)
        if replaced:
            await s.execute(
                update(UsageRecord.__table__)
                .where(UsageRecord.__table__.c.id == bindparam("_id"))
                .values({c: bindparam(c) for c in COLUMNS[1:]}),
                [dict(zip(COLUMNS[1:], row[1:], strict=True), _id=rid)
                 for rid, _, row in replaced],
            )
        deltas = _rollup_deltas(new, [(old, row) for _, old, row in replaced])
        await apply_rollup(s, deltas)


async def _existing(s: AsyncSession, keys: list[bytes]) -> dict[bytes, tuple[Any, ...]]:
    """Existing rows by key: (id, *value columns in COLUMNS[1:20] order)."""
    t = UsageRecord.__table__.c
    cols = [t.id] + [t[c] for c in COLUMNS[_VALUE_SLICE]]
    out: dict[bytes, tuple[Any, ...]] = {}
    for i in range(0, len(keys), 5000):
        chunk = keys[i : i + 5000]
        result = await s.execute(select(t.record_key, *cols).where(t.record_key.in_(chunk)))
        for row in result:
            key, rid, *values = row
            values[1] = _utc(values[1])  # occurred_at: SQLite hands back naive UTC
            out[bytes(key)] = (rid, *values)
    return out


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, date):
        return v.isoformat()
    return v


async def _insert_rows(s: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
    conn = await s.connection()
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if conn.dialect.name == "postgresql":
        # COPY is the fastest path into PostgreSQL; it runs in the session's transaction.
        try:
            await driver.copy_records_to_table("usage_records", records=rows, columns=COLUMNS)
        except asyncpg.UniqueViolationError as exc:
            raise IntegrityError("COPY usage_records", None, exc) from exc
    else:
        # Built from the constant column list only; every value is a bound parameter.
        sql = (f"INSERT INTO usage_records ({', '.join(COLUMNS)}) "  # noqa: S608
               f"VALUES ({', '.join('?' * len(COLUMNS))})")
        try:
            await driver.executemany(sql, [tuple(_sqlite_value(v) for v in r) for r in rows])
        except sqlite3.IntegrityError as exc:  # same exception type as the PostgreSQL path
            raise IntegrityError(sql, None, exc) from exc


RollupKey = tuple[date, int, int, str, str, str]


def _rollup_deltas(
    new: list[tuple[Any, ...]], replaced: list[tuple[tuple[Any, ...], tuple[Any, ...]]]
) -> dict[RollupKey, list[int]]:
    deltas: dict[RollupKey, list[int]] = defaultdict(lambda: [0] * len(ROLLUP_SUMS))

    def add(row: tuple[Any, ...], sign: int) -> None:
        # Prepared rows are (key, *values) and existing rows (id, *values): the value
        # columns sit at the same indexes in both.
        key = (row[_DAY], row[_PERSON] or 0, row[_TEAM] or 0, row[_CAT], row[_PROVIDER],
               row[_MODEL])
        d = deltas[key]
        sums = (1, row[_REQ], row[_COST], row[_IN], row[_OUT], row[_CR], row[_CW])
        for i, v in enumerate(sums):
            d[i] += sign * v
        if row[_TOOLS] == 0:
            for i, v in enumerate(sums[2:]):
                d[7 + i] += sign * v

    for row in new:
        add(row, 1)
    for old, row in replaced:
        add(old, -1)
        add(row, 1)
    return {k: v for k, v in deltas.items() if any(v)}


async def apply_rollup(s: AsyncSession, deltas: dict[RollupKey, list[int]]) -> None:
    if not deltas:
        return
    table = UsageDaily.__table__
    ins = (pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert)(table)
    stmt = ins.on_conflict_do_update(
        index_elements=["day", "person_id", "team_id", "category", "provider", "model"],
        set_={c: table.c[c] + ins.excluded[c] for c in ROLLUP_SUMS},
    )
    params = [
        dict(day=k[0], person_id=k[1], team_id=k[2], category=k[3], provider=k[4], model=k[5],
             **dict(zip(ROLLUP_SUMS, v, strict=True)))
        for k, v in sorted(deltas.items())  # one order for every writer: no deadlocks
    ]
    await s.execute(stmt, params)
