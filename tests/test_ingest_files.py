"""Usage files and the ingest webhook: exact totals, idempotency, bad rows, privacy."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, text

from bot.money import to_micros
from bot.server import build_app
from bot.store.tables import SourceState, UsageDaily, UsageRecord
from bot.usage.identity import IdentityResolver
from bot.usage.ingest import PG_IN_FLIGHT, ingest_parsed
from bot.usage.writer import IngestStats, UsageWriter
from tests.helpers.cli import tokencoach
from tests.helpers.crafted import record, write
from tests.helpers.server import serving

CSV_HEADER = "occurred_at,user,model,input_tokens,output_tokens,cost_usd,category,id\n"
GOOD_CSV = [
    "2026-11-03T10:00:00Z,tomas.novak@acme.example,gpt-4o,1000,200,0.0123,chat,r1\n",
    "2026-11-03T11:00:00Z,tomas.novak@acme.example,claude-sonnet-4-5,5000,900,0.3,agentic,r2\n",
    "2026-11-04T09:30:00+01:00,aisha.bello@acme.example,gpt-4o-mini,700,90,0.000171,,r3\n",
    "2026-11-05T09:00:00Z,stranger@elsewhere.example,gpt-4o,100,10,1.99,,r4\n",
]
BAD_CSV = [
    "yesterday,tomas.novak@acme.example,gpt-4o,1,1,0.1,,b1\n",  # line 6
    "2026-11-03T10:00:00Z,tomas.novak@acme.example,,1,1,0.1,,b2\n",  # line 7: no model
    "2026-11-03T10:00:00Z,tomas.novak@acme.example,gpt-4o,-5,1,0.1,,b3\n",  # line 8
    "2026-11-03T10:00:00Z,tomas.novak@acme.example,gpt-4o,1,1,lots,,b4\n",  # line 9
    "2026-11-03T10:00:00Z,tomas.novak@acme.example,gpt-4o\n",  # line 10: columns
]


async def stored_total(rt) -> int:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        return int(await s.scalar(select(func.coalesce(func.sum(UsageRecord.cost_micros), 0))))


async def rollup_total(rt) -> int:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        return int(await s.scalar(select(func.coalesce(func.sum(UsageDaily.cost_micros), 0))))


def ingest(path: Path, url: str) -> tuple[int, str, str]:
    result = tokencoach("ingest", str(path), database_url=url)
    return result.returncode, result.stdout, result.stderr


async def test_csv_keeps_good_rows_and_reports_bad_ones_by_line(rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "usage.csv"
    path.write_text(CSV_HEADER + "".join(GOOD_CSV) + "".join(BAD_CSV))
    code, out, err = await asyncio.to_thread(ingest, path, rt.env.database_url)
    assert code == 1  # some rows were rejected
    for line, reason in [(6, "occurred_at"), (7, "model is required"), (8, "input_tokens"),
                         (9, "cost_usd"), (10, "columns")]:
        assert f"line {line}: " in err and reason in err, (line, err)
    assert "Traceback" not in err
    # The fixture's own sum, to the micro-dollar and so to the cent.
    expected = sum(Decimal(row.split(",")[5]) for row in GOOD_CSV)
    assert await stored_total(rt) == int(expected * 1_000_000)
    assert await rollup_total(rt) == await stored_total(rt)
    assert re.search(r"unattributed\s*│\s*1\s*│", out), out
    # Again: nothing changes.
    code, out, _ = await asyncio.to_thread(ingest, path, rt.env.database_url)
    assert re.search(r"new\s*│\s*0\s*│", out)
    assert await stored_total(rt) == int(expected * 1_000_000)


async def test_jsonl_restatement_by_id_replaces(rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = tmp_path / "a.jsonl"
    rows = [{"occurred_at": "2026-11-03T10:00:00Z", "user": "tomas.novak@acme.example",
             "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100,
             "cost_usd": "0.50", "id": f"ev-{i}"} for i in range(3)]
    first.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n{not json\n")
    code, _, err = await asyncio.to_thread(ingest, first, rt.env.database_url)
    assert code == 1 and "line 5: not valid JSON" in err
    assert await stored_total(rt) == 1_500_000
    rows[1]["cost_usd"] = 0.75  # a float in JSON is read as its exact decimal text
    second = tmp_path / "b.jsonl"
    second.write_text("\n".join(json.dumps(r) for r in rows))
    code, out, _ = await asyncio.to_thread(ingest, second, rt.env.database_url)
    assert code == 0 and re.search(r"replaced\s*│\s*1\s*│", out)
    assert re.search(r"unchanged\s*│\s*2\s*│", out)
    assert await stored_total(rt) == 1_750_000 == await rollup_total(rt)


async def test_unattributed_spend_is_kept_and_reported(rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "u.csv"
    path.write_text(CSV_HEADER + "".join(GOOD_CSV))
    await asyncio.to_thread(ingest, path, rt.env.database_url)
    result = await asyncio.to_thread(tokencoach, "balance", "--unattributed", "--json", "--at",
                                     "2026-11-20T12:00:00Z", database_url=rt.env.database_url)
    data = json.loads(result.stdout)
    assert data == [{"identity": "user:stranger@elsewhere.example", "records": 1,
                     "spent_usd": "1.99"}]
    one = await asyncio.to_thread(tokencoach, "balance", "tomas.novak@acme.example", "--json",
                                  "--at", "2026-11-20T12:00:00Z", database_url=rt.env.database_url)
    card = json.loads(one.stdout)
    assert card["spent_usd"] == "0.31" and card["cap_usd"] == "1500.00"
    assert {"person", "period", "sandbox_usd", "remaining_usd", "by_category", "by_model",
            "forecast", "as_of"} <= set(card)


async def test_webhook_auth_counts_and_bad_rows(make_runtime) -> None:  # type: ignore[no-untyped-def]
    from bot.config.env import Env

    rt0 = await make_runtime(sync=True)
    env = Env(database_url=rt0.env.database_url,
              source={"TOKENCOACH_INGEST_TOKEN": "s3cret-ingest-token"})
    rt = await make_runtime(env=env)
    url_ok = {"Authorization": "Bearer s3cret-ingest-token"}
    body = json.dumps([
        {"occurred_at": "2026-11-03T10:00:00Z", "user": "tomas.novak@acme.example",
         "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, "cost_usd": "0.01",
         "id": "w1", "prompt": "SECRET-PROMPT-TEXT-1234", "completion": "SECRET-COMPLETION"},
        {"occurred_at": "nope", "user": "x@y.example", "model": "m", "input_tokens": 1,
         "output_tokens": 1},
    ])
    async with serving(build_app(rt, background=False)) as base, aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            async with http.post(f"{base}/ingest/usage", data=body, headers=headers) as resp:
                assert resp.status == 401
        assert await stored_total(rt) == 0
        async with http.post(f"{base}/ingest/usage", data=body, headers=url_ok) as resp:
            answer = await resp.json()
            assert resp.status == 200
        assert answer["new"] == 1 and answer["rejected"] == 1
        assert answer["errors"] == [{"line": 2, "message": answer["errors"][0]["message"]}]
        ndjson = "\n".join(json.dumps(r) for r in json.loads(body)[:1])
        async with http.post(f"{base}/ingest/usage", data=ndjson, headers=url_ok) as resp:
            assert (await resp.json())["unchanged"] == 1
        async with http.post(f"{base}/ingest/usage", data=b"[1, 2", headers=url_ok) as resp:
            assert resp.status == 422 and "not valid JSON" in (await resp.json())[
                "errors"][0]["message"]
        async with http.post(f"{base}/ingest/usage", data=b" ", headers=url_ok) as resp:
            assert resp.status == 400
        big = b"[" + b" " * (65 * 1024 * 1024) + b"]"
        async with http.post(f"{base}/ingest/usage", data=big, headers=url_ok) as resp:
            assert resp.status == 413
    assert await stored_total(rt) == 10_000
    # No prompt or completion text is stored anywhere.
    async with rt.db.reader() as s:
        if rt.db.is_sqlite:
            await s.execute(text("PRAGMA wal_checkpoint"))
    if rt.db.is_sqlite:
        raw = Path(rt.env.database_url.split("///", 1)[1]).read_bytes()
        assert b"SECRET-PROMPT" not in raw and b"SECRET-COMPLETION" not in raw
    else:
        async with rt.db.reader() as s:
            dump = await s.scalar(text("SELECT string_agg(t::text, '') FROM usage_records t"))
        assert "SECRET" not in dump


async def test_webhook_posts_in_flight_together_on_a_fresh_store_all_land(make_runtime) -> None:  # type: ignore[no-untyped-def]
    """Eight POSTs at once on a store that has never ingested: each answers 200 (the first
    run's freshness row is created once, not eight times) and none of the counts is lost."""
    from bot.config.env import Env

    rt0 = await make_runtime(sync=True)
    env = Env(database_url=rt0.env.database_url, source={"TOKENCOACH_INGEST_TOKEN": "tok"})
    rt = await make_runtime(env=env)
    bodies = [json.dumps([
        {"occurred_at": f"2026-11-03T{h:02d}:00:00Z", "user": "tomas.novak@acme.example",
         "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, "cost_usd": "0.01",
         "id": f"p{post}-{h}"} for h in range(5)]) for post in range(8)]
    headers = {"Authorization": "Bearer tok"}
    async with serving(build_app(rt, background=False)) as base, aiohttp.ClientSession() as http:
        async def post(body: str) -> tuple[int, dict[str, int]]:
            async with http.post(f"{base}/ingest/usage", data=body, headers=headers) as resp:
                return resp.status, await resp.json()
        answers = await asyncio.gather(*(post(b) for b in bodies))
    assert [status for status, _ in answers] == [200] * 8
    assert sum(answer["new"] for _, answer in answers) == 40
    async with rt.db.reader() as s:
        state = await s.get(SourceState, "import")
    assert state is not None and state.records_total == 40
    assert await stored_total(rt) == await rollup_total(rt) == to_micros("0.40")


async def test_two_writers_restating_one_row_keep_the_rollup_exact(rt) -> None:  # type: ignore[no-untyped-def]
    """Writer A restates a row and holds its transaction open; writer B restates the same
    row meanwhile. B must start from A's stored values, or the rollup counts the row twice
    (on SQLite B simply waits for the write lock; on PostgreSQL for the row lock)."""
    original = record(rt, "tomas.novak@acme.example", date(2026, 11, 3), cost="1.00")
    await write(rt, [original])
    first = replace(original, cost_micros=to_micros("2.00"))
    second = replace(original, cost_micros=to_micros("5.00"))

    a, b = await UsageWriter.create(rt), await UsageWriter.create(rt)
    async with rt.db.session() as s:
        stats = IngestStats()
        await a.write_rows(s, a.prepare([first], stats, rt.now()), stats)
        assert stats.replaced == 1
        racing = asyncio.create_task(b.write([second]))
        await asyncio.sleep(0.3)
        assert not racing.done()  # B waits for A's transaction
    b_stats = await racing
    assert b_stats.replaced == 1
    assert await stored_total(rt) == to_micros("5.00")
    assert await rollup_total(rt) == to_micros("5.00")


class _CountingWriter(UsageWriter):
    """The real writer, noting how many batches it had in flight at once."""

    active = peak = calls = 0

    async def write(self, raws, *, attempts: int = 3) -> IngestStats:  # type: ignore[no-untyped-def]
        self.active += 1
        self.calls += 1
        self.peak = max(self.peak, self.active)
        try:
            # Hand the next batch over meanwhile; the first batch is slow, so a later
            # batch not held back would commit before it.
            await asyncio.sleep(0.3 if self.calls == 1 else 0.01)
            return await super().write(raws, attempts=attempts)
        finally:
            self.active -= 1


async def test_batches_in_flight_together_keep_order_and_exact_sums(rt) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL writes two batches at once; SQLite one. Batches share rollup rows, and a
    record restated in a later batch must end with the later values either way."""
    people = ["tomas.novak@acme.example", "aisha.bello@acme.example"]
    rows = [record(rt, people[i % 2], date(2026, 11, 3 + i % 4), cost=f"0.{i:02d}")
            for i in range(1, 41)]
    restated = replace(rows[2], cost_micros=to_micros("9.00"))  # in batch 1, again in 2
    parsed = [(i, r) for i, r in enumerate([*rows[:5], restated, *rows[5:]], 1)]
    writer = _CountingWriter(rt, await IdentityResolver.current(rt.db))

    stats, errors = await ingest_parsed(rt, parsed, batch_size=4, writer=writer)

    assert not errors and stats.new == 40 and stats.replaced == 1
    assert writer.peak == (1 if rt.db.is_sqlite else PG_IN_FLIGHT)
    expected = sum(r.cost_micros or 0 for r in rows) - rows[2].cost_micros + to_micros("9.00")
    assert await stored_total(rt) == expected == await rollup_total(rt)
    async with rt.db.reader() as s:
        stored = await s.scalar(select(UsageRecord.cost_micros)
                                .where(UsageRecord.record_key == rows[2].key))
    assert stored == to_micros("9.00")


async def test_a_batch_of_mostly_new_rows_with_stored_ones_at_the_end(rt) -> None:  # type: ignore[no-untyped-def]
    """SQLite inserts a batch whose first keys are new before reading anything; rows it
    skipped (already stored) must still count as unchanged or replaced, exactly."""
    stored = [record(rt, "tomas.novak@acme.example", date(2026, 11, 3), cost="1.00")
              for _ in range(3)]
    await write(rt, stored)
    fresh = [record(rt, "aisha.bello@acme.example", date(2026, 11, 4), cost=f"0.{i:02d}")
             for i in range(1, 41)]
    restated = replace(stored[1], cost_micros=to_micros("4.00"))
    writer = await UsageWriter.create(rt)

    stats = await writer.write([*fresh, stored[0], restated])

    assert (stats.new, stats.unchanged, stats.replaced) == (40, 1, 1)
    expected = to_micros("1.00") * 2 + to_micros("4.00") + sum(
        r.cost_micros or 0 for r in fresh)
    assert await stored_total(rt) == expected == await rollup_total(rt)
    again = await writer.write([*fresh, stored[0], restated])
    assert (again.new, again.unchanged, again.replaced) == (0, 42, 0)
    assert await stored_total(rt) == expected == await rollup_total(rt)


def _big_csv(path: Path, n: int) -> int:
    """n good rows (each with its cost) and two bad ones at lines 5 and n + 3."""
    lines = [CSV_HEADER]
    total = 0
    for i in range(n):
        cost = f"0.{i % 97 + 1:06d}"
        total += to_micros(cost)
        lines.append(f"2026-11-0{3 + i % 5}T{i % 24:02d}:00:00Z,"
                     f"{'tomas.novak' if i % 3 else 'aisha.bello'}@acme.example,gpt-4o,"
                     f"{100 + i},{10 + i},{cost},,w{i}\n")
        if i == 2:
            lines.append("2026-11-03T10:00:00Z,tomas.novak@acme.example,,1,1,0.1,,bad1\n")
    lines.append("2026-11-03T10:00:00Z,tomas.novak@acme.example,gpt-4o,x,1,0.1,,bad2\n")
    path.write_text("".join(lines))
    return total


async def test_a_large_file_is_prepared_in_a_worker_process(rt, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The worker path (used for large files on SQLite) stores exactly what the file says,
    reports bad rows by line, and a second ingest changes nothing. Forced here for small
    files, several batches, and PostgreSQL too."""
    from bot.usage import file_worker
    from bot.usage import ingest as ingest_module

    started: list[Path] = []

    class Spy(file_worker.FileWorker):
        def start(self) -> None:
            started.append(path)
            super().start()

    monkeypatch.setattr(file_worker, "worthwhile", lambda _path, _sqlite: True)
    monkeypatch.setattr(file_worker, "FileWorker", Spy)
    monkeypatch.setattr(ingest_module, "BATCH_SIZE", 7)
    path = tmp_path / "big.csv"
    expected = _big_csv(path, 40)

    stats, errors = await ingest_module.ingest_file(rt, path)

    assert started == [path]
    assert (stats.read, stats.new, stats.rejected) == (40, 40, 2)
    assert [(e.line, "model is required" in e.message or "input_tokens" in e.message)
            for e in errors] == [(5, True), (43, True)]
    assert await stored_total(rt) == expected == await rollup_total(rt)
    again, _ = await ingest_module.ingest_file(rt, path)
    assert (again.new, again.unchanged, again.replaced) == (0, 40, 0)
    assert await stored_total(rt) == expected == await rollup_total(rt)


async def test_a_worker_failure_is_raised_and_writes_nothing(rt, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bot.usage import file_worker
    from bot.usage.ingest import ingest_file

    monkeypatch.setattr(file_worker, "worthwhile", lambda _path, _sqlite: True)
    path = tmp_path / "usage.txt"
    path.write_text(CSV_HEADER + "".join(GOOD_CSV))
    with pytest.raises(ValueError, match="unsupported file type"):
        await ingest_file(rt, path)
    assert await stored_total(rt) == 0


async def test_a_file_that_is_not_utf8_is_refused_before_anything_is_stored(rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "latin1.csv"
    path.write_bytes((CSV_HEADER + GOOD_CSV[0]).encode()
                     + "2026-11-03T10:00:00Z,jos\u00e9@acme.example,gpt-4o,1,1,0.1,,r9\n"
                     .encode("latin-1"))
    code, _, err = await asyncio.to_thread(ingest, path, rt.env.database_url)
    assert code == 2 and "line 3 is not UTF-8 text" in err and "Traceback" not in err
    assert await stored_total(rt) == 0
