"""Reading a person's month from the store: ``balance`` for one person (a card) and
``balances`` for many (alerts, digest lines, team views). Both end in
``bot.ledger.month.assemble``, so every surface computes the month the same way.

One person is ONE statement (``_CARD``: the month's spend by category and by model, the
pace window, the first day of usage, the grants, the sources' freshness, the team cap and
the tutorials already had, as tagged rows of one UNION ALL), plus a second only when a
grant began in an earlier month (what it covered then is used up). A batch is a handful
of grouped statements for all its people. Statements are built once and run on the
driver (``bot.store.reads``); a caller inside a write transaction passes its session.

The seam for enforced vendor limits (issue #17): a vendor's limit for the person, read
from where its sync stores it, becomes a ``Limit`` in ``Balance.vendor_limits`` (passed to
``assemble``): for the card, one more tagged branch of ``_card`` (kind ``'l'``: source and
period in the text slots, amount, spent and an enforced flag in the integer slots, as_of in
a time slot) turned into a ``Limit`` in ``_card_read``; for a batch, one more grouped read
in ``balances``. ``Balance.limits`` and ``binding_limit`` then weigh it against
tokencoach's own limit (cap + grants), and the card stays one statement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.directory import PersonView, person_columns, person_from_row, resolve_cap
from bot.ledger.month import Balance, Grant, Period, assemble, grants_start
from bot.money import to_micros
from bot.runtime import Runtime
from bot.store.reads import Reads, SessionReads, Statement, any_of, day, moment
from bot.store.tables import Person, SandboxGrant, SourceState, Team, UsageDaily
from bot.store.types import UTCDateTime
from bot.timeutil import Month
from bot.tips import had_queries
from bot.usage.names import in_source_order

U = UsageDaily
G = SandboxGrant


def _p(name: str, type_: Any) -> Any:
    return bindparam(name, type_=type_)


def _tag(kind: str) -> Any:
    return literal_column(f"'{kind}'")


def _null(type_: Any) -> Any:
    return cast(null(), type_)


def _sum(value: Any) -> Any:
    """SUM as a BIGINT (PostgreSQL's is NUMERIC: Decimals, and slower to decode)."""
    return cast(func.sum(value), BigInteger)


def _grant_overlaps_month() -> tuple[Any, ...]:
    """Grants that have started and overlap the month (ended ones included)."""
    now, month_from, month_until = (_p(n, UTCDateTime()) for n in
                                    ("now", "month_from", "month_until"))
    return (G.status.in_(("active", "ended")), G.starts_at <= now, G.starts_at < month_until,
            G.ends_at > month_from)


# The card's columns: a kind, then text, integer, date and time slots each branch fills.
TEXTS, INTS, TIMES = 5, 6, 2


def _row(kind: str, *, s: Sequence[Any] = (), n: Sequence[Any] = (), d: Any = None,
         t: Sequence[Any] = ()) -> tuple[Any, ...]:
    """One branch's columns: (kind, s1..s5, n1..n6, d, t1, t2), unused ones typed NULLs."""
    return (_tag(kind), *s, *[_null(String())] * (TEXTS - len(s)),
            *n, *[_null(BigInteger())] * (INTS - len(n)),
            d if d is not None else _null(Date()),
            *t, *[_null(UTCDateTime())] * (TIMES - len(t)))


def _flag(column: Any, bit: int) -> Any:
    return case((column, bit), else_=0)


def _card(dialect: str, *, by: str) -> Any:
    """Tagged rows of everything a card shows, for the person with id ``pid`` (by "id") or
    with Slack id ``slack_user_id`` (by "slack": the asker is found in the same statement)."""
    P = Person
    if by == "id":
        pid: Any = _p("pid", Integer)
    else:
        me = (select(P.id.label("id")).where(P.slack_user_id == _p("slack_user_id", String()))
              .cte("me"))
        pid = select(me.c.id).scalar_subquery()
    today, month_first = _p("today", Date), _p("month_first", Date)
    in_month = U.day >= month_first
    in_window = and_(U.day >= _p("window_start", Date), U.day < today)
    flags = (_flag(P.is_admin, 1) + _flag(P.tips_enabled, 2) + _flag(P.out_of_office, 4)
             + _flag(P.active, 8))
    return union_all(
        # The person as stored now, with their team's cap.
        select(*_row("u", s=(P.email, P.name, P.timezone, P.slack_user_id, P.teams_aad_id),
                     n=(P.id, P.team_id, P.manager_id, P.cap_micros, Team.cap_micros, flags)))
        .select_from(P).outerjoin(Team, Team.id == P.team_id).where(P.id == pid),
        # One scan of the days read, by category and model: this month's spend (and how
        # many rows: usage at $0 counts as usage), and the pace window's.
        select(*_row("x", s=(U.category, U.model),
                     n=(_sum(case((in_month, U.cost_micros), else_=0)),
                        _sum(case((in_month, 1), else_=0)),
                        _sum(case((in_window, U.cost_micros), else_=0)))))
        .where(U.person_id == pid, U.day >= _p("start", Date), U.day <= today)
        .group_by(U.category, U.model),
        select(*_row("f", d=func.min(U.day)))
        .where(U.person_id == pid, U.day >= _p("first_from", Date)),
        select(*_row("g", n=(G.id, G.amount_micros), t=(G.starts_at, G.ends_at)))
        .where(G.person_id == pid, *_grant_overlaps_month()),
        select(*_row("s", s=(SourceState.source,), t=(SourceState.data_as_of,))),
        *(q.with_only_columns(*_row("t", s=tuple(q.selected_columns))) for q in had_queries(pid)),
    )


def _earlier(dialect: str, *, many: bool) -> Any:
    """Spend by person and day from the first grant's month up to this month."""
    who = any_of(U.person_id, "pids", dialect) if many else U.person_id == _p("pid", Integer)
    return (select(U.person_id, U.day, _sum(U.cost_micros))
            .where(who, U.day >= _p("since", Date), U.day < _p("month_first", Date))
            .group_by(U.person_id, U.day))


_CARD = Statement(lambda d: _card(d, by="id"))
_CARD_BY_SLACK_ID = Statement(lambda d: _card(d, by="slack"))
_EARLIER_ONE = Statement(lambda d: _earlier(d, many=False))
_EARLIER_MANY = Statement(lambda d: _earlier(d, many=True))


def _reads(rt: Runtime, within: AsyncSession | None) -> Reads:
    return SessionReads(within) if within is not None else rt.db.reads


def _period_params(period: Period) -> dict[str, Any]:
    return {"today": period.today, "month_first": period.month.first, "start": period.start,
            "window_start": period.window_start, "first_from": period.first_from,
            "now": period.now, "month_from": period.month_from,
            "month_until": period.month_until}


def default_cap(rt: Runtime) -> int:
    return to_micros(rt.config.policy.default_cap_usd)


async def _earlier_spend(reads: Reads, stmt: Statement, params: dict[str, Any],
                         starts: dict[int, Month], month: Month) -> dict[int, dict[str, int]]:
    """Spend by month key before ``month``, from each person's first grant month."""
    if not starts:
        return {}
    since = min(m.first for m in starts.values())
    rows = await reads.fetch(stmt, {**params, "since": since, "month_first": month.first,
                                    "pids": sorted(starts)})
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for pid, d, cost in rows:
        d = day(d)
        if d >= starts[pid].first:
            out[pid][d.strftime("%Y-%m")] += int(cost or 0)
    return out


async def balance(rt: Runtime, person: PersonView, now: datetime | None = None, *,
                  within: AsyncSession | None = None) -> Balance:
    """One person's month: one statement (two when a grant began in an earlier month).

    ``Balance.person`` is the person's directory entry as the statement read it.
    ``within``: read inside that session's transaction (to see its uncommitted writes);
    by default on the driver's own connections."""
    bal = await _card_read(rt, _reads(rt, within), _CARD, {"pid": person.id}, now,
                           gone=person)
    assert bal is not None  # with ``gone`` given, there is always a person
    return bal


async def balance_of_slack_user(rt: Runtime, slack_user_id: str,
                                now: datetime | None = None) -> Balance | None:
    """The month of the active person with this Slack id, who is looked up in the same
    statement (the card a slash command answers, in one round trip); None if nobody."""
    bal = await _card_read(rt, rt.db.reads, _CARD_BY_SLACK_ID,
                           {"slack_user_id": slack_user_id}, now)
    return bal if bal is not None and bal.person_active else None


async def _card_read(rt: Runtime, reads: Reads, stmt: Statement, who: dict[str, Any],
                     now: datetime | None, gone: PersonView | None = None) -> Balance | None:
    """Run a card statement; None when it found no person (with ``gone``, that person:
    one whose row was removed, whose usage still counts)."""
    period = Period.at(now or rt.now(), rt.tz)
    params = {**_period_params(period), **who}
    rows = await reads.fetch(stmt, params)
    person = gone
    by_cat: dict[str, int] = {}
    by_model: dict[str, int] = {}
    window = 0
    first_day: date | None = None
    grants: list[Grant] = []
    as_of: dict[str, datetime | None] = {}
    team_cap: int | None = None
    active = gone is None
    had: set[str] = set()
    for kind, s1, s2, s3, s4, s5, n1, n2, n3, n4, n5, n6, d, t1, t2 in rows:
        if kind == "x":
            window += int(n3 or 0)
            if n2:  # rows this month
                by_cat[s1] = by_cat.get(s1, 0) + int(n1 or 0)
                by_model[s2] = by_model.get(s2, 0) + int(n1 or 0)
        elif kind == "f":
            first_day = day(d) if d is not None else None
        elif kind == "g":
            grants.append(Grant(int(n1), int(n2), moment(t1), moment(t2)))
        elif kind == "s":
            as_of[s1] = moment(t1) if t1 is not None else None
        elif kind == "t" and s1:
            had.add(s1)
        elif kind == "u":
            flags = int(n6)
            person = PersonView(int(n1), s1, s2, n2, n3, s3, bool(flags & 1), n4,
                                bool(flags & 2), bool(flags & 4), s4, s5)
            team_cap, active = n5, bool(flags & 8)
    if person is None:
        return None
    grants.sort(key=lambda g: (g.ends_at, g.id))
    cap = resolve_cap(person.cap_micros, team_cap, default_cap(rt))
    start = grants_start(grants, period.month, rt.tz)
    earlier = await _earlier_spend(reads, _EARLIER_ONE, {**params, "pid": person.id},
                                   {person.id: start}, period.month) if start else {}
    return assemble(person=person, period=period, tz=rt.tz, categories=rt.config.categories,
                    cap=cap, by_category=by_cat, by_model=by_model, window_spend=window,
                    first_day=first_day, grants=grants, earlier=earlier.get(person.id, {}),
                    as_of=in_source_order(as_of.items()), tutorials_had=frozenset(had),
                    has_usage=bool(by_cat), person_active=active)


# --- many people -------------------------------------------------------------------------


def _usage(dialect: str, *, people: bool, teams: bool) -> Any:
    """Per person and team (the team the usage was recorded under; person 0: nobody's):
    the month's spend, its low-value and agentic parts, the pace window's spend, the
    first day read, and how many rows this month (usage at $0 counts). Rows of the
    people ``pids`` and (or) of the teams ``tids``, or every row."""
    today, month_first = _p("today", Date), _p("month_first", Date)
    in_month = U.day >= month_first
    in_window = and_(U.day >= _p("window_start", Date), U.day < today)
    where = [U.day >= _p("start", Date), U.day <= today]
    scope = [any_of(U.person_id, "pids", dialect)] if people else []
    scope += [any_of(U.team_id, "tids", dialect)] if teams else []
    if scope:
        where.append(or_(*scope))

    def month_of(kinds: str) -> Any:
        return _sum(case((and_(in_month, any_of(U.category, kinds, dialect, String)),
                          U.cost_micros), else_=0))

    return (select(U.person_id, U.team_id, _sum(case((in_month, U.cost_micros), else_=0)),
                   month_of("low_value"), month_of("agentic"),
                   _sum(case((in_window, U.cost_micros), else_=0)),
                   func.min(U.day), _sum(case((in_month, 1), else_=0)))
            .where(*where).group_by(U.person_id, U.team_id))


def _first_days(dialect: str) -> Any:
    return (select(U.person_id, func.min(U.day))
            .where(any_of(U.person_id, "pids", dialect), U.day >= _p("first_from", Date))
            .group_by(U.person_id))


def _batch_grants(dialect: str) -> Any:
    return (select(G.person_id, G.id, G.amount_micros, G.starts_at, G.ends_at)
            .where(any_of(G.person_id, "pids", dialect), *_grant_overlaps_month()))


def _people(dialect: str) -> Any:
    return select(*person_columns()).where(any_of(Person.id, "pids", dialect), Person.active)


FILTER_IN_SQL_UP_TO = 2_000  # people
# (rows of given people, rows of given teams) -> the statement reading them.
_USAGE = {(people, teams): Statement(partial(_usage, people=people, teams=teams))
          for people in (False, True) for teams in (False, True)}
_FIRST_DAYS = Statement(_first_days)
_GRANTS = Statement(_batch_grants)
_PEOPLE = Statement(_people)
_TEAM_CAPS = Statement(lambda d: select(Team.id, Team.cap_micros))
_FRESHNESS = Statement(lambda d: select(SourceState.source, SourceState.data_as_of))


async def freshness(rt: Runtime, within: AsyncSession | None = None
                    ) -> dict[str, datetime | None]:
    """When each source's data was last complete (the same for everyone)."""
    rows = await _reads(rt, within).fetch(_FRESHNESS, {})
    return in_source_order((src, moment(at) if at is not None else None) for src, at in rows)


async def team_caps(rt: Runtime, within: AsyncSession | None = None) -> dict[int, int | None]:
    return {tid: cap for tid, cap in await _reads(rt, within).fetch(_TEAM_CAPS, {})}


@dataclass
class Usage:
    """What a batch read of usage sums, for one person or one team."""

    spent: int = 0  # this month
    low_value: int = 0
    agentic: int = 0
    window: int = 0  # the pace window (the seven days before today)
    first: date | None = None  # the first day read
    rows: int = 0  # rows this month


def _summed(parts: list[tuple[int, int, int, int, date, int]]) -> Usage:
    if len(parts) == 1:
        return Usage(*parts[0])
    return Usage(sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts),
                 sum(p[3] for p in parts), min(p[4] for p in parts), sum(p[5] for p in parts))


