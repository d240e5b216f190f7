"""Retention: delete raw usage past the window (daily totals stay exact) and old plumbing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from bot.runtime import Runtime
from bot.scheduling.registry import JobSpec, Occurrence, cron_due, register
from bot.store.results import affected
from bot.store.tables import Chart, OutboxMessage, ProcessedEvent, SlackView, UsageRecord
from bot.timeutil import local_day

VIEWS_KEEP = timedelta(days=7)  # Slack modal state (bot/slack/views.py): long closed by then


async def run(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    # Never from a simulated future: a run "as if it were" 2030 keeps to today's horizon.
    now = min(rt.now(), rt.real_now())
    keep = rt.config.retention
    horizon = local_day(now, rt.tz) - timedelta(days=keep.raw_usage_days)
    async with rt.db.session() as s:
        # usage_daily is not touched: monthly and daily figures stay exact. The writer
        # refuses records older than the horizon, so a re-ingest cannot half-restore a day.
        usage = affected(await s.execute(delete(UsageRecord).where(UsageRecord.day < horizon)))
        events = affected(
            await s.execute(
                delete(ProcessedEvent).where(
                    ProcessedEvent.at < now - timedelta(days=keep.processed_events_days)
                )
            )
        )
        outbox = affected(
            await s.execute(
                delete(OutboxMessage).where(
                    OutboxMessage.status.in_(("sent", "skipped")),
                    OutboxMessage.created_at < now - timedelta(days=keep.sent_outbox_days),
                    ~OutboxMessage.id.in_(
                        # keep originals that a later update still points at
                        OutboxMessage.__table__.select()
                        .with_only_columns(OutboxMessage.update_of_id)
                        .where(OutboxMessage.update_of_id.is_not(None))
                        .scalar_subquery()
                    ),
                )
            )
        )
        charts = affected(
            await s.execute(delete(Chart).where(Chart.created_at < now - timedelta(days=90)))
        )
        views = affected(
            await s.execute(delete(SlackView).where(SlackView.created_at < now - VIEWS_KEEP))
        )
    return {
        "usage_records": usage,
        "processed_events": events,
        "outbox": outbox,
        "charts": charts,
        "slack_views": views,
        "horizon": horizon.isoformat(),
    }


register(
    JobSpec(
        name="retention",
        description="Delete raw usage older than retention.raw_usage_days and old plumbing rows",
        func=run,
        due=cron_due(lambda rt: rt.config.schedules.retention, lookback=timedelta(days=2)),
        lease=timedelta(minutes=30),
    )
)
