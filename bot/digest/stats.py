"""Team figures from the daily rollup, for many teams at once (aggregates only).

Digests for thousands of teams are computed with a handful of grouped queries, not a
handful per team: weeks are bucketed in SQL with a CASE over fixed boundaries (the same
on SQLite and PostgreSQL), and every figure comes back keyed by team id.

Days are org-time-zone days (that is how usage is rolled up); a team's week is the seven
days before its digest's date.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, and_, case, distinct, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot import ledger
from bot.directory import PersonView, person_columns, resolve_cap
from bot.ledger import forecast
from bot.ledger.month import Shares
from bot.money import pct, to_micros
from bot.runtime import Runtime
from bot.store.tables import (
    Nudge,
    Person,
    SandboxGrant,
    SandboxRequest,
    Team,
    TipEvent,
    UsageDaily,
)
from bot.timeutil import Month, as_utc, local_day, month_of, start_of_day
from bot.usage.pricing import PriceTable

ROUTING_LOW = Decimal("0.8")  # a smaller model may answer more briefly …
ROUTING_HIGH = Decimal("1.5")  # … or need retries and longer prompts
# Per hash table and process; a digest batch's scans (three processes with parallel
# workers) stay within a few hundred MB, once a week.
ANALYTICS_WORK_MEM = "32MB"


@dataclass(frozen=True)
class TeamMonth(Shares):
    team_id: int
    month: Month
    spent: int
    budget: int
    active_people: int
    agentic: int
    low_value: int


@dataclass
class Routing:
    """What routine, tool-free work on expensive models cost, and would cost routed."""

    actual: int = 0
    estimate: int = 0
    categories: set[str] = field(default_factory=set)

    @property
    def low(self) -> int:
        return int(self.estimate * ROUTING_LOW)

    @property
    def high(self) -> int:
        return int(self.estimate * ROUTING_HIGH)


@dataclass
class Experiment:
    grant_id: int
    owner: str
    owner_id: int
    purpose: str
    amount: int
    days_left: int


@dataclass
class PersonLine:
    person_id: int
    name: str
    spent: int
    limit: int
    agentic: int
    open_requests: int

    @property
    def agentic_share(self) -> int:
        return pct(self.agentic, self.spent)


@dataclass
class TeamDigest:
    team_id: int
    team_key: str
    team_name: str
    week_start: date
    week_end: date  # inclusive
    weeks: list[date]  # the chart's week starts, oldest first
    series: dict[str, list[int]]  # category -> spend per chart week
    week_by_category: dict[str, int]
    prev_week_by_category: dict[str, int]
    agentic_trend: list[int]  # agentic share of the last 4 weeks, oldest first
    month: Month
    mtd: int
    budget: int
    forecast: int  # projected month-end spend at the trailing 7-day pace (as /tokens does)
    active_people: int  # people with usage in the digest's week
    weekly_people: list[int]  # the same for each chart week
    routing: Routing
    experiments: list[Experiment]
    outcomes: list[tuple[str, str]]  # (owner name, outcome) reported this week
    tips_sent: int
    tips_opened: int
    tips_finished: int
    members: list[PersonLine] = field(default_factory=list)

    @property
    def week_total(self) -> int:
        return sum(self.week_by_category.values())

    @property
    def prev_week_total(self) -> int:
        return sum(self.prev_week_by_category.values())


async def _core(s: AsyncSession, statement: Any) -> Any:
    """Run a plain column select on the session's connection: its rows skip the ORM's
    per-row loading (a digest batch reads a few hundred thousand of them)."""
    return await (await s.connection()).execute(statement)


# A member of a team: (the person, still active).
_Member = tuple[PersonView, bool]


async def _teams(s: AsyncSession, team_ids: list[int]) -> dict[int, Any]:
    """id -> (id, key, name, cap_micros, budget_micros)."""
    rows = await _core(
        s,
        select(Team.id, Team.key, Team.name, Team.cap_micros, Team.budget_micros).where(
            Team.id.in_(team_ids)
        ),
    )
    return {row.id: row for row in rows}


async def _members(s: AsyncSession, team_ids: list[int]) -> list[_Member]:
    rows = await _core(s, select(*person_columns(), Person.active).where(
        Person.team_id.in_(team_ids)))
    return [(PersonView.from_row(row[:-1]), bool(row[-1])) for row in rows
            if row.team_id is not None]


def _budgets(rt: Runtime, teams: dict[int, Any], members: list[_Member]) -> dict[int, int]:
    """Explicit team budget, else the sum of active members' monthly caps."""
    default = to_micros(rt.config.policy.default_cap_usd)
    caps: dict[int, int] = defaultdict(int)
    for p, active in members:
        if active and p.team_id in teams:
            caps[p.team_id] += resolve_cap(p.cap_micros, teams[p.team_id].cap_micros, default)
    return {
        tid: (t.budget_micros if t.budget_micros is not None else caps.get(tid, 0))
        for tid, t in teams.items()
    }


