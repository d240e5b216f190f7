"""Threshold alerts: once per crossing per month, across reruns, restatements, restarts."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from bot.reply import Reply
from bot.scheduling.runner import run_job
from bot.store.tables import OutboxMessage, ThresholdAlert
from bot.textrender import as_text
from bot.usage.writer import UsageWriter
from tests.helpers.crafted import record, write

AT = "2026-11-18T15:00:00+00:00"
OMAR = "omar.haddad@acme.example"  # default cap $1,500


async def alerts(rt) -> list[tuple[str, Reply]]:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        rows = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "threshold_alert").order_by(OutboxMessage.id))).all()
    return [(r.dedupe_key.split("@")[0], Reply.from_json(r.payload)) for r in rows]


async def test_each_crossing_alerts_once(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = await make_runtime()
    rt.clock.set(AT)
    await write(rt, [record(rt, OMAR, date(2026, 11, 2), cost="800.00", category="summarization")])
    await run_job(rt, "alerts")
    assert [k.split(":")[3:] for k, _ in await alerts(rt)] == [["actual", "50"]]

    rt.clock.advance(minutes=30)
    await run_job(rt, "alerts")
    assert len(await alerts(rt)) == 1  # nothing new crossed

    # Jump from 53% to 107%: one message (the highest), both crossings recorded.
    await write(rt, [record(rt, OMAR, date(2026, 11, 17), cost="800.00", category="chat")])
    rt.clock.advance(minutes=30)
    await run_job(rt, "alerts")
    got = await alerts(rt)
    assert [k.split(":")[3:] for k, _ in got] == [["actual", "50"], ["actual", "100"]]
    body = as_text(got[-1][1])
    assert "reached your ai budget" in body.lower() and "[Request sandbox budget]" in body
    async with rt.db.reader() as s:
        marks = sorted((await s.scalars(select(ThresholdAlert.threshold))).all())
    assert marks == [50, 80, 100]


async def test_restatement_and_restart_do_not_realert(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = await make_runtime()
    rt.clock.set(AT)
    big = record(rt, OMAR, date(2026, 11, 3), cost="1300.00", category="summarization")
    await write(rt, [big])
    await run_job(rt, "alerts")
    assert len(await alerts(rt)) == 1  # 86%: the 80% alert
    # The provider restates the bucket down to 40%, then back up to 90%.
    big.cost_micros = 600_000_000
    await (await UsageWriter.create(rt)).write([big])
    rt.clock.advance(minutes=30)
    await run_job(rt, "alerts")
    big.cost_micros = 1_350_000_000
    await (await UsageWriter.create(rt)).write([big])
    # A restart: a fresh runtime on the same database.
    fresh = await make_runtime(sync=False)
    fresh.clock.set(rt.now() + timedelta(hours=1))
    await run_job(fresh, "alerts")
    assert len(await alerts(fresh)) == 1


async def test_forecast_alert_names_the_day(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = await make_runtime()
    rt.clock.set(AT)  # Nov 18: $60/day for 17 days = $1,020 (68%), on pace for ~$1,800
    await write(rt, [record(rt, OMAR, date(2026, 11, d), cost="60.00", category="agentic",
                            tools=2) for d in range(1, 18)])
    await run_job(rt, "alerts")
    got = await alerts(rt)
    keys = [k.split(":")[3:] for k, _ in got]
    assert ["actual", "50"] in keys
    rt.clock.advance(minutes=30)
    await run_job(rt, "alerts")
    keys = [k.split(":")[3:] for k, _ in await alerts(rt)]
    assert ["forecast", "100"] in keys and len(keys) == 2
    forecast = next(r for k, r in await alerts(rt) if ":forecast:" in k)
    # $1,020 spent, $480 left at $60/day: 8 days from Nov 18 15:00 -> Nov 26.
    assert "Nov 26" in as_text(forecast)
