"""Demo activity beyond usage: a finished experiment with its outcome, one pending request
waiting on a manager, and some unattributed spend — created through the real flows (at
past times), so the cards, grants, audit rows and outbox messages are all genuine."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.approvals import flow
from bot.directory import person_by_email
from bot.runtime import Runtime
from bot.store.tables import AuditEntry, SandboxGrant
from bot.timeutil import local_day
from bot.usage.record import RawUsage, record_key
from bot.usage.writer import UsageWriter

MARKER = "demo.activity_seeded"
FINISHED = (
    "aisha.bello@acme.example",
    "priya.raman@acme.example",
    "250",
    "Build a review agent that checks our Terraform plans",
    "Caught 3 risky changes in two weeks; the team wants it in CI.",
)
PENDING = (
    "omar.haddad@acme.example",
    "300",
    "Turn my weekly customer-call summaries into a research agent that cites sources",
)


async def seed_activity(rt: Runtime) -> dict[str, int]:
    """Idempotent: a marker row in the audit log says it has been done."""
    async with rt.db.reader() as s:
        if await s.scalar(select(AuditEntry.id).where(AuditEntry.action == MARKER)):
            return {}
        emails = {p.email for p in rt.config.directory.people}
    now = rt.now()
    done = {"requests": 0, "grants": 0, "unattributed_records": 0}
    if {FINISHED[0], FINISHED[1], PENDING[0]} <= emails:
        async with rt.db.reader() as s:
            aisha = await person_by_email(s, FINISHED[0])
            priya = await person_by_email(s, FINISHED[1])
            omar = await person_by_email(s, PENDING[0])
        assert aisha and priya and omar
        past = rt.frozen_at(now - timedelta(days=20))
        req = await flow.create(
            past, aisha, amount=FINISHED[2], purpose=FINISHED[3], duration="30", platform="demo"
        )
        await flow.decide(
            rt.frozen_at(now - timedelta(days=20) + timedelta(hours=2)),
            priya,
            f"{req.id}:1",
            approve=True,
            platform="demo",
        )
        async with rt.db.reader() as s:
            grant_id = await s.scalar(
                select(SandboxGrant.id).where(SandboxGrant.request_id == req.id)
            )
        await flow.record_outcome(
            rt.frozen_at(now - timedelta(days=3)),
            aisha,
            str(grant_id),
            FINISHED[4],
            platform="demo",
        )
        await flow.create(
            rt.frozen_at(now - timedelta(hours=3)),
            omar,
            amount=PENDING[1],
            purpose=PENDING[2],
            platform="demo",
        )
        done.update(requests=2, grants=1)
    # A CI pipeline's API key nobody mapped: the admin views show it as unattributed.
    writer = await UsageWriter.create(rt)
    today = local_day(now, rt.tz)
    records = []
    for offset in range(20):
        day = today - timedelta(days=offset)
        at = now - timedelta(days=offset, hours=2)
        records.append(
            RawUsage(
                key=record_key("demo-ci", day),
                source="openai",
                occurred_at=at.replace(minute=0, second=0, microsecond=0),
                provider="openai",
                model="gpt-4.1-mini",
                input_tokens=400_000,
                output_tokens=60_000,
                requests=120,
                api_key="key_ci_pipeline",
                project="proj_ci",
            )
        )
    stats = await writer.write(records)
    done["unattributed_records"] = stats.new
    async with rt.db.session() as s:
        s.add(AuditEntry(at=now, actor="demo", action=MARKER, detail=done))
    return done
