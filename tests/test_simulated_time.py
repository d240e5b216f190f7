"""Simulated time never changes or destroys real state, and a fresh install does not catch
up history it never missed. On SQLite and PostgreSQL, through the scheduler, the CLI and
the playground's HTTP API."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.approvals import flow
from bot.directory import person_by_email
from bot.reply import Reply
from bot.runtime import Runtime
from bot.scheduling.runner import run_due, run_job
from bot.server import build_app
from bot.store.tables import (
    AuditEntry,
    JobClaim,
    JobFirstSeen,
    OutboxMessage,
    PlaygroundMessage,
    SandboxRequest,
    UsageDaily,
    UsageRecord,
)
from bot.textrender import as_text
from bot.timeutil import utcnow
from tests.conftest import with_overrides
from tests.helpers.cli import tokencoach
from tests.helpers.crafted import record, write
from tests.helpers.server import serving

TOMAS = "tomas.novak@acme.example"
OMAR = "omar.haddad@acme.example"
PLATFORM = [TOMAS, "aisha.bello@acme.example", "lena.fischer@acme.example",
            "grace.kim@acme.example", "rafael.costa@acme.example", OMAR]
WEDNESDAY = datetime.fromisoformat("2026-11-18T15:00:00+00:00")  # the FakeClock's start
NEXT_MONDAY = datetime.fromisoformat("2026-11-23T14:05:00+00:00")  # 09:05 in New York


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def usage(rt: Runtime) -> None:
    """Three weeks of spend for the platform team; Omar mostly chats (a nudge candidate)."""
    recs = []
    for i in range(21):
        day = date(2026, 10, 28) + timedelta(days=i)
        for email in PLATFORM:
            kind = "chat" if email == OMAR else "agentic"
            recs.append(record(rt, email, day, cost="4.00", category=kind))
    await write(rt, recs)


async def count(rt: Runtime, model: Any, *where: Any) -> int:
    async with rt.db.reader() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def counts(rt: Runtime) -> dict[str, int]:
    """What a simulation must leave exactly as it was in the real store."""
    models = {"usage": UsageRecord, "daily": UsageDaily, "audit": AuditEntry, "claims": JobClaim,
              "outbox": OutboxMessage, "messages": PlaygroundMessage, "requests": SandboxRequest}
    return {name: await count(rt, model) for name, model in models.items()}


async def outbox_kinds(rt: Runtime) -> list[str]:
    async with rt.db.reader() as s:
        return list((await s.scalars(select(OutboxMessage.kind))).all())


# --- a fresh install does not catch up history (item 3) ---------------------------------


async def test_a_fresh_install_does_not_post_last_weeks_digest_or_a_burst_of_tips(
        rt: Runtime) -> None:
    await usage(rt)
    # First start on a Wednesday: Monday's digests, Tuesday's tip sweep, today's 03:30
    # retention and Monday's admin digest all fell due before the bot existed.
    first = await run_due(rt)
    ran = {o.job for o in first if o.ran}
    assert not ran & {"digests", "nudges", "retention", "admin-digest"}, ran
    assert "approvals" in ran  # due right now (every 10 minutes): on time, not history
    assert not any(o.late for o in first)
    assert not {"digest", "manager_digest", "nudge", "admin_digest"} & set(await outbox_kinds(rt))

    # Next Monday the bot is still here: New York's digest is on time; Berlin's fell due
    # at 08:00 UTC while the bot was down — that is downtime after it ran, caught up late.
    rt.clock.set(NEXT_MONDAY)
    digests = {o.period: o for o in await run_due(rt) if o.job == "digests"}
    assert digests["platform:2026-W48"].ran and not digests["platform:2026-W48"].late
    assert digests["support:2026-W48"].ran and digests["support:2026-W48"].late


async def test_downtime_after_the_bot_ran_is_caught_up_once(rt: Runtime) -> None:
    await run_due(rt, WEDNESDAY - timedelta(days=1))  # the bot ran on Tuesday
    outcomes = [o for o in await run_due(rt) if o.job == "retention"]  # back on Wednesday
    assert len(outcomes) == 1 and outcomes[0].ran and outcomes[0].late
    assert [o for o in await run_due(rt) if o.job == "retention"] == []


# --- simulated runs (item 1) -------------------------------------------------------------


async def test_retention_never_deletes_from_a_simulated_future(make_runtime,
                                                               base_config) -> None:  # type: ignore[no-untyped-def]
    writer = await make_runtime()  # written under the default window, then shortened
    old = [record(writer, OMAR, date(2026, 8, 10), cost="10.25")]  # 100 days before "now"
    recent = [record(writer, OMAR, date(2026, 11, 2 + i), cost="3.50") for i in range(5)]
    await write(writer, old + recent)
    rt = await make_runtime(config=with_overrides(base_config, retention={"raw_usage_days": 60}),
                            sync=False)
    [outcome] = await run_job(rt.as_if(at("2030-01-07T14:30:00+00:00")), "retention")
    # As if it were 2030, everything would be past the window; the horizon stays real.
    assert outcome.result is not None and outcome.result["horizon"] == "2026-09-19"
    assert outcome.result["usage_records"] == 1
    assert await count(rt, UsageRecord) == 5 and await count(rt, UsageDaily) == 6


async def test_simulated_runs_are_never_late_and_are_kept_apart(rt: Runtime) -> None:
    await usage(rt)
    await run_due(rt)  # the bot is running (Wednesday)
    async with rt.db.reader() as s:
        tomas = await person_by_email(s, TOMAS)
    assert tomas is not None
    await flow.create(rt, tomas, amount="250", purpose="Build an agent that triages bugs",
                      platform="slack")
    real_claims = await count(rt, JobClaim)

    # As if it were Tuesday 16:00 New York: Monday's digests are hours old, the request
    # is past its 48 h escalation. A chosen time is not a catch-up: nothing is "late".
    sim = rt.as_if(at("2026-11-24T21:00:00+00:00"))
    outcomes = [o for o in await run_due(sim) if o.ran]
    assert {"digests", "approvals", "nudges"} <= {o.job for o in outcomes}
    assert not any(o.late for o in outcomes)
    async with rt.db.reader() as s:
        digest = await s.scalar(select(OutboxMessage).where(
            OutboxMessage.dedupe_key == "digest:platform:2026-W48@playground"))
        sims = (await s.scalars(select(JobClaim.simulated))).all()
        audit = {a: sim for a, sim in await s.execute(
            select(AuditEntry.action, AuditEntry.simulated))}
    assert digest is not None and "late" not in as_text(Reply.from_json(digest.payload))
    assert sims.count(False) == real_claims and sims.count(True) == len(outcomes)
    assert audit["sandbox.requested"] is False and audit["sandbox.escalated"] is True
    simulated = [action for action, flag in audit.items() if flag]
    assert set(simulated) == set(audit) - {"sandbox.requested"}

    # `tokencoach audit` lists real entries; simulated ones only when asked for.
    real = await asyncio.to_thread(tokencoach, "audit", database_url=rt.env.database_url)
    assert real.returncode == 0, real.stderr
    assert "sandbox.requested" in real.stdout and "sandbox.escalated" not in real.stdout
    n = len(simulated)
    assert f"{n} entr{'y' if n == 1 else 'ies'} written by simulated runs (--at) not shown" \
        in real.stdout
    only = await asyncio.to_thread(tokencoach, "audit", "--simulated",
                                   database_url=rt.env.database_url)
    assert "sandbox.escalated" in only.stdout and "sandbox.requested" not in only.stdout


async def test_the_cli_refuses_a_time_before_the_last_real_run(rt: Runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    await usage(rt)
    await run_due(rt)  # a real run at Wednesday 10:00 New York
    before = await counts(rt)
    for args in (("jobs", "run-due", "--at", "2026-11-16T09:30"),
                 ("jobs", "run", "digests", "--at", "2026-11-16T09:30"),
                 ("digest", "--at", "2026-11-16T09:30")):
        result = await asyncio.to_thread(tokencoach, *args, database_url=rt.env.database_url)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Mon Nov 16 2026, 09:30 (America/New_York) is before the jobs last ran for " \
               "real (Wed Nov 18 2026, 10:00 (America/New_York))" in result.stderr, result.stderr
    assert await counts(rt) == before
    # A preview writes nothing, so any time is fine.
    preview = await asyncio.to_thread(tokencoach, "digest", "--dry-run", "--team", "platform",
                                      "--at", "2026-11-16T09:30", "--out", str(tmp_path),
                                      database_url=rt.env.database_url)
    assert preview.returncode == 0, preview.stderr
    assert "Platform Engineering — weekly AI digest" in preview.stdout


async def test_cli_at_in_the_future_says_it_is_simulated(rt: Runtime) -> None:
    result = await asyncio.to_thread(tokencoach, "jobs", "run", "retention", "--at",
                                     "2030-01-07T04:00", "--no-deliver",
                                     database_url=rt.env.database_url)
    assert result.returncode == 0, result.stderr
    assert "simulated: as if it were Mon Jan 7 2030, 04:00 (America/New_York)" in result.stdout
    assert "(late)" not in result.stdout
    async with rt.db.reader() as s:
        claim = await s.scalar(select(JobClaim))
    assert claim is not None and claim.simulated and not claim.late


# --- the playground's "As if it were" (item 1) ------------------------------------------


class Page:
    """The playground's JSON API, as the page calls it."""

    def __init__(self, http: aiohttp.ClientSession, base: str):
        self.http, self.base = http, base

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(f"{self.base}/playground/api/{path}", json=body) as resp:
            return resp.status, await resp.json()

    async def directory(self) -> dict[str, Any]:
        async with self.http.get(f"{self.base}/playground/api/directory") as resp:
            return dict(await resp.json())

    async def texts(self, who: int) -> str:
        status, body = await self.post("messages", {"as": who, "conversation": f"dm:{who}"})
        assert status == 200, body
        return "\n".join(m["html"] for m in body["messages"])