async def team_budgets(rt: Runtime, s: AsyncSession, team_ids: list[int]) -> dict[int, int]:
    """Explicit team budget, else the sum of members' monthly caps."""
    return _budgets(rt, await _teams(s, team_ids), await _members(s, team_ids))


async def team_month(
    rt: Runtime, s: AsyncSession, team_id: int, now: datetime | None = None
) -> TeamMonth:
    month = month_of(local_day(now or rt.now(), rt.tz))
    cats = rt.config.categories
    rows = await s.execute(
        select(UsageDaily.category, func.sum(UsageDaily.cost_micros))
        .where(
            UsageDaily.team_id == team_id,
            UsageDaily.day >= month.first,
            UsageDaily.day <= month.last,
        )
        .group_by(UsageDaily.category)
    )
    by_cat = {c: int(v or 0) for c, v in rows}
    active = await s.scalar(
        select(func.count(func.distinct(UsageDaily.person_id))).where(
            UsageDaily.team_id == team_id,
            UsageDaily.day >= month.first,
            UsageDaily.day <= month.last,
            UsageDaily.person_id != 0,
            UsageDaily.cost_micros > 0,
        )
    )
    return TeamMonth(
        team_id=team_id,
        month=month,
        spent=sum(by_cat.values()),
        budget=(await team_budgets(rt, s, [team_id]))[team_id],
        active_people=int(active or 0),
        agentic=sum(v for c, v in by_cat.items() if c in cats.agentic),
        low_value=sum(v for c, v in by_cat.items() if c in cats.low_value),
    )


def _month_end(mtd: int, last7: int, today: date, now: datetime, month: Month, tz: str) -> int:
    fc = forecast(
        spent=mtd,
        limit=max(mtd, 1),
        window_spend=last7,
        first_day=today - timedelta(days=7),
        today=today,
        now=now,
        month=month,
        tz=tz,
    )
    return fc.month_end if fc else mtd


def _week_bucket(weeks: list[date]) -> Any:
    """SQL: which chart week a day falls in (0 = oldest), portable across databases."""
    whens = [(UsageDaily.day < weeks[i + 1], i) for i in range(len(weeks) - 1)]
    return case(*whens, else_=len(weeks) - 1)


