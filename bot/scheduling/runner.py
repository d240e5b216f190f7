"""Running jobs: claim, run, record; `run_due` for ticks, catch-up and `jobs run-due`."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import audit, metrics
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


def is_late(rt: Runtime, due_at: datetime, after: timedelta = LATE_AFTER) -> bool:
    """A real run well after its due time is a catch-up; a simulated run never is (its time
    was chosen, nothing was missed)."""
    return not rt.simulated and rt.now() - due_at > after


async def run_occurrence(rt: Runtime, spec: JobSpec, occ: Occurrence) -> RunOutcome:
    now = rt.now()
    late = is_late(rt, occ.due_at)
    if not await claims.claim(
        rt.db,
        spec.name,
        occ.period,
        now=now,
        lease=spec.lease,
        late=late,
        simulated=rt.simulated,
    ):
        return RunOutcome(spec.name, occ.period, ran=False)

    # The job runs in its own task, which copies this context: its audit rows are marked
    # simulated when the run is.
    with audit.simulated_rows(rt.simulated):
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
        "job done",
        extra={
            "job": spec.name,
            "period": occ.period,
            "late": late,
            "simulated": rt.simulated,
            "result": result,
        },
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

    Catch-up is for downtime after the bot has run: a period that fell due well before
    the scheduler first saw its job is history a fresh install never missed, and is not
    run at all. A simulated run ("as if it were") goes by the same marks but sets none.
    ``stopping``: the process is shutting down; start no further job (the rest are due
    again at the next start, or on another replica).
    """
    rt = rt.frozen_at(at) if at else rt
    specs = all_jobs()
    now = None if rt.simulated else rt.real_now()
    seen = await claims.first_seen(rt.db, list(specs), now=now)
    outcomes: list[RunOutcome] = []
    for spec in specs.values():
        if stopping():
            break
        try:
            occurrences = await spec.due(rt, rt.now())
        except Exception as exc:
            log.error("job schedule failed", extra={"job": spec.name, "error": repr(exc)})
            continue
        since = seen.get(spec.name)
        if since is not None:
            occurrences = [
                o
                for o in occurrences
                if not (o.due_at < since and rt.now() - o.due_at > LATE_AFTER)
            ]
        done = await claims.settled(rt.db, spec.name, [o.period for o in occurrences])
        for occ in occurrences:
            if occ.period not in done and not stopping():
                outcomes.append(await run_occurrence(rt, spec, occ))
    return outcomes
