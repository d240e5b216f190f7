"""Balances: month-to-date spend, cap, sandbox grants, remaining, mix, forecast, freshness.

Everything is read from the exact daily rollup (``usage_daily``), in the org time zone.
Money is integer micro-dollars throughout.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.directory import PersonView, cap_micros
from bot.money import pct, to_cents_str
from bot.runtime import Runtime
from bot.store.tables import SandboxGrant, SourceState, Team, UsageDaily
from bot.timeutil import Month, as_utc, local_day, month_of, start_of_day

FORECAST_WINDOW_DAYS = 7
FORECAST_MIN_DAYS = 3


@dataclass(frozen=True)
class Forecast:
    pace_per_day: int  # micro-dollars per day over the trailing window
    month_end: int  # projected month-end spend
    cap_date: date | None  # the day the limit is reached, if within the month
    already_over: bool


@dataclass(frozen=True)
class Grant:
    id: int
    amount: int
    starts_at: datetime
    ends_at: datetime


@dataclass
class Balance:
    person: PersonView
    month: Month
    today: date
    spent: int
    cap: int
    sandbox: int
    grants: list[Grant]
    by_category: list[tuple[str, int]]
    by_model: list[tuple[str, int]]
    forecast: Forecast | None
    as_of: dict[str, datetime | None] = field(default_factory=dict)
    low_value: int = 0
    agentic: int = 0

    @property
    def limit(self) -> int:
        return self.cap + self.sandbox

    @property
    def remaining(self) -> int:
        return self.limit - self.spent

    @property
    def low_value_share(self) -> int:
        return pct(self.low_value, self.spent)

    @property
    def agentic_share(self) -> int:
        return pct(self.agentic, self.spent)

    def to_json(self) -> dict[str, Any]:
        fc = self.forecast
        return {
            "person": self.person.email,
            "period": self.month.key,
            "spent_usd": to_cents_str(self.spent),
            "cap_usd": to_cents_str(self.cap),
            "sandbox_usd": to_cents_str(self.sandbox),
            "remaining_usd": to_cents_str(self.remaining),
            "by_category": {c: to_cents_str(v) for c, v in self.by_category},
            "by_model": {m: to_cents_str(v) for m, v in self.by_model},
            "low_value_share_pct": self.low_value_share,
            "agentic_share_pct": self.agentic_share,
            "forecast": None
            if fc is None
            else {
                "pace_per_day_usd": to_cents_str(fc.pace_per_day),
                "month_end_usd": to_cents_str(fc.month_end),
                "cap_date": fc.cap_date.isoformat() if fc.cap_date else None,
                "over_cap": fc.already_over,
            },
            "grants": [
                {"id": g.id, "amount_usd": to_cents_str(g.amount), "ends_at": g.ends_at.isoformat()}
                for g in self.grants
            ],
            "as_of": {k: (v.isoformat() if v else None) for k, v in self.as_of.items()},
        }


async def team_cap(s: AsyncSession, team_id: int | None) -> int | None:
    if team_id is None:
        return None
    return await s.scalar(select(Team.cap_micros).where(Team.id == team_id))


def _in_month(month: Month, now: datetime, tz: str) -> tuple[Any, ...]:
    """WHERE conditions shared by month_grants and grants_by_person."""
    return (
        SandboxGrant.status.in_(("active", "ended")),
        SandboxGrant.starts_at <= now,
        SandboxGrant.starts_at < start_of_day(month.last + timedelta(days=1), tz),
        SandboxGrant.ends_at > start_of_day(month.first, tz),
    )


async def month_grants(s: AsyncSession, person_id: int, month: Month, now: datetime,
                       tz: str) -> list[Grant]:
    """Grants that have started and overlap ``month`` (ended ones included)."""
    rows = await s.execute(
        select(SandboxGrant.id, SandboxGrant.amount_micros, SandboxGrant.starts_at,
               SandboxGrant.ends_at)
        .where(SandboxGrant.person_id == person_id, *_in_month(month, now, tz))
        .order_by(SandboxGrant.ends_at)
    )
    return [Grant(i, a, as_utc(st), as_utc(en)) for i, a, st, en in rows]


async def grants_by_person(s: AsyncSession, month: Month, now: datetime,
                           tz: str) -> dict[int, list[Grant]]:
    """month_grants for everyone who has any, in one query (batch jobs)."""
    rows = await s.execute(
        select(SandboxGrant.person_id, SandboxGrant.id, SandboxGrant.amount_micros,
               SandboxGrant.starts_at, SandboxGrant.ends_at)
        .where(*_in_month(month, now, tz))
        .order_by(SandboxGrant.person_id, SandboxGrant.ends_at)
    )
    out: dict[int, list[Grant]] = defaultdict(list)
    for pid, i, a, st, en in rows:
        out[pid].append(Grant(i, a, as_utc(st), as_utc(en)))
    return dict(out)


async def sandbox_allowance(s: AsyncSession, person_id: int, cap: int, grants: list[Grant],
                            month: Month, tz: str) -> int:
    """What the grants add to this month's limit.

    A grant is extra headroom of its amount over its whole duration, not per month: what
    it already covered in earlier months (spend above the cap there) is used up. So a
    $500 grant spanning October and November adds $500 in all, as the pool was charged.
    """
    if not grants:
        return 0
    total = sum(g.amount for g in grants)
    first = month_of(local_day(min(g.starts_at for g in grants), tz))
    if first.first >= month.first:
        return total
    rows = await s.execute(
        select(UsageDaily.day, func.sum(UsageDaily.cost_micros))
        .where(UsageDaily.person_id == person_id, UsageDaily.day >= first.first,
               UsageDaily.day < month.first)
        .group_by(UsageDaily.day))
    spent: dict[str, int] = defaultdict(int)
    for day, cost in rows:
        spent[day.strftime("%Y-%m")] += int(cost or 0)
    used = sum(max(0, v - cap) for v in spent.values())
    return max(0, total - used)


async def freshness(s: AsyncSession) -> dict[str, datetime | None]:
    rows = await s.execute(select(SourceState.source, SourceState.data_as_of))
    return {src: (as_utc(at) if at else None) for src, at in rows}


def forecast_window(first_day: date | None, today: date) -> tuple[date, int] | None:
    """The trailing window the pace is measured over: complete days only (today is still
    running), at most 7, and only with at least 3 days of history."""
    if first_day is None or (today - first_day).days < FORECAST_MIN_DAYS:
        return None
    start = max(today - timedelta(days=FORECAST_WINDOW_DAYS), first_day)
    days = (today - start).days
    return (start, days) if days > 0 else None


def forecast(
    *,
    spent: int,
    limit: int,
    window_spend: int,
    first_day: date | None,
    today: date,
    now: datetime,
    month: Month,
    tz: str,
) -> Forecast | None:
    """Linear forecast at the trailing pace; None with under 3 days of history.

    ``window_spend`` is the spend over ``forecast_window(first_day, today)``.
    """
    window = forecast_window(first_day, today)
    if window is None:
        return None
    pace = window_spend // window[1]
    # What is left of the month: the rest of today plus the days after it.
    day_seconds = 86400
    elapsed_today = int((now - start_of_day(today, tz)).total_seconds())
    left_seconds = (month.last - today).days * day_seconds + max(day_seconds - elapsed_today, 0)
    month_end = spent + pace * left_seconds // day_seconds
    over = spent >= limit
    cap_date = None
    if not over and pace > 0 and month_end >= limit:
        seconds_to_cap = (limit - spent) * day_seconds // pace
        cap_date = local_day(now + timedelta(seconds=seconds_to_cap), tz)
        if cap_date > month.last:
            cap_date = None
    return Forecast(pace_per_day=pace, month_end=month_end, cap_date=cap_date, already_over=over)


async def balance(
    rt: Runtime, s: AsyncSession, person: PersonView, now: datetime | None = None
) -> Balance:
    now = now or rt.now()
    tz = rt.tz
    today = local_day(now, tz)
    month = month_of(today)
    start = min(month.first, today - timedelta(days=FORECAST_WINDOW_DAYS))
    rows = await s.execute(
        select(
            UsageDaily.day, UsageDaily.category, UsageDaily.model, func.sum(UsageDaily.cost_micros)
        )
        .where(UsageDaily.person_id == person.id, UsageDaily.day >= start, UsageDaily.day <= today)
        .group_by(UsageDaily.day, UsageDaily.category, UsageDaily.model)
    )
    by_cat: dict[str, int] = defaultdict(int)
    by_model: dict[str, int] = defaultdict(int)
    daily: dict[date, int] = defaultdict(int)
    spent = 0
    for day, category, model, cost in rows:
        cost = int(cost or 0)
        daily[day] += cost
        if day >= month.first:
            spent += cost
            by_cat[category] += cost
            by_model[model] += cost
    first_day = await s.scalar(
        select(func.min(UsageDaily.day)).where(
            UsageDaily.person_id == person.id, UsageDaily.day >= today - timedelta(days=60)
        )
    )
    cap = cap_micros(rt, person, await team_cap(s, person.team_id))
    grants = await month_grants(s, person.id, month, now, tz)
    sandbox = await sandbox_allowance(s, person.id, cap, grants, month, tz)
    cats = rt.config.categories
    return Balance(
        person=person,
        month=month,
        today=today,
        spent=spent,
        cap=cap,
        sandbox=sandbox,
        grants=grants,
        by_category=sorted(((c, v) for c, v in by_cat.items() if v), key=lambda x: -x[1]),
        by_model=sorted(((m, v) for m, v in by_model.items() if v), key=lambda x: -x[1]),
        forecast=forecast(
            spent=spent,
            limit=cap + sandbox,
            window_spend=_window_spend(daily, first_day, today),
            first_day=first_day,
            today=today,
            now=now,
            month=month,
            tz=tz,
        ),
        as_of=await freshness(s),
        low_value=sum(v for c, v in by_cat.items() if c in cats.low_value),
        agentic=sum(v for c, v in by_cat.items() if c in cats.agentic),
    )


def _window_spend(daily: dict[date, int], first_day: date | None, today: date) -> int:
    window = forecast_window(first_day, today)
    if window is None:
        return 0
    return sum(v for d, v in daily.items() if window[0] <= d < today)


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
    cap = cap_micros(rt, person, await team_cap(s, person.team_id))
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
    from bot.store.tables import UsageRecord

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
