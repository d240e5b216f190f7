"""When threshold alerts are checked (the rules: bot.nudges.alerts)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.nudges.alerts import sweep
from bot.runtime import Runtime
from bot.scheduling.registry import JobSpec, Occurrence, cron_due, register


async def run(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    return await sweep(rt)


register(
    JobSpec(
        name="alerts",
        description="Threshold alerts at 50/80/100% of the monthly limit, and 100% on forecast",
        func=run,
        due=cron_due(lambda rt: rt.config.schedules.threshold_alerts, lookback=timedelta(hours=2)),
        lease=timedelta(minutes=10),
    )
)