@dataclass
class MonthUsage:
    """One scan of the days a month read needs, summed by person and by team."""

    period: Period
    people: dict[int, Usage]
    teams: dict[int, Usage] | None  # by the team usage was recorded under (all of it)


async def month_usage(rt: Runtime, now: datetime | None = None, *,
                      people: Sequence[int] | None = None, teams: Sequence[int] | None = None,
                      within: AsyncSession | None = None) -> MonthUsage:
    """Usage by person (``people``, or everyone) and by team (``teams``; everyone's when
    neither is given): one scan, which a digest shares between its team figures and its
    members' months. A person's figures are all their rows, whatever team they were
    recorded under; a team's, the rows recorded under it (nobody's included)."""
    reads = _reads(rt, within)
    period = Period.at(now or rt.now(), rt.tz)
    cats = rt.config.categories
    params = {**_period_params(period), "low_value": list(cats.low_value),
              "agentic": list(cats.agentic), "pids": sorted(set(people or ())),
              "tids": sorted(set(teams or ()))}
    # Long lists filter the scan slower than reading every row (their arrays are probed
    # per row): beyond this many, read all and keep what was asked for.
    small = max(len(params["pids"]), len(params["tids"])) <= FILTER_IN_SQL_UP_TO
    scoped = small and (people is not None or teams is not None)
    stmt = _USAGE[(scoped and people is not None, scoped and teams is not None)]
    wanted_people = set(params["pids"]) if people is not None else None
    wanted_teams = set(params["tids"]) if teams is not None else None
    everyone = people is None and teams is None
    by_person: dict[int, list[tuple[int, int, int, int, date, int]]] = defaultdict(list)
    by_team: dict[int, list[tuple[int, int, int, int, date, int]]] = defaultdict(list)
    for pid, tid, spent, low, agentic, window, first, rows in await reads.fetch(stmt, params):
        figures = (int(spent or 0), int(low or 0), int(agentic or 0), int(window or 0),
                   day(first), int(rows or 0))
        if everyone or (wanted_teams is not None and tid in wanted_teams):
            by_team[tid].append(figures)
        if pid and (wanted_people is None or pid in wanted_people):
            by_person[pid].append(figures)
    return MonthUsage(period, {pid: _summed(parts) for pid, parts in by_person.items()},
                      {tid: _summed(parts) for tid, parts in by_team.items()}
                      if everyone or teams is not None else None)


