"""A person's last months (`/tokens history`) and the month's unattributed spend."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.directory import PersonView
from bot.ledger.read import cap_for
from bot.money import pct
from bot.runtime import Runtime
from bot.store.tables import UsageDaily, UsageRecord
from bot.timeutil import Month, local_day, month_of


@dataclass(frozen=True)
class MonthLine:
    month: Month
    spent: int
    cap: int
    agentic_share: int
    low_value_share: int


async def history(
    rt: Runtime, s: AsyncSession, person: PersonView, months: int = 6, now: datetime | None = None
) -> list[MonthLine]:
    now = now or rt.now()
    current = month_of(local_day(now, rt.tz))
    periods = [current]
    while len(periods) < months:
        periods.append(periods[-1].previous())
    rows = await s.execute(
        select(UsageDaily.day, UsageDaily.category, func.sum(UsageDaily.cost_micros))
        .where(
            UsageDaily.person_id == person.id,
            UsageDaily.day >= periods[-1].first,
            UsageDaily.day <= current.last,
        )
        .group_by(UsageDaily.day, UsageDaily.category)
    )
    cats = rt.config.categories
    spent: dict[str, int] = defaultdict(int)
    agentic: dict[str, int] = defaultdict(int)
    low: dict[str, int] = defaultdict(int)
    for day, category, cost in rows:
        key = day.strftime("%Y-%m")
        spent[key] += int(cost or 0)
        if category in cats.agentic:
            agentic[key] += int(cost or 0)
        if category in cats.low_value:
            low[key] += int(cost or 0)
    cap = await cap_for(rt, person, within=s)
    return [
        MonthLine(
            m, spent[m.key], cap, pct(agentic[m.key], spent[m.key]), pct(low[m.key], spent[m.key])
        )
        for m in periods
    ]


async def unattributed(
    rt: Runtime, s: AsyncSession, now: datetime | None = None
) -> list[tuple[str, int, int]]:
    """Month-to-date spend nobody could be matched to: (identity, records, micros)."""
    now = now or rt.now()
    month = month_of(local_day(now, rt.tz))
    rows = await s.execute(
        select(UsageRecord.identity, func.count(), func.sum(UsageRecord.cost_micros))
        .where(
            UsageRecord.person_id.is_(None),
            UsageRecord.day >= month.first,
            UsageRecord.day <= month.last,
        )
        .group_by(UsageRecord.identity)
        .order_by(func.sum(UsageRecord.cost_micros).desc())
    )
    return [(ident or "unknown", int(n), int(c or 0)) for ident, n, c in rows]
