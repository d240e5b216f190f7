"""Claim rows: the one mechanism that makes jobs run once per period across replicas.

A claim is an INSERT of (job, period); the database's primary key lets exactly one
replica win. A claim whose holder died (lease expired while "running") or that failed
(after a backoff) can be taken over with a conditional UPDATE, which again only one
replica can win.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from bot.store import Database
from bot.store.results import affected
from bot.store.tables import JobClaim, JobFirstSeen

OWNER = f"{socket.gethostname()}:{os.getpid()}"
MAX_ATTEMPTS = 3
RETRY_BACKOFF = timedelta(minutes=5)


def _insert(db: Database) -> Any:
    return db.insert(JobClaim)


async def claim(
    db: Database,
    job: str,
    period: str,
    *,
    now: datetime,
    lease: timedelta,
    late: bool = False,
    simulated: bool = False,
) -> bool:
    """Try to take (job, period). True if this caller now owns it."""
    async with db.session() as s:
        stmt = (
            _insert(db)
            .values(
                job=job,
                period=period,
                status="running",
                owner=OWNER,
                claimed_at=now,
                lease_until=now + lease,
                attempts=1,
                late=late,
                simulated=simulated,
            )
            .on_conflict_do_nothing(index_elements=["job", "period"])
        )
        if affected(await s.execute(stmt)) == 1:
            return True
        # Take over a dead holder's claim, or retry a failed one after a backoff.
        retake = (
            update(JobClaim)
            .where(
                JobClaim.job == job,
                JobClaim.period == period,
                JobClaim.attempts < MAX_ATTEMPTS,
                or_(
                    and_(JobClaim.status == "running", JobClaim.lease_until < now),
                    and_(JobClaim.status == "failed", JobClaim.finished_at < now - RETRY_BACKOFF),
                ),
            )
            .values(
                status="running",
                owner=OWNER,
                claimed_at=now,
                lease_until=now + lease,
                attempts=JobClaim.attempts + 1,
                error=None,
            )
        )
        return affected(await s.execute(retake)) == 1


async def extend(db: Database, job: str, period: str, *, until: datetime) -> bool:
    """Push the lease on; False if this process no longer holds the claim."""
    async with db.session() as s:
        result = await s.execute(
            update(JobClaim)
            .where(
                JobClaim.job == job,
                JobClaim.period == period,
                JobClaim.owner == OWNER,
                JobClaim.status == "running",
            )
            .values(lease_until=until)
        )
        return affected(result) == 1


async def finish(
    db: Database,
    job: str,
    period: str,
    *,
    now: datetime,
    ok: bool,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    async with db.session() as s:
        await s.execute(
            update(JobClaim)
            .where(JobClaim.job == job, JobClaim.period == period, JobClaim.owner == OWNER)
            .values(
                status="done" if ok else "failed",
                finished_at=now,
                result=result,
                error=error[:4000] if error else None,
            )
        )


async def settled(db: Database, job: str, periods: list[str]) -> set[str]:
    """Of ``periods``, those already done or out of attempts (nothing left to do)."""
    if not periods:
        return set()
    async with db.reader() as s:
        rows = await s.execute(
            select(JobClaim.period, JobClaim.status, JobClaim.attempts).where(
                JobClaim.job == job, JobClaim.period.in_(periods)
            )
        )
        return {
            p
            for p, status, attempts in rows
            if status == "done" or (status != "running" and attempts >= MAX_ATTEMPTS)
        }


async def first_seen(db: Database, jobs: list[str], *, now: datetime | None) -> dict[str, datetime]:
    """When the scheduler first considered each of ``jobs``, recording ``now`` for the new
    ones (``now=None``: only read, as simulated runs do)."""
    query = select(JobFirstSeen.job, JobFirstSeen.first_seen_at)
    async with db.reader() as s:
        known: dict[str, datetime] = {job: at for job, at in await s.execute(query)}
    if now is None or all(job in known for job in jobs):
        return known
    async with db.session() as s:
        for job in jobs:
            if job not in known:
                await s.execute(
                    db.insert(JobFirstSeen)
                    .values(job=job, first_seen_at=now)
                    .on_conflict_do_nothing(index_elements=["job"])
                )
        return {job: at for job, at in await s.execute(query)}


async def last_real_run(db: Database) -> datetime | None:
    """When a job last started on the real clock (runs "as if" another time don't count)."""
    async with db.reader() as s:
        return await s.scalar(
            select(func.max(JobClaim.claimed_at)).where(JobClaim.simulated.is_(False))
        )
