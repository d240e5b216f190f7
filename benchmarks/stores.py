"""The benchmark stores: the real schema, a large org, and usage generated in SQL.

Two kinds, both cached in benchmarks/.cache (SQLite files) or in named PostgreSQL
databases, each with a version marker so a change of shape or schema rebuilds them:

* the *directory* template: `tokencoach db upgrade`, the app.yaml directory, and N
  generated people in teams of 25 (bot.demo.generate_people) with Slack ids stored;
  the ingest benchmark copies it for every run;
* the *usage* store: the directory template plus R usage records per person over D days,
  generated in SQL (generate_series on PostgreSQL, a recursive CTE on SQLite) from the
  demo generator's personas and request shapes, then `usage_daily` computed from them
  with INSERT … SELECT … GROUP BY (so the rollup equals the records' sum exactly).

The Python demo generator (bot.demo.seed_usage) is realistic but writes ~20k records/s;
20M records would take a quarter of an hour, so the SQL path builds the same shapes in a
couple of minutes.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import insert, text

from benchmarks.common import (
    ANCHOR,
    CACHE,
    CONFIG,
    alembic_head,
    log,
    migrate,
    pg_dsn,
    pg_exists,
    pg_marker,
    pg_set_marker,
    pg_url,
    sqlite_marker,
    sqlite_remove,
    sqlite_set_marker,
    sqlite_url,
)

STORE_VERSION = 4  # bump when the generated shape changes: cached stores are rebuilt
PER_TEAM = 25  # bot.demo.generate_people's team size
SOURCES = ("openai", "anthropic", "claude_code", "litellm")


@dataclass(frozen=True)
class Scale:
    name: str
    people: int
    days: int
    records: int  # usage records in the store (0 for a directory-only template)

    @property
    def teams(self) -> int:
        return max(self.people // PER_TEAM, 1)


def runtime(url: str) -> Any:
    """A Runtime on ``url`` with app.yaml and the clock stopped at ANCHOR."""
    from bot.config import load_config
    from bot.config.env import Env
    from bot.runtime import Runtime
    from bot.store import Database

    return Runtime(config=load_config(CONFIG), env=Env(database_url=url),
                   db=Database(url, pool_size=4), clock=lambda: ANCHOR)


def slack_user_id(person_id: int) -> str:
    """The Slack id stored for generated person ``person_id`` (no users.info needed)."""
    return f"UB{person_id:07d}"


# --- the directory -------------------------------------------------------------------------


async def _directory(url: str, people: int) -> None:
    from bot.demo import generate_people
    from bot.directory import sync_directory

    rt = runtime(url)
    try:
        await sync_directory(rt)
        await generate_people(rt, people)
        async with rt.db.session() as s:
            # Stored Slack ids, so /tokens resolves people without a users.info call.
            await s.execute(text(
                "UPDATE people SET slack_user_id = 'UB' || substr('0000000' || "
                "CAST(id AS VARCHAR), -7, 7) WHERE origin = 'generated'"
                if rt.db.is_sqlite else
                "UPDATE people SET slack_user_id = 'UB' || lpad(id::text, 7, '0') "
                "WHERE origin = 'generated'"))
    finally:
        await rt.close()


def directory_template(backend: str, people: int) -> str:
    """A migrated store with the directory and ``people`` generated people (cached)."""
    scale = Scale(f"dir{people}", people, 0, 0)
    return _cached(backend, scale, lambda url: asyncio.run(_directory(url, people)))


# --- usage in SQL --------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeRow:
    id: int
    source: str
    provider: str
    model: str
    inp: int
    out: int
    cache_read: int
    cache_write: int
    tools: int  # tool calls per request
    max_requests: int
    category: str
    rule: str
    # Price per token in thousandths of a micro-dollar (list prices have <= 3 decimals).
    p_in: int
    p_out: int
    p_cr: int
    p_cw: int


def shapes() -> tuple[list[ShapeRow], dict[str, list[int]]]:
    """bot.demo's request shapes, classified and priced by the real code, and for each
    persona 100 slots of shape ids in proportion to its category mix."""
    from bot.config import load_config
    from bot.demo import PERSONAS, SHAPES
    from bot.usage.categories import Classifier
    from bot.usage.pricing import PriceTable
    from bot.usage.record import RawUsage

    cfg = load_config(CONFIG)
    classifier = Classifier(cfg.categories)
    prices = PriceTable(cfg.pricing)
    day = ANCHOR.date()
    rows: list[ShapeRow] = []
    index: dict[tuple[str, int], int] = {}
    for category, weighted in SHAPES.items():
        for n, (_weight, sh) in enumerate(weighted):
            raw = RawUsage(key=b"", source=sh.source, occurred_at=ANCHOR, provider=sh.provider,
                           model=sh.model, input_tokens=sh.input, output_tokens=sh.output,
                           cache_read_tokens=sh.cache_read, cache_write_tokens=sh.cache_write,
                           requests=1, tool_calls=sh.tools, tags=sh.tags, product=sh.product)
            cat, rule = classifier.classify(raw)
            price = prices.lookup(sh.provider, sh.model, day)
            assert price is not None, sh.model

            def milli(v: Decimal) -> int:
                scaled = v * 1000
                assert scaled == scaled.to_integral_value(), v
                return int(scaled)

            index[(category, n)] = len(rows)
            rows.append(ShapeRow(
                len(rows), sh.source, sh.provider, sh.model, sh.input, sh.output,
                sh.cache_read, sh.cache_write, sh.tools,
                20 if category in ("agentic", "coding") else 60, cat, rule,
                milli(price.input), milli(price.output), milli(price.cache_read),
                milli(price.cache_write)))
    mixes: dict[str, list[int]] = {}
    for persona, (mix, _monthly) in PERSONAS.items():
        weights: dict[int, float] = {}
        for category, share in mix.items():
            weighted = SHAPES[category]
            total = sum(w for w, _ in weighted)
            for n, (w, _sh) in enumerate(weighted):
                weights[index[(category, n)]] = share * w / total
        slots: list[int] = []
        for shape_id, weight in sorted(weights.items(), key=lambda x: -x[1]):
            slots += [shape_id] * round(weight)
        mixes[persona] = (slots + [slots[0]] * 100)[:100]
    return rows, mixes


# A realistic org is mostly summaries and chat (bot.demo.persona_of's weights).
PERSONA_WEIGHTS = {"agentic": 6, "coder": 10, "summarizer": 26, "chatter": 22, "writer": 14,
                   "analyst": 12, "light": 10}


def slots(scale: Scale, tz: str) -> list[tuple[int, date, datetime]]:
    """Each person's R record slots: (slot, org-local day, UTC time of the hour bucket).

    Weekend days get a quarter of a weekday's slots; hours are 08-18 local time."""
    per_person = scale.records // scale.people
    today = ANCHOR.astimezone(ZoneInfo(tz)).date()
    days = [today - timedelta(days=scale.days - 1 - k) for k in range(scale.days)]
    weights = [0.25 if d.weekday() >= 5 else 1.0 for d in days]
    total = sum(weights)
    out: list[tuple[int, date, datetime]] = []
    rng = random.Random(7)
    zone = ZoneInfo(tz)
    acc = 0.0
    for d, w in zip(days, weights, strict=True):
        acc += w * per_person / total
        while len(out) < round(acc):
            hour = rng.randint(8, 18)
            at = datetime.combine(d, time(hour), tzinfo=zone).astimezone(UTC)
            if d == today and at > ANCHOR - timedelta(hours=1):
                at = ANCHOR - timedelta(hours=1 + rng.randint(0, 5))  # no future buckets
            out.append((len(out), d, at))
    return out


