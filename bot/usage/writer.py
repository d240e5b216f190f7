"""Write usage records exactly once and keep the daily rollup exact.

For each batch, in one transaction:
1. attribute, price and categorise each raw record;
2. read which keys already exist, so each record is new, replaced (a provider restated
   the bucket) or unchanged (a re-pull) — and so the counts in the summary are true
   (SQLite inserts a batch none of whose first keys is stored before reading anything:
   only the rows the insert skipped are read);
3. insert the new rows (COPY on PostgreSQL, executemany on SQLite), update replaced ones;
4. add exact deltas to ``usage_daily`` (new - old for replacements).

Two writers racing on the same keys: the loser's insert violates the unique key, its
transaction rolls back and the batch is retried, now seeing the winner's rows. Two writers
restating the same row take turns on a row lock (PostgreSQL; SQLite has one writer).

This is the ingest hot path (millions of rows per backfill), so steps 2-4 talk to the
driver directly with plain tuples, and per-record work is cached where its inputs repeat
(owners, prices, days). Money stays integer micro-dollars throughout.
"""

from __future__ import annotations

import itertools
import logging
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import Table, bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.config.models import CategoriesConfig, PricingConfig
from bot.runtime import Runtime
from bot.store.tables import UsageRecord
from bot.timeutil import local_day
from bot.usage.categories import Classifier
from bot.usage.identity import IdentityResolver
from bot.usage.plausible import FLOOR_MICROS, describe, implausible, implausible_note
from bot.usage.pricing import Price, PriceTable
from bot.usage.record import RawUsage, unstorable_text

log = logging.getLogger("tokencoach.ingest")
_RECORDS = cast(Table, UsageRecord.__table__)

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

ROLLUP_KEY = ("day", "person_id", "team_id", "category", "provider", "model")
ROLLUP_SUMS = (
    "records", "requests", "cost_micros", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "notool_cost_micros", "notool_input_tokens", "notool_output_tokens",
    "notool_cache_read_tokens", "notool_cache_write_tokens",
)
_CACHE_LIMIT = 200_000  # entries per lookup cache: bounded memory on any input

# Statements built from the constant column lists only; every value is a bound parameter.
_SQLITE_INSERT = (f"INSERT INTO usage_records ({', '.join(COLUMNS)}) "  # noqa: S608
                  f"VALUES ({', '.join('?' * len(COLUMNS))})")
_ROLLUP_SET = ", ".join(f"{c} = usage_daily.{c} + excluded.{c}" for c in ROLLUP_SUMS)
_SQLITE_ROLLUP = (
    f"INSERT INTO usage_daily ({', '.join(ROLLUP_KEY + ROLLUP_SUMS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(ROLLUP_KEY) + len(ROLLUP_SUMS)))}) "
    f"ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET {_ROLLUP_SET}")
