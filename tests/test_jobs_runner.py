"""Claims: a job's period runs once across replicas, restarts and manual runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.scheduling import claims
from bot.scheduling.registry import JobSpec, Occurrence, last_fire
from bot.scheduling.runner import run_due, run_job, run_occurrence
from bot.store.tables import JobClaim
from tests.helpers.cli import tokencoach


async def test_claim_is_exclusive(rt) -> None:  # type: ignore[no-untyped-def]
    now = rt.now()
    results = await asyncio.gather(*(
        claims.claim(rt.db, "x", "p1", now=now, lease=timedelta(minutes=5)) for _ in range(8)))
    assert results.count(True) == 1


async def test_dead_holder_is_taken_over_after_lease(rt) -> None:  # type: ignore[no-untyped-def]
    now = rt.now()
    assert await claims.claim(rt.db, "x", "p", now=now, lease=timedelta(minutes=5))
    # Nobody finished it: before the lease ends, no takeover; after, exactly one.
    assert not await claims.claim(rt.db, "x", "p", now=now + timedelta(minutes=4),
                                  lease=timedelta(minutes=5))
    later = now + timedelta(minutes=6)
    taken = await asyncio.gather(*(
        claims.claim(rt.db, "x", "p", now=later, lease=timedelta(minutes=5)) for _ in range(4)))
    assert taken.count(True) == 1
    async with rt.db.reader() as s:
        row = await s.scalar(select(JobClaim).where(JobClaim.job == "x"))
    assert row.attempts == 2 and row.status == "running"


async def test_failed_run_is_retried_after_backoff_then_given_up(rt) -> None:  # type: ignore[no-untyped-def]
    calls = []

    async def boom(_rt, occ):  # type: ignore[no-untyped-def]
        calls.append(occ.period)
        raise RuntimeError("provider down")

    async def due(_rt, at):  # type: ignore[no-untyped-def]
        return [Occurrence("p", at)]

    spec = JobSpec("boom", "fails", boom, due=due)
    occ = Occurrence("p", rt.now())
    first = await run_occurrence(rt, spec, occ)
    assert first.ran and not first.ok and "provider down" in first.error
    assert not (await run_occurrence(rt, spec, occ)).ran  # within the backoff
    for _ in range(3):
        rt.clock.advance(minutes=6)
        await run_occurrence(rt, spec, occ)
    assert len(calls) == 3  # MAX_ATTEMPTS, then it stays failed
    assert await claims.settled(rt.db, "boom", ["p"]) == {"p"}


async def test_run_due_catches_up_once_and_marks_late(rt) -> None:  # type: ignore[no-untyped-def]
    # The bot ran yesterday; the retention cron fires at 03:30 org time and the bot was
    # down until 15:00: that run is caught up, once.
    await run_due(rt, rt.now() - timedelta(days=1))
    outcomes = await run_due(rt)
    retention = [o for o in outcomes if o.job == "retention"]
    assert len(retention) == 1 and retention[0].ran and retention[0].late
    again = [o for o in await run_due(rt) if o.job == "retention"]
    assert again == []  # settled: nothing to do


def test_last_fire_in_zone() -> None:
    from datetime import datetime

    at = datetime.fromisoformat("2026-11-23T15:00:00+00:00")  # Monday 10:00 in New York
    fired = last_fire("0 9 * * mon", "America/New_York", at, timedelta(days=8))
    assert fired == datetime.fromisoformat("2026-11-23T14:00:00+00:00")
    assert last_fire("0 9 * * mon", "America/New_York", at - timedelta(hours=2),
                     timedelta(days=1)) is None


async def test_run_job_unknown_name(rt) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyError):
        await run_job(rt, "no-such-job")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_processes_run_a_period_once(db_url: str) -> None:  # type: ignore[no-untyped-def]
    at = "2026-11-20T09:00:00+00:00"

    async def one() -> str:
        result = await asyncio.to_thread(
            tokencoach, "jobs", "run", "retention", "--at", at, "--no-deliver",
            database_url=db_url)
        assert result.returncode == 0, result.stderr
        return result.stdout

    outputs = await asyncio.gather(one(), one())
    joined = "\n".join(outputs)
    assert joined.count(": ran") == 1, joined
    assert joined.count("skipped (already claimed or done)") == 1, joined


async def test_a_job_that_loses_its_claim_stops(rt) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    finished = []

    async def slow(_rt, occ):  # type: ignore[no-untyped-def]
        await asyncio.sleep(5)
        finished.append(occ.period)

    async def due(_rt, at):  # type: ignore[no-untyped-def]
        return [Occurrence("p", at)]

    spec = JobSpec("slow", "sleeps", slow, due=due, lease=timedelta(seconds=1.5))
    run = asyncio.create_task(run_occurrence(rt, spec, Occurrence("p", rt.now())))
    await asyncio.sleep(0.3)
    # Its lease ran out during a stall and another process took the period over.
    async with rt.db.session() as s:
        await s.execute(update(JobClaim).where(JobClaim.job == "slow").values(owner="elsewhere:1"))
    outcome = await asyncio.wait_for(run, timeout=4)
    assert outcome.ran and not outcome.ok and "lost its claim" in outcome.error
    assert finished == []
    async with rt.db.reader() as s:
        row = await s.scalar(select(JobClaim).where(JobClaim.job == "slow"))
    assert row.owner == "elsewhere:1" and row.status == "running"  # left to its new owner
