"""Scheduled pulls: one job per provider source (``pull-openai``, ``pull-anthropic``,
``pull-litellm``, ``pull-github-copilot``, ``pull-cursor``), due on the source's own cron
(``sources.<name>.schedule``, org zone).

A source that is not configured or is disabled is never due. A missed run needs no
catch-up of its own: every pull resumes from the source's checkpoint, so the latest
missed fire covers everything since.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.runtime import Runtime
from bot.scheduling.registry import DueFunc, JobFunc, JobSpec, Occurrence, cron_due, register
from bot.usage.pull import SOURCES, PullError, cli_name, pull_source, record_pull_error

# Claims are kept alive by the runner's heartbeat; the lease only has to outlive a
# crashed holder long enough not to start a second backfill beside a slow first one.
LEASE = timedelta(hours=2)
LOOKBACK = timedelta(days=2)


def _enabled(rt: Runtime, name: str) -> bool:
    cfg = getattr(rt.config.sources, name)
    return cfg is not None and cfg.enabled


def _due(name: str) -> DueFunc:
    on_cron = cron_due(lambda rt: getattr(rt.config.sources, name).schedule, lookback=LOOKBACK)

    async def due(rt: Runtime, at: datetime) -> list[Occurrence]:
        return await on_cron(rt, at) if _enabled(rt, name) else []

    return due


def _runner(name: str) -> JobFunc:
    async def run(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
        try:
            result = await pull_source(rt, name)
        except PullError:
            raise  # pull_source already recorded it on source_state; the runner marks failed
        except Exception as exc:
            # Anything unexpected (a bug, the database) still shows in freshness reports.
            await record_pull_error(rt, name, f"{name}: pull failed unexpectedly: {exc!r}")
            raise
        return result.as_dict()

    return run


for _name in SOURCES:
    register(
        JobSpec(
            name=f"pull-{cli_name(_name)}",
            description=f"Pull usage from {_name} (sources.{_name}.schedule) from its checkpoint",
            func=_runner(_name),
            due=_due(_name),
            lease=LEASE,
            tags=("ingest",),
        )
    )
