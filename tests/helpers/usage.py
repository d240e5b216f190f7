"""Seeding usage through the real writer, and independent sums straight from the rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from bot.demo import seed_usage
from bot.runtime import Runtime
from bot.store.tables import UsageDaily, UsageRecord
from bot.timeutil import month_at


async def seed_demo(rt: Runtime, emails: list[str] | None = None, days: int = 20) -> None:
    emails = emails or [p.email for p in rt.config.directory.people]
    await seed_usage(rt, emails, days=days)


async def raw_month_spend(rt: Runtime, email: str, at: datetime | None = None) -> int:
    """Month-to-date micro-dollars for a person, summed from usage_records directly
    (not from the rollup the ledger reads), as an independent check."""
    month = month_at(at or rt.now(), rt.tz)
    async with rt.db.reader() as s:
        value: Any = await s.scalar(text(
            "SELECT COALESCE(SUM(u.cost_micros), 0) FROM usage_records u "
            "JOIN people p ON p.id = u.person_id "
            "WHERE p.email = :e AND u.day >= :a AND u.day <= :b"),
            {"e": email, "a": month.first, "b": month.last})
    return int(value)


async def totals(rt: Runtime) -> tuple[int, int, int]:
    """(records, their cost, the rollup's cost): the last two agree when the store is exact."""
    async with rt.db.reader() as s:
        n = await s.scalar(select(func.count()).select_from(UsageRecord))
        raw = await s.scalar(select(func.coalesce(func.sum(UsageRecord.cost_micros), 0)))
        daily = await s.scalar(select(func.coalesce(func.sum(UsageDaily.cost_micros), 0)))
    return int(n or 0), int(raw or 0), int(daily or 0)