# Columns of usage_records filled by the generator, in order.
RECORD_COLUMNS = (
    "record_key, source, occurred_at, day, person_id, team_id, identity, provider, model, "
    "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, requests, tool_calls, "
    "cost_micros, cost_basis, category, category_rule, project, ingested_at")

ROLLUP = """
INSERT INTO usage_daily (day, person_id, team_id, category, provider, model, records, requests,
    cost_micros, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    notool_cost_micros, notool_input_tokens, notool_output_tokens, notool_cache_read_tokens,
    notool_cache_write_tokens)
SELECT day, COALESCE(person_id, 0), COALESCE(team_id, 0), category, provider, model, COUNT(*),
    SUM(requests), SUM(cost_micros), SUM(input_tokens), SUM(output_tokens),
    SUM(cache_read_tokens), SUM(cache_write_tokens),
    SUM(CASE WHEN tool_calls = 0 THEN cost_micros ELSE 0 END),
    SUM(CASE WHEN tool_calls = 0 THEN input_tokens ELSE 0 END),
    SUM(CASE WHEN tool_calls = 0 THEN output_tokens ELSE 0 END),
    SUM(CASE WHEN tool_calls = 0 THEN cache_read_tokens ELSE 0 END),
    SUM(CASE WHEN tool_calls = 0 THEN cache_write_tokens ELSE 0 END)
FROM usage_records
GROUP BY day, COALESCE(person_id, 0), COALESCE(team_id, 0), category, provider, model
ORDER BY 1, 2, 3, 4, 5, 6
"""