async def compute(
    rt: Runtime,
    s: AsyncSession,
    team_ids: list[int],
    *,
    digest_day: date,
    now: datetime,
    with_members: bool = False,
) -> dict[int, TeamDigest]:
    """Digest figures for ``team_ids`` for the week before ``digest_day``."""
    if not team_ids:
        return {}
    cfg = rt.config
    n_weeks = cfg.digests.chart_weeks
    week_start = digest_day - timedelta(days=7)
    weeks = [week_start - timedelta(days=7 * i) for i in range(n_weeks - 1, -1, -1)]
    first = weeks[0]
    last = digest_day - timedelta(days=1)
    today = local_day(now, rt.tz)
    month = month_of(today)
    in_teams = UsageDaily.team_id.in_(team_ids)
    pg = s.get_bind().dialect.name == "postgresql"
    if pg:
        # These grouped scans cover weeks of every team: at the default work_mem (4 MB)
        # their hash tables spill to disk, which made them half again slower.
        await s.execute(text(f"SET LOCAL work_mem = '{ANALYTICS_WORK_MEM}'"))

    # 1. Weekly spend by category for the chart window.
    series: dict[int, dict[str, list[int]]] = defaultdict(dict)
    bucket = _week_bucket(weeks).label("w")
    rows = await _core(
        s,
        select(UsageDaily.team_id, bucket, UsageDaily.category, func.sum(UsageDaily.cost_micros))
        .where(in_teams, UsageDaily.day >= first, UsageDaily.day <= last)
        .group_by(UsageDaily.team_id, bucket, UsageDaily.category),
    )
    for team_id, w, category, cost in rows:
        series[team_id].setdefault(category, [0] * n_weeks)[int(w)] += int(cost or 0)

    # 2. Month to date (as of now) and the last seven days (the forecast's pace: today is
    # still running) by team, from the ledger's one scan of the month, which also gives
    # the members' months for managers' lines.
    members = await _members(s, team_ids)
    usage = await ledger.month_usage(
        rt, now, teams=team_ids, within=s,
        people=[p.id for p, active in members if active] if with_members else [])
    teams_usage = usage.teams or {}
    mtd = {tid: teams_usage[tid].spent for tid in team_ids if tid in teams_usage}
    last7 = {tid: teams_usage[tid].window for tid in team_ids if tid in teams_usage}

    # 3. People with usage per chart week (the small-team privacy rule looks at every week):
    # per person, a bit mask of the weeks they had usage in, counted here. One small group
    # per person, where a distinct count per (team, week) sorted or hashed every row.
    week_bit = literal(1, BigInteger).op("<<")(_week_bucket(weeks))  # up to 52 weeks
    mask = func.bit_or(week_bit) if pg else func.sum(distinct(week_bit))
    weekly_people: dict[int, list[int]] = defaultdict(lambda: [0] * n_weeks)
    rows = await _core(
        s,
        select(UsageDaily.team_id, mask)
        .where(
            in_teams,
            UsageDaily.day >= first,
            UsageDaily.day <= last,
            UsageDaily.person_id != 0,
            UsageDaily.cost_micros > 0,
        )
        .group_by(UsageDaily.team_id, UsageDaily.person_id),
    )
    for team_id, weeks_active in rows:
        counts = weekly_people[team_id]
        for w in range(n_weeks):
            if weeks_active >> w & 1:
                counts[w] += 1

    # 4. Routing savings: routine, tool-free work on models with a cheaper sibling.
    routing: dict[int, Routing] = defaultdict(Routing)
    prices = PriceTable(cfg.pricing)
    rows = await _core(
        s,
        select(
            UsageDaily.team_id,
            UsageDaily.category,
            UsageDaily.provider,
            UsageDaily.model,
            func.sum(UsageDaily.notool_cost_micros),
            func.sum(UsageDaily.notool_input_tokens),
            func.sum(UsageDaily.notool_output_tokens),
            func.sum(UsageDaily.notool_cache_read_tokens),
            func.sum(UsageDaily.notool_cache_write_tokens),
        )
        .where(
            in_teams,
            UsageDaily.day >= week_start,
            UsageDaily.day <= last,
            UsageDaily.category.in_(cfg.digests.routine_categories),
        )
        .group_by(UsageDaily.team_id, UsageDaily.category, UsageDaily.provider, UsageDaily.model),
    )
    for team_id, category, provider, model, cost, inp, outp, cr, cw in rows:
        target = prices.cheaper_model(model)
        if not target or target == model.lower() or not cost:
            continue
        cheap = prices.lookup(provider, target, last)
        if cheap is None:
            continue
        r = routing[team_id]
        r.actual += int(cost)
        r.estimate += cheap.cost_micros(int(inp or 0), int(outp or 0), int(cr or 0), int(cw or 0))
        r.categories.add(category)

    # 5. Sandbox experiments and outcomes, tips.
    teams = await _teams(s, team_ids)
    names = {p.id: p.name for p, _active in members}
    team_of = {p.id: p.team_id for p, _active in members}
    experiments: dict[int, list[Experiment]] = defaultdict(list)
    outcomes: dict[int, list[tuple[str, str]]] = defaultdict(list)
    week_from = start_of_day(week_start, rt.tz)
    rows = await s.execute(
        select(SandboxGrant, SandboxRequest.purpose)
        .join(SandboxRequest, SandboxRequest.id == SandboxGrant.request_id)
        .join(Person, Person.id == SandboxGrant.person_id)
        .where(
            Person.team_id.in_(team_ids),
            or_(
                and_(SandboxGrant.status == "active", SandboxGrant.ends_at > now),
                SandboxGrant.outcome_at >= week_from,
            ),
        )
    )
    for grant, purpose in rows:
        tid = team_of.get(grant.person_id)
        if tid is None:
            continue
        ends = as_utc(grant.ends_at)
        if grant.status == "active" and ends > now:
            experiments[tid].append(
                Experiment(
                    grant.id,
                    names.get(grant.person_id, "someone"),
                    grant.person_id,
                    purpose,
                    grant.amount_micros,
                    max((ends - now).days, 0),
                )
            )
        if grant.outcome and grant.outcome_at and as_utc(grant.outcome_at) >= week_from:
            outcomes[tid].append((names.get(grant.person_id, "someone"), grant.outcome))
    tips: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = await s.execute(
        select(Person.team_id, func.count())
        .select_from(Nudge)
        .join(Person, Person.id == Nudge.person_id)
        .where(
            Person.team_id.in_(team_ids),
            Nudge.cohort == "nudged",
            Nudge.created_at >= week_from,
            Nudge.created_at < now,
        )
        .group_by(Person.team_id)
    )
    for tid, n in rows:
        tips[tid]["sent"] = int(n)
    rows = await s.execute(
        select(Person.team_id, TipEvent.event, func.count())
        .select_from(TipEvent)
        .join(Person, Person.id == TipEvent.person_id)
        .where(
            Person.team_id.in_(team_ids),
            TipEvent.at >= week_from,
            TipEvent.at < now,
            TipEvent.event.in_(("opened", "completed")),
        )
        .group_by(Person.team_id, TipEvent.event)
    )
    for tid, event, n in rows:
        tips[tid][event] = int(n)

    budgets = _budgets(rt, teams, members)
    agentic = set(cfg.categories.agentic)
    out: dict[int, TeamDigest] = {}
    for tid in team_ids:
        team = teams.get(tid)
        if team is None:
            continue
        ser = series.get(tid, {})
        week = {c: v[-1] for c, v in ser.items() if v[-1]}
        prev = {c: v[-2] for c, v in ser.items() if n_weeks > 1 and v[-2]}
        trend = []
        for i in range(max(n_weeks - 4, 0), n_weeks):
            total = sum(v[i] for v in ser.values())
            trend.append(pct(sum(v[i] for c, v in ser.items() if c in agentic), total))
        out[tid] = TeamDigest(
            team_id=tid,
            team_key=team.key,
            team_name=team.name,
            week_start=week_start,
            week_end=last,
            weeks=weeks,
            series=ser,
            week_by_category=week,
            prev_week_by_category=prev,
            agentic_trend=trend,
            month=month,
            mtd=mtd.get(tid, 0),
            budget=budgets.get(tid, 0),
            forecast=_month_end(mtd.get(tid, 0), last7.get(tid, 0), today, now, month, rt.tz),
            active_people=weekly_people[tid][-1],
            weekly_people=list(weekly_people[tid]),
            routing=routing.get(tid, Routing()),
            experiments=experiments.get(tid, []),
            outcomes=outcomes.get(tid, []),
            tips_sent=tips[tid].get("sent", 0),
            tips_opened=tips[tid].get("opened", 0),
            tips_finished=tips[tid].get("completed", 0),
        )
    if with_members:
        await _member_lines(rt, s, out, members, usage)
    return out


async def _member_lines(
    rt: Runtime,
    s: AsyncSession,
    digests: dict[int, TeamDigest],
    members: list[_Member],
    usage: ledger.MonthUsage,
) -> None:
    """Per-person month-to-date lines (manager and admin digests only): each member's
    month as their own `/tokens` shows it."""
    open_requests = dict(
        (
            await s.execute(
                select(SandboxRequest.person_id, func.count())
                .where(SandboxRequest.status == "pending")
                .group_by(SandboxRequest.person_id)
            )
        ).all()
    )
    shown = [p for p, active in members if active and p.team_id in digests]
    months = await ledger.balances(rt, shown, usage=usage, within=s)
    for p in shown:
        bal = months[p.id]
        digests[p.team_id or 0].members.append(
            PersonLine(p.id, p.name, bal.spent, bal.limit, bal.agentic,
                       int(open_requests.get(p.id, 0)))
        )
    for digest in digests.values():
        digest.members.sort(key=lambda line: (-line.spent, line.person_id))
