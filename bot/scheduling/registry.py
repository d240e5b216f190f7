"""Job specs: what a job is called, when it is due, and the plain function that runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot.runtime import Runtime


@dataclass(frozen=True)
class Occurrence:
    """One due run of a job: a period key (the claim), when it was due, and its argument."""

    period: str
    due_at: datetime
    arg: str | None = None


JobFunc = Callable[[Runtime, Occurrence], Awaitable[dict[str, Any] | None]]
DueFunc = Callable[[Runtime, datetime], Awaitable[list[Occurrence]]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    description: str
    func: JobFunc
    due: DueFunc
    lease: timedelta = timedelta(minutes=10)
    tags: tuple[str, ...] = field(default=())


def last_fire(cron: str, tz: str, at: datetime, lookback: timedelta) -> datetime | None:
    """The latest time ``cron`` fired at or before ``at`` (in ``tz``), within ``lookback``."""
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(tz))
    start = at - lookback
    fire = trigger.get_next_fire_time(None, start)
    last = None
    while fire is not None and fire <= at:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


def cron_due(cron: Callable[[Runtime], str], *, lookback: timedelta, prefix: str = "") -> DueFunc:
    """Due function for a job with one org-wide cron: the latest fire within ``lookback``."""

    async def due(rt: Runtime, at: datetime) -> list[Occurrence]:
        fired = last_fire(cron(rt), rt.tz, at, lookback)
        if fired is None:
            return []
        local = fired.astimezone(ZoneInfo(rt.tz))
        return [Occurrence(period=prefix + local.strftime("%Y-%m-%dT%H:%M"), due_at=fired)]

    return due


_REGISTRY: dict[str, JobSpec] = {}


def register(spec: JobSpec) -> JobSpec:
    _REGISTRY[spec.name] = spec
    return spec


def all_jobs() -> dict[str, JobSpec]:
    import jobs  # noqa: F401  (importing the package registers every job)

    return dict(_REGISTRY)
