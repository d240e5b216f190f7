"""Saving what vendors report: members' effective limits and their increase requests.

Members are matched to people by email, case-insensitively (vendors keep the case the
member typed; the directory stores emails lower-cased).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.enforcement.claude import VENDOR, IncreaseRequest, SpendSummary
from bot.runtime import Runtime
from bot.store.tables import EnforcedLimit, Person, VendorIncreaseRequest


async def emails_to_people(s: AsyncSession) -> dict[str, int]:
    rows = await s.execute(select(func.lower(Person.email), Person.id).where(Person.active))
    return {email: pid for email, pid in rows.all()}


async def person_for_email(s: AsyncSession, email: str | None) -> int | None:
    if not email:
        return None
    return await s.scalar(select(Person.id).where(
        func.lower(Person.email) == email.strip().lower(), Person.active))


async def save_limit(
    s: AsyncSession, rt: Runtime, *, vendor: str, user_id: str, period: str,
    person_id: int | None, email: str | None, amount_micros: int | None, spent_micros: int,
    currency: str = "USD", inherited_from: str | None = None, source_detail: str | None = None,
    spend_limit_id: str | None = None, as_of: datetime | None = None,
) -> None:
    """Insert or refresh one member's limit for one period."""
    values = dict(
        person_id=person_id, email=email, amount_micros=amount_micros,
        spent_micros=spent_micros, currency=currency, inherited_from=inherited_from,
        source_detail=source_detail, spend_limit_id=spend_limit_id, as_of=as_of or rt.now(),
    )
    stmt = rt.db.insert(EnforcedLimit).values(
        vendor=vendor, vendor_user_id=user_id, period=period, **values)
    await s.execute(stmt.on_conflict_do_update(
        index_elements=["vendor", "vendor_user_id", "period"], set_=values))


async def drop_unseen(s: AsyncSession, vendor: str, seen: set[tuple[str, str]]) -> int:
    """Forget members a complete read no longer lists (they left, or lost their seat)."""
    rows = (await s.execute(select(EnforcedLimit.id, EnforcedLimit.vendor_user_id,
                                   EnforcedLimit.period).where(EnforcedLimit.vendor == vendor)
                            )).all()
    stale = [r.id for r in rows if (r.vendor_user_id, r.period) not in seen]
    for start in range(0, len(stale), 500):
        await s.execute(delete(EnforcedLimit).where(EnforcedLimit.id.in_(stale[start:start + 500])))
    return len(stale)


async def save_summary(s: AsyncSession, rt: Runtime, row: SpendSummary,
                       person_id: int | None, as_of: datetime | None = None) -> None:
    await save_limit(
        s, rt, vendor=VENDOR, user_id=row.user_id, period=row.period, person_id=person_id,
        email=row.actor.email, amount_micros=row.amount_micros, spent_micros=row.spent_micros,
        currency=row.currency, inherited_from=row.source_type, source_detail=row.source_detail,
        spend_limit_id=row.spend_limit_id, as_of=as_of,
    )


async def save_request(s: AsyncSession, rt: Runtime, req: IncreaseRequest,
                       person_id: int | None) -> None:
    now = rt.now()
    summary = req.summary
    values = dict(
        vendor_user_id=req.actor.user_id, person_id=person_id, email=req.actor.email,
        period=req.period or (summary.period if summary else None), status=req.status,
        current_amount_micros=summary.amount_micros if summary else None,
        current_spent_micros=summary.spent_micros if summary else None,
        created_at=req.created_at, resolved_at=req.resolved_at,
        resolved_by=req.resolved_by.label if req.resolved_by else None, as_of=now,
    )
    if summary is None:  # decided requests carry no summary: keep the last one seen
        values.pop("current_amount_micros")
        values.pop("current_spent_micros")
    stmt = rt.db.insert(VendorIncreaseRequest).values(
        vendor=VENDOR, request_id=req.id, first_seen_at=now, **values)
    await s.execute(stmt.on_conflict_do_update(
        index_elements=["vendor", "request_id"], set_=values))