@pytest.fixture
async def page(rt: Runtime) -> AsyncIterator[Page]:
    async with serving(build_app(rt, playground=True, background=False)) as base, \
            aiohttp.ClientSession() as http:
        yield Page(http, base)


async def test_as_if_runs_on_a_copy_and_return_to_now_throws_it_away(
        rt: Runtime, page: Page, backend: str) -> None:
    await usage(rt)
    await run_due(rt)  # the bot has been running
    async with rt.db.reader() as s:
        tomas = await person_by_email(s, TOMAS)
    assert tomas is not None
    before = await counts(rt)
    copies = set(Path(tempfile.gettempdir()).glob("tokencoach-simulated-*"))

    status, body = await page.post("run-due", {"at": "2030-01-07T09:30"})
    if backend == "postgresql":
        assert status == 409 and "SQLite" in body["error"], body
        assert await counts(rt) == before
        assert (await page.directory())["clock"]["simulated"] is False
        return

    assert status == 200, body
    assert body["as_if"] is True and body["clock"]["simulated"] is True
    assert body["world"].startswith("sim-")
    ran = {o["job"]: o for o in body["ran"]}
    assert {"retention", "digests", "approvals"} <= set(ran)
    assert not any(o["late"] for o in body["ran"])
    assert (await page.directory())["clock"]["label"].startswith("Mon Jan 7 2030")
    # Inside the simulation the page works as usual, on the copy.
    status, _ = await page.post("send", {"as": tomas.id, "text": "/tokens sandbox 300 "
                                         "Build an agent that triages bug reports"})
    assert status == 200
    assert "is with" in await page.texts(tomas.id)
    # Simulated time only moves forward.
    status, body = await page.post("run-due", {"at": "2029-12-31T09:30"})
    assert status == 409 and "only moves forward" in body["error"]

    # The real store did not change at all: not even retention's deletions from 2030.
    assert await counts(rt) == before
    folders = set(Path(tempfile.gettempdir()).glob("tokencoach-simulated-*")) - copies
    assert len(folders) == 1

    status, body = await page.post("back-to-now", {})
    assert status == 200 and body["discarded"] is True and body["world"].startswith("real-")
    assert (await page.directory())["clock"]["simulated"] is False
    assert "is with" not in await page.texts(tomas.id)
    assert await counts(rt) == before
    assert not any(f.exists() for f in folders)


