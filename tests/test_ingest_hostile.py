"""Hostile usage input (issue #22): out-of-range times, NUL and lone-surrogate text,
implausible costs. Each bad row is named and refused (or kept and reported), the good
rows are all stored, on SQLite and PostgreSQL alike, through the real webhook and CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from bot.config.env import Env
from bot.reply import Reply
from bot.server import build_app
from bot.store.tables import OutboxMessage, Person
from bot.textrender import as_text
from handlers import handle_command
from handlers.context import Actor, Ctx
from tests.helpers.cli import tokencoach
from tests.helpers.server import serving
from tests.helpers.usage import totals

TOKEN = "s3cret-ingest-token"
TOMAS = "tomas.novak@acme.example"
OUT_OF_RANGE = ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00")


def good(i: int) -> dict[str, Any]:
    return {"occurred_at": f"2026-11-{1 + i % 20:02d}T{i % 24:02d}:00:00Z", "user": TOMAS,
            "model": "gpt-4o", "input_tokens": 100 + i, "output_tokens": 7,
            "cost_usd": "0.001", "id": f"good-{i}"}


async def webhook_runtime(make_runtime):  # type: ignore[no-untyped-def]
    rt0 = await make_runtime()
    return await make_runtime(env=Env(database_url=rt0.env.database_url,
                                      source={"TOKENCOACH_INGEST_TOKEN": TOKEN}))


async def post(rt, body: bytes) -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    async with serving(build_app(rt, background=False)) as base, \
            aiohttp.ClientSession() as http, \
            http.post(f"{base}/ingest/usage", data=body,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        return resp.status, await resp.json()


async def test_webhook_names_bad_times_and_text_and_keeps_every_good_row(make_runtime) -> None:  # type: ignore[no-untyped-def]
    """60,000 good rows and, past the first batch, an out-of-range time, a NUL and a lone
    surrogate: 200, the bad rows named by position, all 60,000 good rows stored."""
    rt = await webhook_runtime(make_runtime)
    rows: list[Any] = [good(i) for i in range(60_000)]
    bad = {
        50_010: {**good(10**6), "occurred_at": OUT_OF_RANGE[0]},
        50_020: {**good(10**6 + 1), "occurred_at": OUT_OF_RANGE[1]},
        55_000: {**good(10**6 + 2), "model": "gpt-4o\u0000"},
        56_000: {**good(10**6 + 3), "user": "x\ud800@acme.example"},
        57_000: {**good(10**6 + 4), "project": "p\u0000"},
    }
    for position in sorted(bad):
        rows.insert(position - 1, bad[position])
    # json.dumps writes the NUL and the surrogate as \u escapes, as a client would.
    status, answer = await post(rt, json.dumps(rows).encode())
    assert status == 200, answer
    assert (answer["new"], answer["rejected"]) == (60_000, 5), answer
    named = {e["line"]: e["message"] for e in answer["errors"]}
    assert set(named) == set(bad), answer["errors"]
    assert "out of range" in named[50_010] and "out of range" in named[50_020]
    assert "model contains a NUL" in named[55_000]
    assert "user contains a lone surrogate" in named[56_000]
    assert "project contains a NUL" in named[57_000]
    assert await totals(rt) == (60_000, 60_000 * 1000, 60_000 * 1000)


async def test_ndjson_webhook_names_lines_of_bad_text(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = await webhook_runtime(make_runtime)
    lines = [json.dumps(good(1)), json.dumps({**good(2), "api_key": "k\u0000ey"}),
             json.dumps(good(3))]
    status, answer = await post(rt, "\n".join(lines).encode())
    assert status == 200
    assert answer["errors"] == [{"line": 2, "message": "api_key contains a NUL character"}]
    assert (await totals(rt))[0] == 2


async def test_cli_ingest_names_out_of_range_and_nul_rows_no_traceback(rt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "usage.jsonl"
    rows = [good(1), {**good(2), "occurred_at": OUT_OF_RANGE[0]}, good(3),
            {**good(4), "occurred_at": OUT_OF_RANGE[1]}, {**good(5), "model": "m\u0000"},
            good(6)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    csv_path = tmp_path / "usage.csv"
    csv_path.write_text("occurred_at,user,model,input_tokens,output_tokens,id\n"
                        f"{OUT_OF_RANGE[0]},{TOMAS},gpt-4o,1,1,c1\n"
                        f"2026-11-02T10:00:00Z,{TOMAS},gpt-4o,1,1,c2\n")
    result = await asyncio.to_thread(tokencoach, "ingest", str(path),
                                      database_url=rt.env.database_url)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for line in (2, 4):
        assert f"line {line}: occurred_at" in result.stderr and "out of range" in result.stderr
    assert "line 5: model contains a NUL character" in result.stderr
    result = await asyncio.to_thread(tokencoach, "ingest", str(csv_path),
                                     database_url=rt.env.database_url)
    assert result.returncode == 1 and "line 2: occurred_at" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert (await totals(rt))[0] == 3 + 1


async def test_a_large_file_through_the_worker_names_bad_text(rt, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bot.usage import file_worker
    from bot.usage import ingest as ingest_module

    monkeypatch.setattr(file_worker, "worthwhile", lambda _path, _sqlite: True)
    monkeypatch.setattr(ingest_module, "BATCH_SIZE", 3)
    path = tmp_path / "big.jsonl"
    rows = [good(i) for i in range(10)]
    rows[7] = {**rows[7], "category": "chat\u0000"}
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    stats, errors = await ingest_module.ingest_file(rt, path)
    assert (stats.new, stats.rejected) == (9, 1)
    assert [(e.line, e.message) for e in errors] == [(8, "category contains a NUL character")]


async def test_an_implausible_cost_is_kept_reported_and_never_shown_as_a_wild_percentage(
        make_runtime) -> None:  # type: ignore[no-untyped-def]
    """The probe's row: $1e9 for 1,000 tokens. Kept (the source's cost wins), named in the
    answer, one admin alert (not two for the same row sent twice), and /tokens shows no
    33333335%."""
    rt = await webhook_runtime(make_runtime)
    rows = [{**good(1), "occurred_at": "2026-11-10T10:00:00Z"},
            {"occurred_at": "2026-11-10T11:00:00Z", "user": TOMAS, "model": "gpt-4o",
             "input_tokens": 1000, "output_tokens": 0, "cost_usd": "1000000000", "id": "x"}]
    for _ in range(2):
        status, answer = await post(rt, json.dumps(rows).encode())
        assert status == 200 and answer["implausible_cost"] == 1, answer
        assert answer["warnings"][0]["line"] == 2, answer
        assert "more than 100×" in answer["warnings"][0]["message"]
    async with rt.db.reader() as s:
        alerts = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "admin_alert"))).all()
        tomas = await s.scalar(select(Person).where(Person.email == TOMAS))
        admin_ids = (await s.scalars(select(Person.id).where(Person.is_admin))).all()
    assert alerts and {a.target_id for a in alerts} == set(admin_ids)
    assert len(alerts) == len(admin_ids) * len({a.platform for a in alerts})
    shown = as_text(Reply.from_json(alerts[0].payload))
    assert "line 2" in shown and "$1,000,000,000.00" in shown
    from bot.directory import PersonView

    reply = await handle_command(Ctx(rt.frozen_at(rt.now()), Actor(
        person=PersonView.of(tomas), platform="playground", platform_user_id="u")), "")
    text = as_text(reply)  # type: ignore[arg-type]
    assert ">999% used" in text, text
    assert "33333" not in text


async def test_a_plausible_provider_cost_is_not_reported(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = await webhook_runtime(make_runtime)
    status, answer = await post(rt, json.dumps([{**good(1), "cost_usd": "0.02",
                                                 "input_tokens": 1000}]).encode())
    assert status == 200 and answer["implausible_cost"] == 0 and answer["warnings"] == []


async def test_the_writer_refuses_bad_text_per_record_for_every_source(rt) -> None:  # type: ignore[no-untyped-def]
    """Provider pulls hand RawUsage to the same writer: a NUL from a provider refuses that
    record alone (named in words, as pulls have no lines); the batch is written."""
    from dataclasses import replace
    from datetime import date

    from bot.usage.writer import UsageWriter
    from tests.helpers.crafted import record

    records = [record(rt, TOMAS, date(2026, 11, 3)) for _ in range(3)]
    records[1] = replace(records[1], source="openai", model="gpt-4o\x00mini")
    stats = await (await UsageWriter.create(rt)).write(records)
    assert (stats.new, stats.rejected) == (2, 1)
    [note] = [n for n in stats.notes if n.refused]
    assert note.message == "model contains a NUL character"
    assert note.where.startswith("openai record of 2026-11-03") and TOMAS in note.where
    assert (await totals(rt))[0] == 2
