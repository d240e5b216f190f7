"""Every surface that shows a person's month, recorded as exact bytes.

Two stores, each built the same way every time: the demo org (``tokencoach demo``'s
generator and activity) and a randomized org (seeded: caps on people and teams, people
who left, grants that span months, start later or were never ended, pending requests that
get reminded, escalated and decided, tips, stale and missing sources, unattributed spend,
usage written in two phases). At each instant it records, for every active person, the
`/tokens` card, `/tokens tips` and `/tokens history`; the admin views (`/tokens admin`,
`admin balance`, `admin unattributed`, `/tokens team` for every team); a decision on
a pending request (the decided card and its figures); and every message the alerts,
approvals, digest and admin-digest jobs enqueue (cards, alerts, digest lines); and
`tokencoach balance --json` for a few people.

``month_outputs.json`` was written by this script running on main's code at 74b4a61
(before the read model), on SQLite. On PostgreSQL main's code gave the same bytes except
at 8 keys: managers' digest lines of people with equal spend (all $0.00) came in the
database's row order, which differs between the backends; the read model orders ties by
person id, which is what main's code did on SQLite. Rewritten once since, on purpose:
issue #22 shows a percentage above 999 as ">999%" (two `/tokens history` lines of the
randomized org changed, nothing else).

    python -m tests.golden.month_outputs --write    # both backends must agree
    python -m tests.golden.month_outputs --dump DIR # the texts themselves, for a diff

tests/test_month_outputs.py rebuilds both stores on both backends and compares.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, update

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("month_outputs.json")
# A Monday after the digests' 09:00 in every team's zone, then the first days of the
# next month (forecasts without history, grants that began last month).
INSTANTS = ("2026-11-23T17:30:00+00:00", "2026-12-02T16:10:00+00:00")
SCENARIOS = ("demo", "random")
CATEGORIES = ("agentic", "coding", "analysis", "writing", "summarization", "chat", "unknown")
MODELS = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"),
          ("anthropic", "claude-haiku-4-5"), ("openai", "o3"))
TUTORIALS = ("research-agent", "delegate-multistep", "agent-errors", "agent-loops",
             "verify-output", "triage-agent")


def digest_of(value: Any) -> str:
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                            ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()[:24]


class Recorder:
    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def add(self, key: str, value: Any) -> None:
        assert key not in self.items, key
        self.items[key] = value if isinstance(value, str) else json.dumps(
            value, sort_keys=True, ensure_ascii=False)


# --- stores --------------------------------------------------------------------------------


async def build_demo(rt: Any) -> None:
    from bot.demo import seed_usage
    from bot.demo_activity import seed_activity

    emails = [p.email for p in rt.config.directory.people]
    await seed_usage(rt, emails, days=45)
    await seed_activity(rt)


def _cost(rng: random.Random, big: bool = False) -> str:
    cents = rng.randint(1, 40_000 if big else 4_000)
    return str(Decimal(cents) / 100)


async def _usage(rt: Any, rng: random.Random, emails: list[str], first: date,
                 last: date) -> None:
    from tests.helpers.crafted import record, write

    recs = []
    span = (last - first).days
    for n, email in enumerate(emails):
        kind = n % 9
        if kind == 0:
            continue  # no usage at all
        if kind == 1:
            days = [last - timedelta(days=rng.randint(0, 2))]  # only the last days
        elif kind == 2:
            start = last - timedelta(days=rng.randint(3, 6))  # a short history
            days = [start + timedelta(days=i) for i in range((last - start).days + 1)]
        else:
            days = sorted({first + timedelta(days=rng.randint(0, span))
                           for _ in range(rng.randint(3, 40))})
        heavy = kind in (3, 4)
        for day in days:
            for _ in range(rng.randint(1, 3)):
                provider, model = rng.choice(MODELS)
                recs.append(record(rt, email, day, cost=_cost(rng, heavy),
                                   category=rng.choice(CATEGORIES), model=model,
                                   provider=provider, tools=rng.choice((0, 0, 3))))
    for _ in range(30):  # nobody's: a CI key
        day = first + timedelta(days=rng.randint(0, span))
        recs.append(record(rt, f"ci-{rng.randint(1, 4)}@robots.example", day, cost=_cost(rng)))
    await write(rt, recs)


async def build_random(rt: Any, clock: Any, seed: int = 18) -> list[str]:
    """The randomized org; returns the emails whose usage continues after the first instant."""
    from bot.approvals import flow
    from bot.demo import generate_people
    from bot.directory import person_by_email
    from bot.store.tables import (
        Nudge,
        Person,
        SandboxGrant,
        SandboxRequest,
        SourceState,
        Team,
        ThresholdAlert,
        TipEvent,
    )

    rng = random.Random(seed)
    await generate_people(rt, 75)
    t1 = datetime.fromisoformat(INSTANTS[0])
    async with rt.db.session() as s:
        people = (await s.execute(select(Person.id, Person.email).order_by(Person.id))).all()
        team_ids = (await s.scalars(select(Team.id).order_by(Team.id))).all()
        for tid in team_ids:
            if rng.random() < 0.4:
                cap = rng.choice((300, 900, 2500))
                await s.execute(update(Team).where(Team.id == tid)
                                .values(cap_micros=cap * 1_000_000))
        for pid, _email in people:
            values: dict[str, Any] = {}
            roll = rng.random()
            if roll < 0.2:
                values["cap_micros"] = rng.choice((0, 150, 400, 1500, 5000)) * 1_000_000
            if rng.random() < 0.25:
                values["timezone"] = rng.choice(("Europe/Berlin", "Asia/Tokyo",
                                                 "America/Los_Angeles", "Pacific/Auckland"))
            if values:
                await s.execute(update(Person).where(Person.id == pid).values(**values))
    emails = [e for _pid, e in people]
    today = t1.date()
    await _usage(rt, rng, emails, today - timedelta(days=80), today)

    # Requests and grants through the real flow, at past times, then grants reshaped.
    made = 0
    for email in rng.sample(emails, 24):
        async with rt.db.reader() as s:
            person = await person_by_email(s, email)
        if person is None or person.manager_id is None:
            continue
        recent = made % 3 == 0  # waiting: reminded, escalated, expired or decided below
        when = t1 - (timedelta(days=rng.randint(1, 8), hours=rng.randint(0, 20)) if recent
                     else timedelta(days=rng.randint(9, 60)))
        amount = rng.choice((rng.randint(5, 60) * 10, 1200))  # 1200: a second stage
        try:
            req = await flow.create(rt.frozen_at(when), person, amount=str(amount),
                                    purpose=f"Experiment {made}: an agent for the {email[:4]} "
                                    "backlog", duration=str(rng.choice((7, 14, 30, 45))),
                                    platform="cli")
        except flow.RequestInvalid:
            continue
        made += 1
        if not recent:
            async with rt.db.reader() as s:
                approver = await person_by_email(s, (await s.scalar(select(Person.email).where(
                    Person.id == req.current_approver_id))) or "")
            if approver is not None:
                await flow.decide(rt.frozen_at(when + timedelta(hours=3)), approver,
                                  f"{req.id}:1", approve=rng.random() < 0.8,
                                  reason="Not this quarter", platform="cli")
    async with rt.db.session() as s:
        grants = (await s.scalars(select(SandboxGrant).order_by(SandboxGrant.id))).all()
        for n, g in enumerate(grants):
            if n % 4 == 1:  # began last month, ends this one
                g.starts_at = t1 - timedelta(days=35 + n)
                g.ends_at = t1 + timedelta(days=2 + n)
            elif n % 4 == 2:  # long over but never ended by the job
                g.starts_at = t1 - timedelta(days=70)
                g.ends_at = t1 - timedelta(days=40)
            elif n % 4 == 3 and n > 4:  # starts later
                g.starts_at = t1 + timedelta(days=1)
                g.ends_at = t1 + timedelta(days=20)
        pids = [p for p, _e in people]
        for pid in rng.sample(pids, 20):
            s.add(Nudge(person_id=pid, period="2026-W45", cohort=rng.choice(("nudged", "holdout")),
                        tutorial_id=rng.choice(TUTORIALS), category="summarization",
                        low_value_share_bp=7000, agentic_share_bp=300, spend_micros=90_000_000,
                        created_at=t1 - timedelta(days=rng.randint(1, 25))))
        for pid in rng.sample(pids, 15):
            s.add(TipEvent(person_id=pid, tutorial_id=rng.choice(TUTORIALS),
                           event=rng.choice(("opened", "completed", "not_now")),
                           at=t1 - timedelta(days=rng.randint(1, 20))))
        for pid in rng.sample(pids, 6):
            s.add(ThresholdAlert(person_id=pid, period="2026-11", basis="actual", threshold=50,
                                 sent_at=t1 - timedelta(days=3)))
        await s.execute(text("DELETE FROM source_state"))
        for source, age in (("openai", 1), ("anthropic", 9), ("litellm", None), ("import", 50)):
            as_of = None if age is None else t1 - timedelta(hours=age)
            s.add(SourceState(source=source, checkpoint=as_of, data_as_of=as_of,
                              last_run_at=t1, last_success_at=t1, records_total=10,
                              last_error="HTTP 503" if source == "litellm" else None,
                              last_error_at=t1 if source == "litellm" else None))
        leavers = rng.sample(pids, 5)
        await s.execute(update(Person).where(Person.id.in_(leavers)).values(active=False))
        count = await s.scalar(select(func.count()).select_from(SandboxRequest))
    assert count and count > 8, count
    clock.set(t1)
    return rng.sample(emails, 30)


# --- what people see -----------------------------------------------------------------------


async def _command(rt: Any, person: Any, words: str, n: int) -> Any:
    from handlers import handle_command
    from handlers.context import Actor, Ctx

    actor = Actor(person=person, platform="playground", platform_user_id=f"golden-{n}")
    reply = await handle_command(Ctx(rt, actor), words)
    return reply.model_dump(mode="json")


async def _outbox_since(rt: Any, after: int) -> tuple[int, list[tuple[str, str, Any]]]:
    from bot.store.tables import OutboxMessage

    async with rt.db.reader() as s:
        rows = (await s.execute(select(OutboxMessage.id, OutboxMessage.kind,
                                       OutboxMessage.dedupe_key, OutboxMessage.payload)
                                .where(OutboxMessage.id > after)
                                .order_by(OutboxMessage.id))).all()
    last = max([after] + [r[0] for r in rows])
    return last, [(kind, key, payload) for _id, kind, key, payload in rows]


async def record_outputs(rt: Any, clock: Any, out: Recorder, scenario: str,
                         between: Callable[[], Awaitable[None]] | None = None) -> None:
    from bot.directory import PersonView
    from bot.scheduling.runner import run_job
    from bot.store.tables import Person, SandboxRequest, Team
    from handlers import handle_action
    from handlers.context import Actor, Ctx

    mark, _ = await _outbox_since(rt, 0)
    n = 0
    for step, instant in enumerate(INSTANTS):
        if step and between is not None:
            await between()
        clock.set(instant)
        at = f"{scenario}@{instant[:10]}"
        async with rt.db.reader() as s:
            people = [PersonView.of(p) for p in (await s.scalars(
                select(Person).where(Person.active).order_by(Person.id))).all()]
            teams = (await s.scalars(select(Team.key).order_by(Team.id))).all()
            everyone = (await s.scalars(select(Person.email).order_by(Person.id))).all()
        admins = [p for p in people if p.is_admin]
        managers = {p.manager_id for p in people if p.manager_id}
        for p in people:
            for words in ("", "tips", "history"):
                n += 1
                out.add(f"{at}/{p.email}/tokens {words}".rstrip(),
                        await _command(rt, p, words, n))
            if p.id in managers:
                n += 1
                out.add(f"{at}/{p.email}/tokens team", await _command(rt, p, "team", n))
        for a in admins[:2]:
            for words in ["admin", "admin unattributed"] + [
                    f"admin balance {e}" for e in everyone[::7]] + [f"team {k}" for k in teams]:
                n += 1
                out.add(f"{at}/{a.email}/tokens {words}", await _command(rt, a, words, n))
        # A decision on the oldest pending request: the decided card carries the figures.
        async with rt.db.reader() as s:
            pending = (await s.execute(select(SandboxRequest.id, SandboxRequest.stage,
                                              SandboxRequest.current_approver_id)
                                       .where(SandboxRequest.status == "pending")
                                       .order_by(SandboxRequest.id).limit(1))).first()
        if pending is not None:
            approver = next((p for p in people if p.id == pending[2]), None)
            if approver is not None:
                n += 1
                result = await handle_action(
                    Ctx(rt, Actor(approver, "playground", f"golden-{n}")), "sandbox.approve",
                    f"{pending[0]}:{pending[1]}")
                out.add(f"{at}/decide {pending[0]}", result.model_dump(mode="json"))
        for job in ("alerts", "approvals", "digests", "admin-digest"):
            await run_job(rt, job)
            mark, rows = await _outbox_since(rt, mark)
            for kind, key, payload in rows:
                out.add(f"{at}/{job}/{kind}/{key}", payload)


async def record_cli(url: str, out: Recorder, scenario: str, emails: list[str]) -> None:
    """`tokencoach balance EMAIL --json --at T`, through the real console script."""
    env = dict(os.environ, DATABASE_URL=url, TOKENCOACH_CONFIG=str(REPO / "app.yaml"))
    for email in emails:
        for instant in INSTANTS:
            run = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "bot", "balance", email, "--json",
                                 "--at", instant], cwd=REPO, env=env, capture_output=True,
                text=True, timeout=120)
            assert run.returncode == 0, run.stderr
            out.add(f"{scenario}@{instant[:10]}/cli balance {email}", json.loads(run.stdout))


async def record_scenario(url: str, scenario: str) -> dict[str, str]:
    from bot.config import load_config
    from bot.config.env import Env
    from bot.directory import sync_directory
    from bot.runtime import Runtime
    from bot.store import Database
    from tests.helpers.clock import FakeClock

    clock = FakeClock(INSTANTS[0])
    rt = Runtime(config=load_config(REPO / "app.yaml"), env=Env(database_url=url),
                 db=Database(url), clock=clock)
    out = Recorder()
    try:
        await sync_directory(rt)
        between: Callable[[], Awaitable[None]] | None = None
        if scenario == "demo":
            await build_demo(rt)
            cli_people = ["tomas.novak@acme.example", "aisha.bello@acme.example"]
        else:
            later = await build_random(rt, clock)
            cli_people = later[:3]

            async def between() -> None:  # more usage arrives before the second instant
                t1 = datetime.fromisoformat(INSTANTS[0]).date()
                t2 = datetime.fromisoformat(INSTANTS[1]).date()
                await _usage(rt, random.Random(81), later, t1, t2)

        await record_outputs(rt, clock, out, scenario, between)
    finally:
        await rt.close()
    await record_cli(url, out, scenario, cli_people)
    return out.items


async def record_all(backend: str, workdir: Path) -> dict[str, str]:
    from tests.helpers import databases

    items: dict[str, str] = {}
    for scenario in SCENARIOS:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{workdir / f'{scenario}.db'}"
            await asyncio.to_thread(databases.migrate, url)
            items.update(await record_scenario(url, scenario))
            continue
        name = f"tc_golden_{os.getpid()}_{scenario}"
        await databases.pg_drop(name)
        admin = await __import__("asyncpg").connect(databases.PG_ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        try:
            url = databases.pg_url(name)
            await asyncio.to_thread(databases.migrate, url)
            items.update(await record_scenario(url, scenario))
        finally:
            await databases.pg_drop(name)
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite month_outputs.json")
    parser.add_argument("--dump", type=Path, help="write every text into this folder")
    parser.add_argument("--backend", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    results = {}
    for backend in args.backend:
        with tempfile.TemporaryDirectory() as tmp:
            results[backend] = asyncio.run(record_all(backend, Path(tmp)))
        print(f"{backend}: {len(results[backend])} outputs", file=sys.stderr)
    first = results[args.backend[0]]
    for backend, items in results.items():
        differ = sorted(k for k in first.keys() | items.keys() if first.get(k) != items.get(k))
        if differ:
            print(f"{backend} differs from {args.backend[0]} at {len(differ)} keys, e.g. "
                  f"{differ[:5]}", file=sys.stderr)
            return 1
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        (args.dump / "outputs.json").write_text(json.dumps(first, indent=1, sort_keys=True,
                                                           ensure_ascii=False))
    if args.write:
        GOLDEN.write_text(json.dumps({k: digest_of(v) for k, v in sorted(first.items())},
                                     indent=0, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN} ({len(first)} outputs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
