"""The demo org: believable, idempotent, every flow has data."""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import func, select

from bot.store.tables import OutboxMessage, SandboxGrant, SandboxRequest, UsageRecord
from tests.helpers.cli import tokencoach


async def test_demo_is_idempotent_and_complete(rt) -> None:  # type: ignore[no-untyped-def]
    url = rt.env.database_url
    first = await asyncio.to_thread(tokencoach, "demo", "--days", "30", database_url=url)
    assert first.returncode == 0, first.stderr
    assert "activity: requests=2, grants=1" in first.stdout
    async with rt.db.reader() as s:
        records = await s.scalar(select(func.count()).select_from(UsageRecord))
        people = await s.scalar(select(func.count(func.distinct(UsageRecord.person_id))))
        pending = await s.scalar(select(func.count()).select_from(SandboxRequest).where(
            SandboxRequest.status == "pending"))
        grants = await s.scalar(select(func.count()).select_from(SandboxGrant).where(
            SandboxGrant.outcome.is_not(None)))
        cards = await s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "approval_request"))
        unattributed = await s.scalar(select(func.count()).select_from(UsageRecord).where(
            UsageRecord.person_id.is_(None)))
    assert records > 3000 and people == 30 and unattributed == 20
    assert (pending, grants, cards) == (1, 1, 2)
    again = await asyncio.to_thread(tokencoach, "demo", "--days", "30", database_url=url)
    assert re.search(r"new\s*│\s*0\s*│", again.stdout) and "activity" not in again.stdout
    skipped = await asyncio.to_thread(tokencoach, "demo", "--if-empty", database_url=url)
    assert "already present" in skipped.stdout
    async with rt.db.reader() as s:
        assert await s.scalar(select(func.count()).select_from(UsageRecord)) == records
