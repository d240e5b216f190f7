"""Claude Enterprise members' native spend-limit increase requests: read, approve, deny.

A request carries no requested amount (the docs: "the admin supplies the new limit on
approval"); approving writes a per-user limit at the amount tokencoach sends and
resolves the request. Both decisions are ops (durable, retried, audited) and idempotent:
each run first reads the request, so a retry after an approve that went through, or a
decision made meanwhile in the console, calls nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.enforcement import claude, ops
from bot.enforcement.claude import VENDOR, ClaudeSpendLimits, IncreaseRequest
from bot.enforcement.http import VendorError
from bot.enforcement.ops import Call, Outcome, dry_run, handles
from bot.enforcement.overrides import adopt_new_limit
from bot.enforcement.store import person_for_email, save_request
from bot.runtime import Runtime
from bot.store.tables import VendorIncreaseRequest, VendorOp

REQUESTS_PATH = "/v1/organizations/spend_limit_increase_requests"


@dataclass(frozen=True)
class IncreaseRequestView:
    """A native request as last read (for approval cards)."""

    request_id: str
    person_id: int | None
    email: str | None
    period: str | None
    status: str
    current_amount_micros: int | None  # the member's effective limit while pending
    current_spent_micros: int | None
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    as_of: datetime


def _view(row: VendorIncreaseRequest) -> IncreaseRequestView:
    return IncreaseRequestView(
        request_id=row.request_id, person_id=row.person_id, email=row.email,
        period=row.period, status=row.status, current_amount_micros=row.current_amount_micros,
        current_spent_micros=row.current_spent_micros, created_at=row.created_at,
        resolved_at=row.resolved_at, resolved_by=row.resolved_by, as_of=row.as_of)


async def pending_increase_requests(
    s: AsyncSession, *, person_ids: set[int] | None = None
) -> list[IncreaseRequestView]:
    """Pending native requests (as of the last sync), oldest first."""
    q = select(VendorIncreaseRequest).where(
        VendorIncreaseRequest.vendor == VENDOR, VendorIncreaseRequest.status == "pending")
    if person_ids is not None:
        q = q.where(VendorIncreaseRequest.person_id.in_(person_ids))
    rows = (await s.scalars(q.order_by(VendorIncreaseRequest.created_at))).all()
    return [_view(r) for r in rows]


async def increase_request(s: AsyncSession, request_id: str) -> IncreaseRequestView | None:
    row = await s.get(VendorIncreaseRequest, (VENDOR, request_id))
    return _view(row) if row else None


async def queue_approve_increase(
    s: AsyncSession, rt: Runtime, request_id: str, amount_micros: int, period: str | None,
    *, actor: str, actor_id: int | None = None, suppress_notification: bool = False,
) -> bool:
    """Queue "approve at ``amount_micros`` (the new limit)" in the caller's transaction.

    One approval per request, whatever the number of clicks: the op key is the request.
    """
    if amount_micros < 0:
        raise ValueError("the new limit must not be negative")
    row = await s.get(VendorIncreaseRequest, (VENDOR, request_id))
    return await ops.enqueue(
        s, rt, vendor=VENDOR, kind="approve", key=f"increase:{request_id}:decide",
        payload={"request_id": request_id, "amount_micros": amount_micros, "period": period,
                 "suppress_notification": suppress_notification},
        actor=actor, actor_id=actor_id, person_id=row.person_id if row else None,
        subject=f"increase_request:{request_id}")


async def queue_deny_increase(
    s: AsyncSession, rt: Runtime, request_id: str, *, actor: str, actor_id: int | None = None,
    suppress_notification: bool = False,
) -> bool:
    """Queue "deny" in the caller's transaction (shares the approve key: one decision)."""
    row = await s.get(VendorIncreaseRequest, (VENDOR, request_id))
    return await ops.enqueue(
        s, rt, vendor=VENDOR, kind="deny", key=f"increase:{request_id}:decide",
        payload={"request_id": request_id, "suppress_notification": suppress_notification},
        actor=actor, actor_id=actor_id, person_id=row.person_id if row else None,
        subject=f"increase_request:{request_id}")


async def _saving(rt: Runtime, req: IncreaseRequest, op: VendorOp | None = None
                  ) -> ops.Record:
    """Save the request as read; after tokencoach's own approval (``op``), the approved
    limit also becomes the member's own limit under any grant override."""

    async def record(s: AsyncSession) -> None:
        await save_request(s, rt, req, await person_for_email(s, req.actor.email))
        if op is not None and req.status == "approved" and req.actor.user_id:
            await adopt_new_limit(
                s, rt, user_id=req.actor.user_id, period=req.period or claude.MONTHLY,
                amount_micros=claude.to_whole_cents(int(op.payload["amount_micros"])),
                spend_limit_id=req.spend_limit.id if req.spend_limit else None,
                reason=f"approved:{req.id}", actor=op.actor, actor_id=op.actor_id)

    return record


def _decided(req: IncreaseRequest) -> dict[str, str | None]:
    return {"request_id": req.id, "status": req.status,
            "resolved_by": req.resolved_by.label if req.resolved_by else None}


async def _current(api: ClaudeSpendLimits, request_id: str) -> IncreaseRequest | None:
    try:
        return await api.get_request(request_id)
    except VendorError as exc:
        if exc.status == 404:  # the requester left the organization: nothing to decide
            return None
        raise


async def _decide(rt: Runtime, op: VendorOp, *, approve: bool) -> Outcome:
    rid = str(op.payload["request_id"])
    suppress = bool(op.payload.get("suppress_notification"))
    verb, want = ("approve", "approved") if approve else ("deny", "denied")
    body: dict[str, object] = {"suppress_notification": suppress}
    if approve:
        body["amount"] = claude.micros_to_minor(int(op.payload["amount_micros"]))
        if op.payload.get("period"):
            body["period"] = op.payload["period"]
    async with claude.client(rt) as http:
        api = ClaudeSpendLimits(http)
        req = await _current(api, rid)
        if req is None:
            return Outcome("skipped", {"request_id": rid, "status": "gone"})
        call = Call("POST", f"{REQUESTS_PATH}/{rid}/{verb}", body, before={"status": req.status})
        if req.status == want:  # done by an earlier attempt (recorded now), or a repeat
            call.already_applied = True
            return Outcome("done", _decided(req), [call] if op.attempts > 1 else [],
                           await _saving(rt, req, op))
        if req.status != "pending":  # decided the other way in the console meanwhile
            return Outcome("skipped", _decided(req), [], await _saving(rt, req))
        if dry_run(rt, VENDOR):
            return Outcome("dry_run", _decided(req), [call])
        if approve:
            answer = await api.approve(rid, int(op.payload["amount_micros"]),
                                       op.payload.get("period"), suppress_notification=suppress)
        else:
            answer = await api.deny(rid, suppress_notification=suppress)
        call.after = {"status": answer.status}
        if answer.spend_limit is not None:
            call.after["spend_limit_id"] = answer.spend_limit.id
        return Outcome("done", _decided(answer), [call], await _saving(rt, answer, op))


@handles(VENDOR, "approve")
async def approve(rt: Runtime, op: VendorOp) -> Outcome:
    return await _decide(rt, op, approve=True)


@handles(VENDOR, "deny")
async def deny(rt: Runtime, op: VendorOp) -> Outcome:
    return await _decide(rt, op, approve=False)


async def decision_op(s: AsyncSession, request_id: str) -> VendorOp | None:
    """The decision tokencoach queued for a request, if any (its status and result)."""
    return await s.scalar(select(VendorOp).where(
        VendorOp.op_key == f"increase:{request_id}:decide"))
