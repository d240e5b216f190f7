"""Running jobs: claim, run, record; `run_due` for ticks, catch-up and `jobs run-due`."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import metrics
from bot.runtime import Runtime
from bot.scheduling import claims
from bot.scheduling.registry import JobSpec, Occurrence, all_jobs

log = logging.getLogger("tokencoach.jobs")
# A run that starts this long after it was due is recorded as late (caught up).
LATE_AFTER = timedelta(minutes=5)


@dataclass
class RunOutcome:
    job: str
    period: str
    ran: bool
    ok: bool = True
    late: bool = False
    result: dict[str, Any] | None = None
    error: str | None = None


async def run_occurrence(rt: Runtime, spec: JobSpec, occ: Occurrence) -> RunOutcome:
    now = rt.now()
    late = now - occ.due_at > LATE_AFTER
    if not await claims.claim(rt.db, spec.name, occ.period, now=now, lease=spec.lease, late=late):
        return RunOutcome(spec.name, occ.period, ran=False)

    body: asyncio.Future[dict[str, Any] | None] = asyncio.ensure_future(spec.func(rt, occ))
    lost = False

    async def keep_lease() -> None:
        # Leases live in the same clock as the claimers (frozen under --at), so a long
        # run under `serve` keeps its claim while a crashed one lets it go.
        nonlocal lost
        while True:
            await asyncio.sleep(max(spec.lease.total_seconds() / 3, 1))
            try:
                held = await claims.extend(
                    rt.db, spec.name, occ.period, until=rt.now() + spec.lease
                )
            except Exception as exc:  # a database blip: try again at the next beat
                log.warning(
                    "could not extend a job's lease",
                    extra={"job": spec.name, "period": occ.period, "error": repr(exc)},
                )
                continue
            if not held:
                # Another process took the period over after our lease ran out: stop, so
                # the work is not done twice.
                log.error(
                    "job lost its claim; stopping", extra={"job": spec.name, "period": occ.period}
                )
                lost = True
                body.cancel()
                return

    heartbeat = asyncio.create_task(keep_lease())
    started = asyncio.get_running_loop().time()
    try:
        result = await body or {}
    except asyncio.CancelledError:
        if not lost:
            body.cancel()
            raise  # the process is shutting down
        metrics.JOB_RUNS.labels(spec.name, "lost").inc()
        return RunOutcome(
            spec.name,
            occ.period,
            ran=True,
            ok=False,
            late=late,
            error="lost its claim to another process",
        )
    except Exception as exc:  # a job failure is recorded and retried, never fatal to serve
        log.error(
            "job failed",
            extra={
                "job": spec.name,
                "period": occ.period,
                "error": repr(exc),
                "trace": traceback.format_exc(),
            },
        )
        metrics.JOB_RUNS.labels(spec.name, "failed").inc()
        await claims.finish(rt.db, spec.name, occ.period, now=rt.now(), ok=False, error=repr(exc))
        return RunOutcome(spec.name, occ.period, ran=True, ok=False, late=late, error=repr(exc))
    finally:
        heartbeat.cancel()
        metrics.JOB_SECONDS.labels(spec.name).observe(asyncio.get_running_loop().time() - started)
    metrics.JOB_RUNS.labels(spec.name, "ok").inc()
    await claims.finish(rt.db, spec.name, occ.period, now=rt.now(), ok=True, result=result)
    log.info(
        "job done", extra={"job": spec.name, "period": occ.period, "late": late, "result": result}
    )
    return RunOutcome(spec.name, occ.period, ran=True, late=late, result=result)


async def run_job(rt: Runtime, name: str, at: datetime | None = None) -> list[RunOutcome]:
    """Run job ``name`` for what is due at ``at`` (default now); each period at most once."""
    jobs = all_jobs()
    if name not in jobs:
        raise KeyError(name)
    spec = jobs[name]
    rt = rt.frozen_at(at) if at else rt
    outcomes = []
    for occ in await spec.due(rt, rt.now()):
        outcomes.append(await run_occurrence(rt, spec, occ))
    return outcomes


async def run_due(rt: Runtime, at: datetime | None = None, *,
                  stopping: Callable[[], bool] = lambda: False) -> list[RunOutcome]:
    """Run every job whose current period is not done yet: ticks and catch-up alike.
    ``stopping``: the process is shutting down; start no further job (the rest are due
    again at the next start, or on another replica)."""
    rt = rt.frozen_at(at) if at else rt
    outcomes: list[RunOutcome] = []
    for spec in all_jobs().values():
        if stopping():
            break
        try:
            occurrences = await spec.due(rt, rt.now())
        except Exception as exc:
            log.error("job schedule failed", extra={"job": spec.name, "error": repr(exc)})
            continue
        done = await claims.settled(rt.db, spec.name, [o.period for o in occurrences])
        for occ in occurrences:
            if occ.period not in done and not stopping():
                outcomes.append(await run_occurrence(rt, spec, occ))
    return outcomes
