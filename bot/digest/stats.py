"""Team figures from the daily rollup (aggregates only; no names here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.money import pct, to_micros
from bot.runtime import Runtime
from bot.store.tables import Person, Team, UsageDaily
from bot.timeutil import Month, local_day, month_of


@dataclass(frozen=True)
class TeamMonth:
    team_id: int
    month: Month
    spent: int
    budget: int
    active_people: int
    agentic: int
    low_value: int

    @property
    def agentic_share(self) -> int:
        return pct(self.agentic, self.spent)

    @property
    def low_value_share(self) -> int:
        return pct(self.low_value, self.spent)


async def team_budget(rt: Runtime, s: AsyncSession, team: Team) -> int:
    """An explicit team budget, else the sum of its members' monthly caps."""
    if team.budget_micros is not None:
        return team.budget_micros
    default = to_micros(rt.config.policy.default_cap_usd)
    caps = (await s.execute(select(Person.cap_micros).where(Person.team_id == team.id,
                                                            Person.active))).scalars().all()
    team_cap = team.cap_micros
    return sum(c if c is not None else (team_cap if team_cap is not None else default)
               for c in caps)


async def team_month(rt: Runtime, s: AsyncSession, team_id: int,
                     now: datetime | None = None) -> TeamMonth:
    month = month_of(local_day(now or rt.now(), rt.tz))
    cats = rt.config.categories
    rows = await s.execute(
        select(UsageDaily.category, func.sum(UsageDaily.cost_micros))
        .where(UsageDaily.team_id == team_id, UsageDaily.day >= month.first,
               UsageDaily.day <= month.last)
        .group_by(UsageDaily.category)
    )
    by_cat = {c: int(v or 0) for c, v in rows}
    active = await s.scalar(
        select(func.count(func.distinct(UsageDaily.person_id)))
        .where(UsageDaily.team_id == team_id, UsageDaily.day >= month.first,
               UsageDaily.day <= month.last, UsageDaily.person_id != 0, UsageDaily.cost_micros > 0)
    )
    team = await s.get(Team, team_id)
    assert team is not None
    return TeamMonth(
        team_id=team_id,
        month=month,
        spent=sum(by_cat.values()),
        budget=await team_budget(rt, s, team),
        active_people=int(active or 0),
        agentic=sum(v for c, v in by_cat.items() if c in cats.agentic),
        low_value=sum(v for c, v in by_cat.items() if c in cats.low_value),
    )
