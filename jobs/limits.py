"""Limits that bind: read Claude Enterprise limits and requests, push LiteLLM budgets.

Each run also reconciles (queues the write that repairs a limit edited outside
tokencoach) and then sends the vendor ops that are due.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.enforcement import litellm, ops, sync
from bot.runtime import Runtime
from bot.scheduling.registry import DueFunc, JobSpec, Occurrence, cron_due, register


def _when_enabled(vendor: str) -> DueFunc:
    due = cron_due(lambda rt: getattr(rt.config.enforcement, vendor).schedule,
                   lookback=timedelta(hours=1))

    async def check(rt: Runtime, at: Any) -> list[Occurrence]:
        return await due(rt, at) if getattr(rt.config.enforcement, vendor).enabled else []

    return check


async def sync_limits(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    counts: dict[str, Any] = await sync.sync_claude(rt)
    counts.update({f"vendor_ops_{k}": v for k, v in (await ops.drain(rt)).as_dict().items()})
    return counts


async def litellm_budgets(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    counts: dict[str, Any] = await litellm.push_caps(rt, occ.period)
    counts.update({f"vendor_ops_{k}": v for k, v in (await ops.drain(rt)).as_dict().items()})
    return counts


register(JobSpec(
    name="sync-limits",
    description="Claude Enterprise: read every member's limit and spend and the pending "
    "increase requests; repair drifted overrides",
    func=sync_limits,
    due=_when_enabled("claude_enterprise"),
    lease=timedelta(minutes=10),
))
register(JobSpec(
    name="litellm-budgets",
    description="LiteLLM: read every user's budget; push caps and grants where they differ",
    func=litellm_budgets,
    due=_when_enabled("litellm"),
    lease=timedelta(minutes=10),
))