def _select(scale: Scale, key_expr: str, lo: int, hi: int, source: str) -> str:
    """The generator: one row per i in [lo, hi), person = i mod P, slot = i div P.

    h is a multiplicative hash of i; its digits pick the shape (from the person's persona
    mix), the request count and a +-20% token jitter. About 1% of records come from an
    unmapped CI key and stay unattributed, as real usage does."""
    p = scale.people
    h = "((g.i * 2654435761) % 4294967296 / 256)"
    req = f"(1 + ({h} / 100) % s.max_requests)"
    jit = f"(80 + ({h} / 1000) % 41)"

    def tokens(col: str) -> str:
        return f"(s.{col} * {req} * {jit} / 100)"

    cost = (f"(({tokens('inp')} * s.p_in + {tokens('out')} * s.p_out + "
            f"{tokens('cache_read')} * s.p_cr + {tokens('cache_write')} * s.p_cw) / 1000)")
    orphan = f"({h} % 97 = 0)"
    return f"""
SELECT {key_expr}, s.source, sl.occurred_at, sl.day,
    CASE WHEN {orphan} THEN NULL ELSE bp.person_id END,
    CASE WHEN {orphan} THEN NULL ELSE bp.team_id END,
    CASE WHEN {orphan} THEN 'api_key:sk-ci-' || CAST({h} % 40 AS VARCHAR) ELSE NULL END,
    s.provider, s.model, {tokens('inp')}, {tokens('out')}, {tokens('cache_read')},
    {tokens('cache_write')}, {req}, s.tools * {req}, {cost}, 'price_table', s.category, s.rule,
    NULL, sl.occurred_at
FROM {source}
JOIN bench_people bp ON bp.k = g.i % {p}
JOIN bench_slots sl ON sl.k = g.i / {p}
JOIN bench_mix m ON m.persona = bp.persona AND m.slot = {h} % 100
JOIN bench_shapes s ON s.id = m.shape_id
WHERE g.i >= {lo} AND g.i < {hi}"""


def _helper_rows(scale: Scale, people: list[tuple[int, int]], tz: str
                 ) -> dict[str, list[tuple[Any, ...]]]:
    shape_rows, mixes = shapes()
    persona_names = list(PERSONA_WEIGHTS)
    persona_slots = [n for n, w in enumerate(PERSONA_WEIGHTS.values()) for _ in range(w)]
    return {
        "bench_shapes": [(s.id, s.source, s.provider, s.model, s.inp, s.out, s.cache_read,
                          s.cache_write, s.tools, s.max_requests, s.category, s.rule, s.p_in,
                          s.p_out, s.p_cr, s.p_cw) for s in shape_rows],
        "bench_mix": [(pi, slot, shape_id) for pi, name in enumerate(persona_names)
                      for slot, shape_id in enumerate(mixes[name])],
        "bench_people": [(k, pid, tid, persona_slots[(k * 7919) % len(persona_slots)])
                         for k, (pid, tid) in enumerate(people)],
        "bench_slots": [(k, d, at) for k, d, at in slots(scale, tz)],
    }


HELPER_DDL = {
    "bench_shapes": "id INTEGER, source VARCHAR(32), provider VARCHAR(32), model VARCHAR(128), "
                    "inp BIGINT, out BIGINT, cache_read BIGINT, cache_write BIGINT, "
                    "tools INTEGER, max_requests INTEGER, category VARCHAR(32), "
                    "rule VARCHAR(96), p_in BIGINT, p_out BIGINT, p_cr BIGINT, p_cw BIGINT",
    "bench_mix": "persona INTEGER, slot INTEGER, shape_id INTEGER",
    "bench_people": "k INTEGER PRIMARY KEY, person_id INTEGER, team_id INTEGER, "
                    "persona INTEGER",
    "bench_slots": "k INTEGER PRIMARY KEY, day DATE, occurred_at {ts}",
}