async def balances(rt: Runtime, people: Sequence[PersonView] | None = None,
                   now: datetime | None = None, *, usage: MonthUsage | None = None,
                   within: AsyncSession | None = None) -> dict[int, Balance]:
    """The months of ``people`` (None: every active person with usage since the pace
    window began), by person id, in a few grouped statements for all of them (``usage``:
    from a ``month_usage`` read already made at the same moment). Spend by category and
    by model and the tutorials had are a card's (``balance``): empty here; the shares
    are summed."""
    reads = _reads(rt, within)
    if people is not None and not people:
        return {}
    if usage is None:
        usage = await month_usage(rt, now, within=within, people=None if people is None
                                  else [p.id for p in people])
    period = usage.period
    params = _period_params(period)
    if people is None:
        params["pids"] = sorted(usage.people)
        people = [person_from_row(r) for r in await reads.fetch(_PEOPLE, params)]
    params["pids"] = sorted({p.id for p in people})
    found = usage.people
    # The first day of usage only matters within the pace window: look it up exactly for
    # those who have none read before it.
    first_days = {pid: u.first for pid, u in found.items()
                  if u.first is not None and u.first <= period.window_start}
    unsure = [p.id for p in people if p.id not in first_days]
    if unsure:
        for pid, first in await reads.fetch(_FIRST_DAYS, {**params, "pids": unsure}):
            first_days[pid] = day(first)
    grants: dict[int, list[Grant]] = defaultdict(list)
    for pid, gid, amount, begins, ends in await reads.fetch(_GRANTS, params):
        grants[pid].append(Grant(gid, amount, moment(begins), moment(ends)))
    caps = await team_caps(rt, within)
    as_of = await freshness(rt, within)
    fallback = default_cap(rt)
    starts: dict[int, Month] = {}
    for pid, gs in grants.items():
        gs.sort(key=lambda g: (g.ends_at, g.id))
        start = grants_start(gs, period.month, rt.tz)
        if start:
            starts[pid] = start
    earlier = await _earlier_spend(reads, _EARLIER_MANY, params, starts, period.month)
    none = Usage()
    out: dict[int, Balance] = {}
    for p in people:
        u = found.get(p.id, none)
        cap = resolve_cap(p.cap_micros, caps.get(p.team_id) if p.team_id else None, fallback)
        out[p.id] = assemble(
            person=p, period=period, tz=rt.tz, categories=rt.config.categories, cap=cap,
            by_category={}, by_model={}, totals=(u.spent, u.low_value, u.agentic),
            window_spend=u.window, first_day=first_days.get(p.id),
            grants=grants.get(p.id, []), earlier=earlier.get(p.id, {}), as_of=as_of,
            has_usage=u.rows > 0)
    return out


_TEAM_CAP = Statement(lambda d: select(Team.cap_micros).where(Team.id == _p("team_id", Integer)))


async def cap_for(rt: Runtime, person: PersonView, *, within: AsyncSession | None = None) -> int:
    """The person's monthly cap: their own, else their team's, else the org default."""
    team_cap = None
    if person.team_id is not None:
        rows = await _reads(rt, within).fetch(_TEAM_CAP, {"team_id": person.team_id})
        team_cap = rows[0][0] if rows else None
    return resolve_cap(person.cap_micros, team_cap, default_cap(rt))
