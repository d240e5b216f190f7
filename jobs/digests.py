"""Weekly team digests: one post per team per week to the team's channel (aggregates),
plus a private version for each manager with direct reports in the team.

Scheduling: each team's cron (default schedules.digest) in the team's time zone. The
claim is (team, ISO week), so two replicas, a restart or a manual `tokencoach digest`
never post twice; a week missed while down is posted once when the bot is back (within
digests.catch_up_days), marked late.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.approvals.policy import pool_used
from bot.digest import chart, compose, stats
from bot.money import to_micros
from bot.outbox import enqueue
from bot.reply import Reply
from bot.runtime import Runtime
from bot.scheduling.registry import JobSpec, Occurrence, last_fire, register
from bot.scheduling.runner import is_late
from bot.store.tables import Chart, Person, Team
from bot.timeutil import iso_week_key, month_at

LATE_AFTER = timedelta(hours=1)


def chart_id_for(team_key: str, week: str) -> str:
    return f"digest-{team_key}-{week}"[:64]


async def due(rt: Runtime, at: datetime) -> list[Occurrence]:
    cfg = rt.config
    if not cfg.digests.enabled:
        return []
    async with rt.db.reader() as s:
        teams = (
            await s.execute(
                select(Team.id, Team.key, Team.digest_cron, Team.timezone).where(Team.active)
            )
        ).all()
    lookback = timedelta(days=cfg.digests.catch_up_days + 1)
    fires: dict[tuple[str, str], datetime | None] = {}  # most teams share a schedule
    out = []
    for team_id, key, cron, tz in teams:
        cron = cron or cfg.schedules.digest
        zone = tz or rt.tz
        if (cron, zone) not in fires:
            fires[(cron, zone)] = last_fire(cron, zone, at, lookback)
        fired = fires[(cron, zone)]
        if fired is None:
            continue
        week = iso_week_key(fired.astimezone(ZoneInfo(zone)).date())
        out.append(Occurrence(period=f"{key}:{week}", due_at=fired, arg=str(team_id)))
    return out


@dataclass(frozen=True)
class TeamInfo:
    """What a digest needs of its team, as plain values (kept between sessions)."""

    id: int
    key: str
    name: str
    timezone: str | None

    @classmethod
    def of(cls, team: Team) -> TeamInfo:
        return cls(team.id, team.key, team.name, team.timezone)


class Built(NamedTuple):
    channel: Reply
    managers: dict[int, Reply]  # manager's person id -> their private version
    chart_spec: dict[str, Any]
    week: str  # ISO week key
    team: TeamInfo


@dataclass
class _Batch:
    """Every team due at one moment, computed together (a few grouped queries for all of
    them instead of a round per team); each team still has its own claim and messages."""

    made: float
    digests: dict[int, stats.TeamDigest]
    teams: dict[int, TeamInfo]
    reports: dict[int, dict[int, list[int]]]  # team -> manager -> their reports there
    pool: int


_BATCHES: dict[tuple[str, datetime, date], _Batch] = {}
BATCH_TTL = 600.0  # seconds: one scheduler tick works through all the teams well within it


async def _compute(rt: Runtime, s: AsyncSession, team_ids: list[int], digest_day: date) -> _Batch:
    cfg = rt.config
    digests = await stats.compute(
        rt,
        s,
        team_ids,
        digest_day=digest_day,
        now=rt.now(),
        with_members=cfg.digests.manager_digests,
    )
    teams = {
        t.id: TeamInfo.of(t)
        for t in (await s.scalars(select(Team).where(Team.id.in_(team_ids)))).all()
    }
    reports: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    if cfg.digests.manager_digests:
        rows = await s.execute(
            select(Person.team_id, Person.id, Person.manager_id).where(
                Person.team_id.in_(team_ids), Person.active, Person.manager_id.is_not(None)
            )
        )
        for team_id, pid, manager_id in rows:
            if team_id is not None and manager_id is not None:
                reports[team_id][manager_id].append(pid)
    pool = await pool_used(s, month_at(rt.now(), rt.tz).key)
    return _Batch(time.monotonic(), digests, teams, reports, pool)


async def _batch(
    rt: Runtime, s: AsyncSession, team_id: int, due_at: datetime, digest_day: date
) -> _Batch:
    key = (rt.db.url, due_at, digest_day)
    found = _BATCHES.get(key)
    if found and team_id in found.digests and time.monotonic() - found.made < BATCH_TTL:
        return found
    for old in [k for k, b in _BATCHES.items() if time.monotonic() - b.made >= BATCH_TTL]:
        del _BATCHES[old]
    # The teams due at this same moment (same cron and zone): all of them in one pass.
    ids = {int(o.arg or 0) for o in await due(rt, rt.now()) if o.due_at == due_at}
    ids.add(team_id)
    zones = dict((await s.execute(select(Team.id, Team.timezone).where(Team.id.in_(ids)))).all())
    same_day = [
        t for t in ids if due_at.astimezone(ZoneInfo(zones.get(t) or rt.tz)).date() == digest_day
    ]
    batch = await _compute(rt, s, same_day, digest_day)
    _BATCHES[key] = batch
    return batch


def _batched_team(rt: Runtime, team_id: int, due_at: datetime) -> TeamInfo | None:
    """The team as a fresh batch for this moment holds it (saves a query per team)."""
    now = time.monotonic()
    for (url, at, _day), batch in _BATCHES.items():
        if url == rt.db.url and at == due_at and now - batch.made < BATCH_TTL:
            info = batch.teams.get(team_id)
            if info is not None:
                return info
    return None


async def build(
    rt: Runtime,
    s: AsyncSession,
    team_id: int,
    due_at: datetime,
    *,
    late: bool = False,
    alone: bool = False,
) -> Built:
    """The channel digest, each manager's version, the chart spec and the week key.
    ``alone``: compute this team only (a dry run), not every team due with it."""
    cfg = rt.config
    team = None if alone else _batched_team(rt, team_id, due_at)
    if team is None:
        row = await s.get(Team, team_id)
        assert row is not None
        team = TeamInfo.of(row)
    zone = team.timezone or rt.tz
    digest_day = due_at.astimezone(ZoneInfo(zone)).date()
    week = iso_week_key(digest_day)
    batch = (
        await _compute(rt, s, [team_id], digest_day)
        if alone
        else await _batch(rt, s, team_id, due_at, digest_day)
    )
    d = batch.digests[team_id]
    small_min = cfg.digests.small_team_min
    chart_spec = chart.spec(
        f"{team.name}: weekly spend by category", d.weeks, compose.folded_series(d, small_min)
    )
    chart_key = chart_id_for(team.key, week)
    note = "posted late: the bot was offline when it was due" if late else None
    pool_total = to_micros(cfg.sandbox.pool_usd)
    channel = compose.team_digest(
        d,
        small_team_min=small_min,
        chart_id=chart_key,
        late_note=note,
        pool_used=batch.pool,
        pool_total=pool_total,
    )
    managers: dict[int, Reply] = {}
    if cfg.digests.manager_digests and d.members:
        for manager_id, ids in batch.reports.get(team_id, {}).items():
            managers[manager_id] = compose.team_digest(
                d,
                small_team_min=small_min,
                chart_id=chart_key,
                late_note=note,
                members=[m for m in d.members if m.person_id in ids],
                pool_used=batch.pool,
                pool_total=pool_total,
            )
    return Built(channel, managers, chart_spec, week, team)


async def run(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    team_id = int(occ.arg or 0)
    late = is_late(rt, occ.due_at, LATE_AFTER)
    async with rt.db.session() as s:
        channel, managers, chart_spec, week, team = await build(
            rt, s, team_id, occ.due_at, late=late
        )
        chart_key = chart_id_for(team.key, week)
        await s.execute(
            rt.db.insert(Chart)
            .values(
                id=chart_key,
                title=f"{team.name} weekly spend",
                spec=chart_spec,
                png=None,
                created_at=rt.now(),
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        # Stable keys: a rerun after a crash (claim retaken) adds nothing twice.
        await enqueue(
            s,
            rt,
            kind="digest",
            target_type="team",
            target_id=team_id,
            reply=channel,
            key=f"digest:{team.key}:{week}",
        )
        for manager_id, reply in managers.items():
            await enqueue(
                s,
                rt,
                kind="manager_digest",
                target_type="person",
                target_id=manager_id,
                reply=reply,
                key=f"digest:{team.key}:{week}:manager:{manager_id}",
            )
    return {"team": team.key, "week": week, "late": late, "managers": len(managers)}


register(
    JobSpec(
        name="digests",
        description="Weekly team digest to each team's channel (+ managers' private versions)",
        func=run,
        due=due,
        lease=timedelta(minutes=10),
    )
)