def _sqlite_usage(path: Path, scale: Scale, tz: str) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    # Build-time settings only (the app sets its own on connect): a big page cache keeps
    # the random record_key index in memory; no fsync while generating.
    for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-4000000",
                   "temp_store=MEMORY"):
        con.execute(f"PRAGMA {pragma}")
    people = con.execute("SELECT id, team_id FROM people WHERE origin = 'generated' "
                         "ORDER BY id").fetchall()
    helpers = _helper_rows(scale, people, tz)
    for name, ddl in HELPER_DDL.items():
        con.execute(f"CREATE TEMP TABLE {name} ({ddl.format(ts='TEXT')})")
        rows = helpers[name]
        if name == "bench_slots":
            rows = [(k, d.isoformat(), at.strftime("%Y-%m-%d %H:%M:%S.%f")) for k, d, at in rows]
        con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    # Secondary indexes are built once at the end (faster than maintaining them row by row);
    # their DDL is read back from the migrated schema, so it is exactly the real one.
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND "
        "tbl_name IN ('usage_records', 'usage_daily')").fetchall()
    for name, _sql in indexes:
        con.execute(f"DROP INDEX {name}")
    step = 2_000_000
    for lo in range(0, scale.records, step):
        hi = min(lo + step, scale.records)
        con.execute("BEGIN")
        con.execute(
            "WITH RECURSIVE g(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM g WHERE i + 1 < ?) "
            f"INSERT INTO usage_records ({RECORD_COLUMNS}) "
            + _select(scale, "randomblob(16)", lo, hi, "g"), (lo, hi))
        con.execute("COMMIT")
        log(f"  sqlite: {hi:,} / {scale.records:,} records")
    con.execute("BEGIN")
    con.execute(ROLLUP)
    con.execute("COMMIT")
    log("  sqlite: usage_daily computed; building indexes")
    for _name, sql in indexes:
        con.execute(sql)
    con.execute("ANALYZE")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


async def _pg_usage(name: str, scale: Scale, tz: str) -> None:
    con = await asyncpg.connect(pg_dsn(name))
    try:
        await con.execute("SET maintenance_work_mem = '1GB'; SET work_mem = '256MB'; "
                          "SET synchronous_commit = off")
        people = [tuple(r) for r in await con.fetch(
            "SELECT id, team_id FROM people WHERE origin = 'generated' ORDER BY id")]
        helpers = _helper_rows(scale, people, tz)
        for table, ddl in HELPER_DDL.items():
            await con.execute(f"CREATE TEMP TABLE {table} ({ddl.format(ts='timestamptz')})")
            await con.copy_records_to_table(table, records=helpers[table])
            await con.execute(f"ANALYZE {table}")
        # As on SQLite: drop the secondary indexes and the unique key, load, rebuild them
        # from the definitions PostgreSQL itself reports for the migrated schema.
        constraints = await con.fetch(
            "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def "
            "FROM pg_constraint WHERE conrelid IN ('usage_records'::regclass, "
            "'usage_daily'::regclass) AND contype = 'u'")
        indexes = await con.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
            "('usage_records', 'usage_daily') AND indexname NOT LIKE 'pk_%' AND indexname "
            "NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('u', 'p'))")
        for c in constraints:
            await con.execute(f"ALTER TABLE {c['tbl']} DROP CONSTRAINT {c['conname']}")
        for ix in indexes:
            await con.execute(f"DROP INDEX {ix['indexname']}")
        step = 4_000_000
        for lo in range(0, scale.records, step):
            hi = min(lo + step, scale.records)
            await con.execute(
                f"INSERT INTO usage_records ({RECORD_COLUMNS}) "
                + _select(scale, "decode(md5('bench' || g.i::text), 'hex')", lo, hi,
                          f"generate_series({lo}::bigint, {hi - 1}::bigint) AS g(i)"))
            log(f"  postgresql: {hi:,} / {scale.records:,} records")
        await con.execute(ROLLUP)
        log("  postgresql: usage_daily computed; building indexes")
        for c in constraints:
            await con.execute(f"ALTER TABLE {c['tbl']} ADD CONSTRAINT {c['conname']} {c['def']}")
        for ix in indexes:
            await con.execute(ix["indexdef"])
    finally:
        await con.close()
    con = await asyncpg.connect(pg_dsn(name))
    try:
        await con.execute("VACUUM (ANALYZE) usage_records")
        await con.execute("VACUUM (ANALYZE) usage_daily")
        await con.execute("ANALYZE")
    finally:
        await con.close()


