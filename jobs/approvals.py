"""When the sandbox timers run (the rules: bot.approvals.timers)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.approvals.timers import sweep
from bot.runtime import Runtime
from bot.scheduling.registry import JobSpec, Occurrence, cron_due, register


async def run(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    return await sweep(rt)


register(
    JobSpec(
        name="approvals",
        description="Sandbox approvals: reminders, escalation, expiry, outcome prompts, grant ends",
        func=run,
        due=cron_due(lambda rt: rt.config.schedules.approvals, lookback=timedelta(hours=2)),
        lease=timedelta(minutes=10),
    )
)