_SQLITE_INSERT_FRESH = _SQLITE_INSERT + " ON CONFLICT (record_key) DO NOTHING"
_SQLITE_MAX_ID = "SELECT COALESCE(MAX(id), 0) FROM usage_records"
_SQLITE_KEYS_SINCE = "SELECT record_key FROM usage_records WHERE id > ?"
_PROBE_KEYS = 32  # keys of a batch looked up to tell a first ingest from a re-ingest
# The same sums as _rollup_deltas, over the rows just inserted (id > the largest before).
_NOTOOL = ", ".join(f"SUM(CASE WHEN tool_calls = 0 THEN {c} ELSE 0 END)" for c in (
    "cost_micros", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"))
_SQLITE_ROLLUP_NEW = (
    f"INSERT INTO usage_daily ({', '.join(ROLLUP_KEY + ROLLUP_SUMS)}) "  # noqa: S608
    "SELECT day, COALESCE(person_id, 0), COALESCE(team_id, 0), category, provider, model, "
    "COUNT(*), SUM(requests), SUM(cost_micros), SUM(input_tokens), SUM(output_tokens), "
    f"SUM(cache_read_tokens), SUM(cache_write_tokens), {_NOTOOL} "
    "FROM usage_records WHERE id > ? GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6 "
    f"ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET {_ROLLUP_SET}")
# PostgreSQL: the batch's deltas are COPYed into a temporary table and added with one
# statement, in key order (the same order in every writer, so two writers upserting the
# same days cannot deadlock). Cheaper for both sides than one upsert per row.
_PG_DELTAS = ("CREATE TEMPORARY TABLE usage_daily_delta (LIKE usage_daily) ON COMMIT DROP")
_PG_ROLLUP = (
    f"INSERT INTO usage_daily ({', '.join(ROLLUP_KEY + ROLLUP_SUMS)}) "  # noqa: S608
    f"SELECT {', '.join(ROLLUP_KEY + ROLLUP_SUMS)} FROM usage_daily_delta "
    f"ORDER BY {', '.join(ROLLUP_KEY)} "
    f"ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET {_ROLLUP_SET}")
_VALUE_COLUMNS = ", ".join(COLUMNS[_VALUE_SLICE])
_PG_EXISTING = (f"SELECT record_key, id, {_VALUE_COLUMNS} FROM usage_records "  # noqa: S608
                "WHERE record_key = ANY($1::bytea[])")
# Rows about to be replaced, locked in key order (no deadlock between two writers). A
# writer that waits here reads the row another writer just restated, so its rollup delta
# starts from the values actually stored, not from the ones it saw before the wait.
_PG_LOCK_EXISTING = _PG_EXISTING + " ORDER BY record_key FOR UPDATE"
_EXISTING_CHUNK = 5000  # keys per lookup on SQLite (well under its 32,766 variables)


MAX_NOTES = 1000  # record notes kept per run (the counts stay exact beyond)


@dataclass(frozen=True)
class RecordNote:
    """Something preparing found about one record: refused (text no database can store)
    or kept but doubtful (an implausible cost). ``at`` is the record's position in the
    batch handed to prepare(); files and webhooks then name its ``line``."""

    at: int
    record: str  # the record in words, for sources without lines (provider pulls)
    message: str
    refused: bool
    key: bytes = b""
    line: int | None = None

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else self.record


@dataclass
class IngestStats:
    read: int = 0
    new: int = 0
    replaced: int = 0
    unchanged: int = 0
    unattributed: int = 0
    rejected: int = 0
    removed: int = 0  # rows a provider's restated window no longer holds
    implausible: int = 0  # kept, but the given cost is far above the price table's
    unpriced_models: set[str] = field(default_factory=set)
    # "provider/model: what was priced by a fallback rate" (see bot/usage/pricing.py)
    approximated: set[str] = field(default_factory=set)
    newest: datetime | None = None
    notes: list[RecordNote] = field(default_factory=list)

    def add(self, other: IngestStats) -> None:
        for name in ("read", "new", "replaced", "unchanged", "unattributed", "rejected",
                     "removed", "implausible"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unpriced_models |= other.unpriced_models
        self.approximated |= other.approximated
        if other.newest and (self.newest is None or other.newest > self.newest):
            self.newest = other.newest
        self.notes += other.notes[: MAX_NOTES - len(self.notes)]

    def name_notes(self, lines: Sequence[int]) -> list[RecordNote]:
        """Give this batch's notes their line (``lines[i]``: the line of the batch's i-th
        record); returns the refused ones and keeps the others here."""
        named = [replace(n, line=lines[n.at]) for n in self.notes]
        self.notes = [n for n in named if not n.refused]
        return [n for n in named if n.refused]

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read, "new": self.new, "replaced": self.replaced,
            "unchanged": self.unchanged, "unattributed": self.unattributed,
            "rejected": self.rejected, "removed": self.removed,
            "implausible_cost": self.implausible,
            "unpriced_models": sorted(self.unpriced_models),
            "approximated": sorted(self.approximated),
        }


class _Rates:
    """A price as integers: cost = round_half_even(sum(tokens * numerator) / denominator).

    Exactly what Price.cost_micros computes with Decimal (list prices have a few decimals,
    so the Decimal products are exact), at a fraction of the cost per record."""

    __slots__ = ("cache_read", "cache_write", "den", "input", "output")

    def __init__(self, price: Price):
        parts = [d.as_integer_ratio() for d in (price.input, price.output, price.cache_read,
                                                  price.cache_write)]
        den = math.lcm(*(q for _, q in parts))
        self.input, self.output, self.cache_read, self.cache_write = (
            n * (den // q) for n, q in parts)
        self.den = den

    def cost(self, inp: int, out: int, cr: int, cw: int) -> int:
        total = inp * self.input + out * self.output + cr * self.cache_read + cw * self.cache_write
        if self.den == 1:
            return total
        q, r = divmod(total, self.den)
        twice = 2 * r
        if twice > self.den or (twice == self.den and q & 1):
            q += 1
        return q


_price_tables: dict[int, tuple[PricingConfig, PriceTable]] = {}


def _price_table(config: PricingConfig) -> PriceTable:
    """One PriceTable per pricing config: building one parses the default price list, and a
    webhook builds a writer for every POST."""
    hit = _price_tables.get(id(config))
    if hit is None or hit[0] is not config:
        if len(_price_tables) > 16:
            _price_tables.clear()
        hit = _price_tables[id(config)] = (config, PriceTable(config))
    return hit[1]


class PrepareSetup(NamedTuple):
    """What preparing records needs: plain, picklable values (a worker process gets these)."""

    pricing: PricingConfig
    categories: CategoriesConfig
    tz: str
    resolver: IdentityResolver
    horizon: date  # records before this day are refused (retention)


class Preparer:
    """Attributes, prices and categorises RawUsage into rows; no database. Build one per
    ingest run (it caches lookups)."""

    def __init__(self, setup: PrepareSetup):
        self.setup = setup
        self.resolver = setup.resolver
        self.prices = _price_table(setup.pricing)
        self.classifier = Classifier(setup.categories)
        self.horizon = setup.horizon
        self._tz = ZoneInfo(setup.tz)
        self._days: dict[int, date] = {}
        # The resolver's answer depends only on these fields and maps loaded once.
        self._owners: dict[tuple[Any, ...], tuple[int | None, int | None, str | None]] = {}
        self._rates: dict[int, _Rates] = {}  # by id() of a Price the table keeps alive

    def _day(self, at: datetime) -> date:
        slot = int(at.timestamp()) // 900  # zone offsets are multiples of 15 minutes
        day = self._days.get(slot)
        if day is None:
            day = at.astimezone(self._tz).date()
            if len(self._days) >= _CACHE_LIMIT:
                self._days.clear()
            self._days[slot] = day
        return day

    def _owner(self, r: RawUsage) -> tuple[int | None, int | None, str | None]:
        key = (r.source, r.user, r.user_kind, r.api_key, r.project, r.workspace, r.team)
        owner = self._owners.get(key)
        if owner is None:
            o = self.resolver.resolve(r)
            owner = (o.person_id, o.team_id, o.identity)
            if len(self._owners) >= _CACHE_LIMIT:
                self._owners.clear()
            self._owners[key] = owner
        return owner

    def _price(self, price: Price, r: RawUsage) -> int:
        if r.billing is not None:  # API sources: every billed dimension at its own rate
            return price.billed_micros(r)
        rates = self._rates.get(id(price))
        if rates is None:
            rates = self._rates[id(price)] = _Rates(price)
        return rates.cost(r.input_tokens, r.output_tokens, r.cache_read_tokens,
                          r.cache_write_tokens)

    def prepare(self, raws: Iterable[RawUsage], stats: IngestStats,
                now: datetime) -> dict[bytes, tuple[Any, ...]]:
        """Attribute, price and categorise. Later duplicates of a key win (restatement)."""
        rows: dict[bytes, tuple[Any, ...]] = {}
        lookup = self.prices.lookup
        classify = self.classifier.classify
        day_of, owner_of, price_of = self._day, self._owner, self._price
        horizon = self.horizon
        read = rejected = unattributed = 0
        newest = stats.newest
        factor = self.setup.pricing.implausible_cost_factor
        for index, r in enumerate(raws):
            read += 1
            at = r.occurred_at
            day = day_of(at)
            if day < horizon:
                rejected += 1
                continue
            bad_text = unstorable_text(r)
            if bad_text is not None:
                rejected += 1
                self._note(stats, index, r, bad_text, refused=True)
                continue
            person_id, team_id, identity = owner_of(r)
            if person_id is None:
                unattributed += 1
            if r.cost_micros is not None:
                cost, basis = r.cost_micros, "provider"
                price = lookup(r.provider, r.model, day) if cost > FLOOR_MICROS else None
                if price is not None and implausible(cost, table := price_of(price, r), factor):
                    stats.implausible += 1
                    self._note(stats, index, r, implausible_note(cost, table, factor),
                               refused=False)
            else:
                price = lookup(r.provider, r.model, day)
                if price is None:
                    cost, basis = 0, "unpriced"
                    stats.unpriced_models.add(f"{r.provider}/{r.model}")
                else:
                    cost, basis = price_of(price, r), "price_table"
                    if r.billing is not None:
                        stats.approximated.update(
                            f"{r.provider}/{r.model}: {what}"
                            for what in price.approximations(r.billing))
            category, rule = classify(r)
            rows[r.key] = (
                r.key, r.source, at, day, person_id, team_id, identity, r.provider, r.model,
                r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens,
                r.requests, r.tool_calls, cost, basis, category, rule, r.project, now,
            )
            if newest is None or at > newest:
                newest = at
        stats.read += read
        stats.rejected += rejected
        stats.unattributed += unattributed
        stats.newest = newest
        return rows

    @staticmethod
    def _note(stats: IngestStats, index: int, r: RawUsage, message: str, *,
              refused: bool) -> None:
        if len(stats.notes) < MAX_NOTES:
            stats.notes.append(RecordNote(index, describe(r), message, refused, r.key))


class UsageWriter:
    """Stores prepared rows. Build one per ingest run (its Preparer caches lookups)."""

    def __init__(self, rt: Runtime, resolver: IdentityResolver, horizon: date = date.min):
        self.rt = rt
        self.preparer = Preparer(PrepareSetup(rt.config.pricing, rt.config.categories, rt.tz,
                                              resolver, horizon))
        self.prepare = self.preparer.prepare

    @classmethod
    async def create(cls, rt: Runtime) -> UsageWriter:
        horizon = local_day(rt.now(), rt.tz) - timedelta(days=rt.config.retention.raw_usage_days)
        return cls(rt, await IdentityResolver.current(rt.db), horizon)

    async def write(self, raws: Sequence[RawUsage], *, attempts: int = 3) -> IngestStats:
        """Prepare and write one batch in its own transaction."""
        prepared = IngestStats()
        rows = self.prepare(raws, prepared, self.rt.now())
        return await self.write_prepared(rows, prepared, attempts=attempts)

    async def write_prepared(self, rows: dict[bytes, tuple[Any, ...]], prepared: IngestStats,
                             *, attempts: int = 3) -> IngestStats:
        """Write prepared rows in one transaction (retried if another writer raced us);
        ``prepared`` holds what preparing them counted."""
        for attempt in range(attempts):
            stats = replace(prepared, unpriced_models=set(prepared.unpriced_models))
            try:
                async with self.rt.db.session() as s:
                    await self.write_rows(s, rows, stats)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
                log.info("ingest batch raced another writer; retrying")
                continue
            source = next(iter(rows.values()))[_SOURCE] if rows else "-"
            for name in ("new", "replaced", "unchanged"):
                metrics.INGESTED.labels(source, name).inc(getattr(stats, name))
            return stats
        raise AssertionError("unreachable")

    async def write_rows(self, s: AsyncSession, rows: dict[bytes, tuple[Any, ...]],
                         stats: IngestStats) -> None:
        """Store prepared rows inside the caller's transaction."""
        if not rows:
            return
        driver, is_pg = await _driver(s)
        if not is_pg:
            rows = await _insert_fresh(driver, rows, stats)
            if not rows:
                return
        existing = await _existing(driver, is_pg, list(rows))
        new: list[tuple[Any, ...]] = []
        replaced: list[tuple[int, tuple[Any, ...], tuple[Any, ...]]] = []
        if existing:
            changed: list[bytes] = []
            for key, row in rows.items():
                old = existing.get(key)
                if old is None:
                    new.append(row)
                elif old[1:] == row[_VALUE_SLICE]:
                    stats.unchanged += 1
                else:
                    changed.append(key)
            if changed and is_pg:
                existing = await _locked(driver, changed)
            for key in changed:
                old, row = existing.get(key), rows[key]
                if old is None:  # purged meanwhile (retention)
                    new.append(row)
                elif old[1:] == row[_VALUE_SLICE]:  # another writer stored these values
                    stats.unchanged += 1
                else:
                    replaced.append((old[0], old, row))
        else:  # the common case of a first ingest: nothing to compare
            new = list(rows.values())
        stats.new += len(new)
        stats.replaced += len(replaced)
        if new and not is_pg:
            await _sqlite_insert(driver, new)
            new = []  # already in the rollup
        elif new:
            await _copy_records(driver, new)
        if replaced:  # restatements are rare: the ORM statement is fine here
            await s.execute(
                update(_RECORDS)
                .where(_RECORDS.c.id == bindparam("_id"))
                .values({c: bindparam(c) for c in COLUMNS[1:]}),
                [dict(zip(COLUMNS[1:], row[1:], strict=True), _id=rid)
                 for rid, _, row in replaced],
            )
        deltas = _rollup_deltas(new, [(old, row) for _, old, row in replaced])
        await _apply(driver, is_pg, deltas)


async def _driver(s: AsyncSession) -> tuple[Any, bool]:
    """The session's own driver connection (aiosqlite or asyncpg), in its transaction."""
    conn = await s.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    assert driver is not None
    is_pg = conn.dialect.name == "postgresql"
    if is_pg and not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter opens the transaction at its first statement;
        # statements sent to the driver before that would each commit on their own.
        await conn.exec_driver_sql("SELECT 1")
    return driver, is_pg


async def _existing(driver: Any, is_pg: bool, keys: list[bytes]
                    ) -> dict[bytes, tuple[Any, ...]]:
    """Existing rows by key: (id, *value columns in COLUMNS[1:20] order), typed as the
    prepared rows are (aware UTC datetimes, dates), so that equal means unchanged."""
    out: dict[bytes, tuple[Any, ...]] = {}
    if is_pg:
        for row in await driver.fetch(_PG_EXISTING, keys):
            key, rid, *values = row
            out[bytes(key)] = (rid, *values)
        return out
    for i in range(0, len(keys), _EXISTING_CHUNK):
        chunk = keys[i : i + _EXISTING_CHUNK]
        sql = (f"SELECT record_key, id, {_VALUE_COLUMNS} FROM usage_records "  # noqa: S608
               f"WHERE record_key IN ({', '.join('?' * len(chunk))})")
        async with driver.execute(sql, chunk) as cursor:
            found = await cursor.fetchall()
        for key, rid, *values in found:
            # SQLite hands back the text it stores: naive UTC times and ISO dates.
            at, day = values[1], values[2]
            values[1] = _utc(datetime.fromisoformat(at) if isinstance(at, str) else at)
            values[2] = date.fromisoformat(day) if isinstance(day, str) else day
            out[bytes(key)] = (rid, *values)
    return out


async def _insert_fresh(driver: Any, rows: dict[bytes, tuple[Any, ...]], stats: IngestStats
                        ) -> dict[bytes, tuple[Any, ...]]:
    """SQLite, first ingest of a batch (the bulk of any backfill): insert every row whose
    key is not stored yet and roll them up, without first looking up each key — the insert
    checks the unique key anyway. Returns the rows that were already stored, for the
    general path to compare. A batch whose first keys are stored (a re-ingest) goes to the
    general path whole, where looking up is cheaper than trying to insert."""
    probe = list(itertools.islice(rows, _PROBE_KEYS))
    sql = (f"SELECT 1 FROM usage_records WHERE record_key IN "  # noqa: S608
           f"({', '.join('?' * len(probe))}) LIMIT 1")
    async with driver.execute(sql, probe) as cursor:
        if await cursor.fetchone() is not None:
            return rows
    before, inserted = await _sqlite_insert(driver, list(rows.values()), skip_stored=True)
    stats.new += inserted
    if inserted == len(rows):
        return {}
    async with driver.execute(_SQLITE_KEYS_SINCE, (before,)) as cursor:
        fresh = {bytes(key) for (key,) in await cursor.fetchall()}
    return {key: row for key, row in rows.items() if key not in fresh}


async def _locked(driver: Any, keys: list[bytes]) -> dict[bytes, tuple[Any, ...]]:
    """Existing PostgreSQL rows, locked until commit and read as of now (after any writer
    we waited for)."""
    return {bytes(key): (rid, *values)
            for key, rid, *values in await driver.fetch(_PG_LOCK_EXISTING, keys)}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _sqlite_time(v: datetime) -> str:
    """How SQLAlchemy stores a UTC DateTime on SQLite: naive, with microseconds."""
    if v.tzinfo is not UTC:
        v = v.astimezone(UTC)
    return v.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


def _sqlite_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Only the time and date columns need converting; repeated values once."""
    days: dict[date, str] = {}
    out = []
    last_at: datetime | None = None
    at_text = ""
    ingested = rows[0][_INGESTED]
    ingested_text = _sqlite_time(ingested)  # one batch, one ingest time (almost always)
    for r in rows:
        at, day = r[_AT], r[_DAY]
        if at is not last_at:  # rows of one bucket share a time object
            last_at, at_text = at, _sqlite_time(at)
        day_text = days.get(day)
        if day_text is None:
            day_text = days[day] = day.isoformat()
        if r[_INGESTED] is not ingested:
            ingested, ingested_text = r[_INGESTED], _sqlite_time(r[_INGESTED])
        out.append((r[0], r[1], at_text, day_text, *r[4:20], ingested_text))
    return out


async def _copy_records(driver: Any, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: COPY is the fastest path in; it runs in the session's transaction."""
    try:
        await driver.copy_records_to_table("usage_records", records=rows, columns=COLUMNS)
    except asyncpg.UniqueViolationError as exc:
        raise IntegrityError("COPY usage_records", None, exc) from exc


async def _sqlite_insert(driver: Any, rows: list[tuple[Any, ...]], *,
                         skip_stored: bool = False) -> tuple[int, int]:
    """SQLite: insert rows (``skip_stored``: leaving out keys already stored) and add them
    to the rollup. This transaction holds the write lock, so the rows it inserts are exactly
    those above the largest id before the insert, and SQLite sums them into the rollup
    itself (no per-row deltas bound from Python). Returns (that id, rows inserted)."""
    async with driver.execute(_SQLITE_MAX_ID) as cursor:
        (before,) = await cursor.fetchone()
    sql = _SQLITE_INSERT_FRESH if skip_stored else _SQLITE_INSERT
    try:
        cursor = await driver.executemany(sql, _sqlite_rows(rows))
    except sqlite3.IntegrityError as exc:  # same exception type as the PostgreSQL path
        raise IntegrityError(sql, None, exc) from exc
    await driver.execute(_SQLITE_ROLLUP_NEW, (before,))
    return before, int(cursor.rowcount)


RollupKey = tuple[date, int, int, str, str, str]


def _rollup_deltas(
    new: list[tuple[Any, ...]], replaced: list[tuple[tuple[Any, ...], tuple[Any, ...]]]
) -> dict[RollupKey, list[int]]:
    """Per (day, person, team, category, provider, model): the 12 sums to add."""
    deltas: dict[RollupKey, list[int]] = {}
    get = deltas.get
    # New rows (nearly all of them on a backfill): unrolled, no per-column loop.
    for row in new:
        key = (row[_DAY], row[_PERSON] or 0, row[_TEAM] or 0, row[_CAT], row[_PROVIDER],
               row[_MODEL])
        req, cost, inp, out, cr, cw = (row[_REQ], row[_COST], row[_IN], row[_OUT], row[_CR],
                                       row[_CW])
        d = get(key)
        if d is None:
            if row[_TOOLS] == 0:
                deltas[key] = [1, req, cost, inp, out, cr, cw, cost, inp, out, cr, cw]
            else:
                deltas[key] = [1, req, cost, inp, out, cr, cw, 0, 0, 0, 0, 0]
            continue
        d[0] += 1
        d[1] += req
        d[2] += cost
        d[3] += inp
        d[4] += out
        d[5] += cr
        d[6] += cw
        if row[_TOOLS] == 0:
            d[7] += cost
            d[8] += inp
            d[9] += out
            d[10] += cr
            d[11] += cw

    for old, row in replaced:
        _add_delta(deltas, old, -1)
        _add_delta(deltas, row, 1)
    if replaced:
        return {k: v for k, v in deltas.items() if any(v)}
    return deltas


def _add_delta(deltas: dict[RollupKey, list[int]], row: tuple[Any, ...], sign: int) -> None:
    # Prepared rows are (key, *values) and existing rows (id, *values): the value columns
    # sit at the same indexes in both.
    key = (row[_DAY], row[_PERSON] or 0, row[_TEAM] or 0, row[_CAT], row[_PROVIDER],
           row[_MODEL])
    d = deltas.setdefault(key, [0] * len(ROLLUP_SUMS))
    sums = (1, row[_REQ], row[_COST], row[_IN], row[_OUT], row[_CR], row[_CW])
    for i, v in enumerate(sums):
        d[i] += sign * v
    if row[_TOOLS] == 0:
        for i, v in enumerate(sums[2:]):
            d[7 + i] += sign * v


async def remove_stale(s: AsyncSession, source: str, start: datetime, end: datetime,
                       keep: set[bytes]) -> int:
    """Inside the caller's transaction: delete ``source``'s rows stamped in [start, end)
    whose keys are not in ``keep`` (the provider's complete restated answer for that
    window), and take them out of the rollup. Returns how many went."""
    driver, is_pg = await _driver(s)
    # ``day`` is the org-zone date: any zone puts [start, end) within a day either side,
    # and the day index keeps this from scanning the whole table.
    first, last = start.date() - timedelta(days=1), end.date() + timedelta(days=1)
    if is_pg:
        found = [bytes(k) for (k,) in await driver.fetch(
            "SELECT record_key FROM usage_records WHERE day BETWEEN $1 AND $2 "
            "AND source = $3 AND occurred_at >= $4 AND occurred_at < $5",
            first, last, source, start, end)]
    else:
        async with driver.execute(
                "SELECT record_key FROM usage_records WHERE day BETWEEN ? AND ? "
                "AND source = ? AND occurred_at >= ? AND occurred_at < ?",
                (first.isoformat(), last.isoformat(), source, _sqlite_time(start),
                 _sqlite_time(end))) as cursor:
            found = [bytes(k) for (k,) in await cursor.fetchall()]
    stale = sorted(k for k in found if k not in keep)
    if not stale:
        return 0
    rows = list((await (_locked(driver, stale) if is_pg
                        else _existing(driver, False, stale))).values())
    ids = [r[0] for r in rows]
    if is_pg:
        await driver.execute("DELETE FROM usage_records WHERE id = ANY($1::bigint[])", ids)
    else:
        for i in range(0, len(ids), _EXISTING_CHUNK):
            chunk = ids[i : i + _EXISTING_CHUNK]
            await driver.execute(f"DELETE FROM usage_records WHERE id IN "  # noqa: S608
                                 f"({', '.join('?' * len(chunk))})", chunk)
    deltas: dict[RollupKey, list[int]] = {}
    for row in rows:
        _add_delta(deltas, row, -1)
    await _apply(driver, is_pg, {k: v for k, v in deltas.items() if any(v)})
    return len(rows)


async def _apply(driver: Any, is_pg: bool, deltas: dict[RollupKey, list[int]]) -> None:
    if not deltas:
        return
    if is_pg:
        await driver.execute(_PG_DELTAS)
        await driver.copy_records_to_table(
            "usage_daily_delta", records=[(*key, *sums) for key, sums in deltas.items()],
            columns=ROLLUP_KEY + ROLLUP_SUMS)
        await driver.execute(_PG_ROLLUP)
        await driver.execute("DROP TABLE usage_daily_delta")  # a transaction may write again
        return
    # One order for every writer (SQLite takes the write lock up front anyway).
    await driver.executemany(_SQLITE_ROLLUP, [
        (day.isoformat(), *rest, *sums) for (day, *rest), sums in sorted(deltas.items())])