async def _activity(url: str, scale: Scale) -> None:
    """Source freshness, sandbox grants and pending requests, tips: what a card and a
    digest read besides usage. Written through SQLAlchemy (types done right)."""
    from bot.store.tables import (
        Nudge,
        SandboxGrant,
        SandboxRequest,
        SourceState,
        TipEvent,
    )

    rt = runtime(url)
    try:
        as_of = ANCHOR.replace(minute=0)
        period = ANCHOR.strftime("%Y-%m")
        async with rt.db.session() as s:
            await s.execute(insert(SourceState), [
                {"source": src, "checkpoint": as_of, "data_as_of": as_of, "last_run_at": ANCHOR,
                 "last_success_at": ANCHOR, "records_total": scale.records // len(SOURCES)}
                for src in SOURCES])
            ids = [r[0] for r in (await s.execute(text(
                "SELECT id, manager_id FROM people WHERE origin = 'generated' ORDER BY id")))]
            managers = dict((await s.execute(text(
                "SELECT id, manager_id FROM people WHERE origin = 'generated'"))).all())
            rng = random.Random(11)
            granted = rng.sample(ids, max(len(ids) // 100, 2))  # 1% have a sandbox grant
            pending = rng.sample(ids, max(len(ids) // 500, 1))
            started = ANCHOR - timedelta(days=10)
            req_rows = []
            for n, pid in enumerate(granted + pending):
                is_grant = n < len(granted)
                req_rows.append({
                    "person_id": pid, "amount_micros": 300_000_000, "duration_days": 30,
                    "purpose": "Build an agent that triages bug reports",
                    "status": "approved" if is_grant else "pending", "stage": 1,
                    "stages": [managers.get(pid) or pid],
                    "current_approver_id": None if is_grant else managers.get(pid),
                    "policy": {}, "period": period, "created_at": started,
                    "stage_started_at": started, "decided_at": started if is_grant else None,
                    "decided_by_id": managers.get(pid) if is_grant else None,
                    "origin_platform": "slack"})
            await s.execute(insert(SandboxRequest), req_rows)
            req_ids = dict((await s.execute(text(
                "SELECT person_id, id FROM sandbox_requests WHERE status = 'approved'"))).all())
            await s.execute(insert(SandboxGrant), [
                {"request_id": req_ids[pid], "person_id": pid, "amount_micros": 300_000_000,
                 "period": period, "starts_at": started, "ends_at": started + timedelta(days=30),
                 "status": "active", "created_at": started,
                 "outcome": "Triage agent labels 70% of bugs correctly" if n % 3 == 0 else None,
                 "outcome_at": ANCHOR - timedelta(days=2) if n % 3 == 0 else None}
                for n, pid in enumerate(granted)])
            nudged = rng.sample(ids, max(len(ids) // 20, 1))  # 5% got a tip this week
            week = ANCHOR - timedelta(days=3)
            await s.execute(insert(Nudge), [
                {"person_id": pid, "period": "2026-W47", "cohort": "nudged",
                 "tutorial_id": "research-agent", "category": "summarization",
                 "low_value_share_bp": 8000, "agentic_share_bp": 500, "spend_micros": 90_000_000,
                 "created_at": week} for pid in nudged])
            await s.execute(insert(TipEvent), [
                {"person_id": pid, "tutorial_id": "research-agent",
                 "event": "opened" if n % 2 else "completed", "at": week + timedelta(hours=2)}
                for n, pid in enumerate(nudged[: len(nudged) // 3])])
    finally:
        await rt.close()


def _build_usage(backend: str, target: str, scale: Scale) -> None:
    from bot.config import load_config

    tz = load_config(CONFIG).org.timezone
    url = sqlite_url(Path(target)) if backend == "sqlite" else pg_url(target)
    asyncio.run(_directory(url, scale.people))
    if backend == "sqlite":
        _sqlite_usage(Path(target), scale, tz)
    else:
        asyncio.run(_pg_usage(target, scale, tz))
    asyncio.run(_activity(url, scale))
    if backend == "sqlite":
        with sqlite3.connect(target) as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def usage_store(backend: str, scale: Scale) -> str:
    """The cached usage store for ``scale``: a SQLite path or a PostgreSQL database name."""
    return _cached(backend, scale, lambda target: _build_usage(backend, target, scale),
                   raw_target=True)


def warm(backend: str, target: str) -> float:
    """Read a usage store into the OS page cache before timing anything on it, as a serving
    database holds its working set (a run right after the 10M-record ingest otherwise
    finds the store evicted and measures the disk). Returns the seconds it took."""
    import time as clock

    started = clock.perf_counter()
    if backend == "sqlite":
        with open(target, "rb") as handle:
            while handle.read(1 << 24):
                pass
    else:
        asyncio.run(_pg_warm(target))
    return clock.perf_counter() - started


async def _pg_warm(name: str) -> None:
    con = await asyncpg.connect(pg_dsn(name))
    try:
        await con.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        relations = await con.fetch(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')")
        for (relation,) in relations:
            # 'read': into the OS cache, which holds it all (shared_buffers is 128 MB).
            await con.execute("SELECT pg_prewarm($1::regclass, 'read')", relation)
    finally:
        await con.close()


def _cached(backend: str, scale: Scale, build: Any, *, raw_target: bool = False) -> str:
    """Reuse the store if its marker matches this code's version and schema, else build it."""
    marker = (f"v{STORE_VERSION}:{alembic_head()}:{scale.people}:{scale.days}:"
              f"{scale.records}:{ANCHOR.isoformat()}")
    if backend == "sqlite":
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / f"store-{scale.name}.db"
        if sqlite_marker(path) == marker:
            return str(path)
        log(f"building the SQLite store {path.name} ({scale.records:,} records)")
        sqlite_remove(path)
        url = sqlite_url(path)
        migrate(url)
        build(str(path) if raw_target else url)
        sqlite_set_marker(path, marker)
        return str(path)
    name = f"tc_bench_{scale.name}"
    if pg_exists(name) and pg_marker(name) == marker:
        return name
    log(f"building the PostgreSQL store {name} ({scale.records:,} records)")
    from benchmarks.common import pg_drop

    pg_drop(name)
    url = pg_url(name)
    migrate(url)
    build(name if raw_target else url)
    pg_set_marker(name, marker)
    return name


def describe(scale: Scale) -> str:
    """The data shape, for BENCHMARKS.md."""
    shape_rows, _ = shapes()
    per_person = scale.records // scale.people
    cats = sorted({s.category for s in shape_rows})
    models = sorted({s.model for s in shape_rows})
    return (
        f"{scale.people:,} people in {scale.teams:,} teams of {PER_TEAM} (the first person "
        f"of each team manages the rest; bot.demo.generate_people), Slack ids stored. "
        f"{scale.records:,} usage records: {per_person} per person over {scale.days} days "
        f"ending {ANCHOR:%Y-%m-%d %H:%M} UTC, hourly buckets 08-18 org time "
        f"(America/New_York, so days and months are org-time-zone days), weekends at a quarter "
        f"of weekdays; each record's request shape (source, model, tokens per request) is "
        f"drawn from the person's persona mix ({', '.join(PERSONA_WEIGHTS)}) as in bot.demo, "
        f"with 1-60 requests per bucket (1-20 for agentic and coding) and +-20% token "
        f"jitter; categories ({', '.join(cats)}) and list "
        f"prices come from the real classifier and price table; ~1% of records come from "
        f"an unmapped CI key (unattributed). Models: {', '.join(models)}. `usage_daily` is "
        f"computed from the records by GROUP BY. Also: 1% of people hold an active sandbox "
        f"grant, 0.2% have a pending request, 5% got a tip this week; freshness rows for "
        f"{len(SOURCES)} sources."
    )