async def test_as_if_before_the_last_real_run_is_refused(rt: Runtime, page: Page) -> None:
    await run_due(rt)  # a real run at Wednesday 10:00 New York
    status, body = await page.post("run-due", {"at": "2026-11-01T09:00"})
    assert status == 409
    assert "before the jobs last ran for real" in body["error"] \
        or "SQLite" in body["error"]  # PostgreSQL refuses simulated time altogether
    assert (await page.directory())["clock"]["simulated"] is False


# --- the migration ------------------------------------------------------------------------


async def test_upgrading_marks_earlier_as_if_rows_and_keeps_catch_up(
        backend: str, tmp_path: Path) -> None:
    """A store from before 0009 that an old as-if run wrote future rows into: they become
    simulated, and each job's first sighting is its oldest real claim."""
    from sqlalchemy import text

    from bot.store import Database
    from tests.helpers import databases

    if backend == "sqlite":
        url, name = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}", None
    else:
        name = f"tc_t_mig_{uuid.uuid4().hex[:10]}"
        url = databases.pg_url(name)
    try:
        old = await asyncio.to_thread(tokencoach, "db", "upgrade", "--revision", "0003",
                                      database_url=url)
        assert old.returncode == 0, old.stderr
        db = Database(url)
        past, future = utcnow() - timedelta(days=3), utcnow() + timedelta(days=400)
        async with db.session() as s:
            for period, when in (("p1", past), ("p2", future)):
                await s.execute(text(
                    "INSERT INTO job_claims (job, period, status, owner, claimed_at, "
                    "lease_until, attempts, late) VALUES ('digests', :p, 'done', 'x', :at, "
                    ":at, 1, FALSE)"), {"p": period, "at": when})
                await s.execute(text(
                    "INSERT INTO audit_log (at, actor, action) VALUES (:at, 'scheduler', "
                    ":a)"), {"at": when, "a": f"sandbox.{period}"})
        await db.dispose()
        new = await asyncio.to_thread(tokencoach, "db", "upgrade", database_url=url)
        assert new.returncode == 0, new.stderr
        db = Database(url)
        async with db.reader() as s:
            claims = {p: sim for p, sim in await s.execute(
                select(JobClaim.period, JobClaim.simulated))}
            audit = {a: sim for a, sim in await s.execute(
                select(AuditEntry.action, AuditEntry.simulated))}
            first = await s.scalar(select(JobFirstSeen.first_seen_at))
        await db.dispose()
        assert claims == {"p1": False, "p2": True}
        assert audit == {"sandbox.p1": False, "sandbox.p2": True}
        assert first is not None and abs((first - past).total_seconds()) < 1
    finally:
        if name:
            await databases.pg_drop(name)
