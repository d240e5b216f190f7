"""The organization's month as admins see it, computed once for `/tokens admin` and the
weekly admin digest: spend, unattributed spend, undelivered messages, sources' freshness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.tables import OutboxMessage, SourceState, UsageDaily
from bot.timeutil import Month, as_utc
from bot.usage.names import source_order

UNDELIVERED_DAYS = 7


@dataclass(frozen=True)
class SourceStatus:
    source: str
    data_as_of: datetime | None
    failing: str | None  # the last error, when it came after the last success


@dataclass(frozen=True)
class OrgMonth:
    month: Month
    spent: int
    unattributed: int  # spend nobody could be matched to
    undelivered: int  # messages that failed in the last UNDELIVERED_DAYS days
    sources: list[SourceStatus]  # in source order


async def org_month(s: AsyncSession, month: Month, now: datetime) -> OrgMonth:
    cost = UsageDaily.cost_micros
    spent, unattributed = (await s.execute(
        select(func.coalesce(func.sum(cost), 0),
               func.coalesce(func.sum(case((UsageDaily.person_id == 0, cost), else_=0)), 0))
        .where(UsageDaily.day >= month.first, UsageDaily.day <= month.last))).one()
    undelivered = await s.scalar(
        select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == "failed",
            OutboxMessage.created_at >= now - timedelta(days=UNDELIVERED_DAYS)))
    sources = []
    for st in (await s.scalars(select(SourceState))).all():
        failed_last = bool(st.last_error) and (
            st.last_success_at is None
            or (st.last_error_at is not None and st.last_error_at > st.last_success_at))
        sources.append(SourceStatus(st.source, as_utc(st.data_as_of) if st.data_as_of else None,
                                    st.last_error if failed_last else None))
    sources.sort(key=lambda st: source_order(st.source))
    return OrgMonth(month, int(spent or 0), int(unattributed or 0), int(undelivered or 0),
                    sources)
