"""Claude Enterprise per-user overrides for sandbox grants: raise, then restore.

One op kind, ``override``, converges a member's vendor limit on what the database asks
for now: while grants are active, a per-user override at (the limit they had before the
first grant) + (their active grants); once none is active, the previous state: their own
previous override, or none at all (DELETE, so they inherit again).

Crash safety: the previous state is saved (``vendor_overrides``) before the first write,
and every run reads the member's current effective limit before writing, so re-running
an op whose write went through but was never recorded finds the target already there
and writes nothing: no double raise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.enforcement import claude
from bot.enforcement.claude import MONTHLY, VENDOR, ClaudeSpendLimits, SpendSummary
from bot.enforcement.http import VendorError
from bot.enforcement.ops import Call, Outcome, Record, dry_run, enqueue, handles
from bot.enforcement.store import save_summary
from bot.runtime import Runtime
from bot.store.tables import EnforcedLimit, Person, SandboxGrant, VendorOp, VendorOverride

LIMITS_PATH = "/v1/organizations/spend_limits"


async def active_grants_micros(s: AsyncSession, person_id: int, now: datetime) -> int:
    total = await s.scalar(select(func.coalesce(func.sum(SandboxGrant.amount_micros), 0)).where(
        SandboxGrant.person_id == person_id, SandboxGrant.status == "active",
        SandboxGrant.starts_at <= now, SandboxGrant.ends_at > now))
    return int(total or 0)


def describe(row: SpendSummary | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"amount": None if row.amount_micros is None else claude.micros_to_minor(
        row.amount_micros), "source": row.source_type, "source_detail": row.source_detail,
        "spend_limit_id": row.spend_limit_id}


async def find_member(api: ClaudeSpendLimits, email: str) -> str | None:
    """The member's tagged user id, by email (when no sync has mapped them yet)."""
    async for page in api.effective():
        for row in page:
            if row.actor.email and row.actor.email == email.lower():
                return row.user_id
    return None


async def _member_id(rt: Runtime, person: Person, period: str,
                     api: ClaudeSpendLimits) -> str | None:
    async with rt.db.reader() as s:
        known = await s.scalar(select(EnforcedLimit.vendor_user_id).where(
            EnforcedLimit.vendor == VENDOR, EnforcedLimit.person_id == person.id,
            EnforcedLimit.period == period))
    return known or await find_member(api, person.email)


async def _capture(rt: Runtime, person_id: int, user_id: str, period: str,
                   current: SpendSummary) -> VendorOverride:
    """Save what the member has before tokencoach's first write (committed on its own)."""
    async with rt.db.session() as s:
        row = await s.get(VendorOverride, (VENDOR, user_id, period))
        if row is not None and row.state == "active":
            return row  # captured by an earlier run: never overwrite the previous state
        values = dict(
            person_id=person_id, state="active",
            baseline_kind="override" if current.is_override else "inherited",
            baseline_amount_micros=current.amount_micros,
            baseline_spend_limit_id=current.spend_limit_id if current.is_override else None,
            target_micros=None, spend_limit_id=None, captured_at=rt.now(), written_at=None,
            restored_at=None,
        )
        if row is None:
            row = VendorOverride(vendor=VENDOR, vendor_user_id=user_id, period=period, **values)
            s.add(row)
        else:
            for name, value in values.items():
                setattr(row, name, value)
        await s.flush()
        return row


async def _recorder(rt: Runtime, api: ClaudeSpendLimits, person_id: int, user_id: str,
                    period: str, *, fresh: SpendSummary | None = None, **override: Any
                    ) -> Record:
    """The member's effective row as it is now (read unless given) and the override's new
    state, saved together in the op's finishing transaction."""
    if fresh is None:
        fresh = await api.member(user_id, period)

    async def record(s: AsyncSession) -> None:
        row = await s.get(VendorOverride, (VENDOR, user_id, period))
        if row is not None:
            for name, value in override.items():
                setattr(row, name, value)
        if fresh is not None:
            await save_summary(s, rt, fresh, person_id)

    return record


async def adopt_new_limit(s: AsyncSession, rt: Runtime, *, user_id: str, period: str,
                          amount_micros: int | None, spend_limit_id: str | None, reason: str,
                          actor: str, actor_id: int | None = None) -> bool:
    """A member's increase request was approved while tokencoach holds a grant override
    for them: the approved limit becomes their own limit (what the grant's end restores)
    and the override is recomputed on top of it. Without this, reconciliation would take
    the approval for drift and undo it."""
    row = await s.get(VendorOverride, (VENDOR, user_id, period))
    if row is None or row.state != "active":
        return False
    before = row.baseline_amount_micros
    row.baseline_kind, row.baseline_amount_micros = "override", amount_micros
    row.baseline_spend_limit_id, row.target_micros = spend_limit_id, None
    await audit.record(s, at=rt.now(), action="enforcement.baseline_changed", actor=actor,
                       actor_id=actor_id, subject=f"person:{row.person_id}",
                       detail={"vendor": VENDOR, "user_id": user_id, "period": period,
                               "before_micros": before, "after_micros": amount_micros,
                               "reason": reason})
    await enqueue(s, rt, vendor=VENDOR, kind="override",
                  key=f"rebase:{VENDOR}:{user_id}:{period}:{reason}"[:255],
                  payload={"period": period, "reason": reason}, actor=actor,
                  actor_id=actor_id, person_id=row.person_id, subject=f"person:{row.person_id}")
    return True


@handles(VENDOR, "override")
async def converge_override(rt: Runtime, op: VendorOp) -> Outcome:
    now = rt.now()
    period = str(op.payload.get("period") or MONTHLY)
    async with rt.db.reader() as s:
        person = await s.get(Person, op.person_id) if op.person_id else None
        grants = await active_grants_micros(s, person.id, now) if person else 0
        state = await s.scalar(select(VendorOverride).where(
            VendorOverride.vendor == VENDOR, VendorOverride.person_id == op.person_id,
            VendorOverride.period == period))
    if person is None:
        return Outcome("skipped", {"reason": "no such person"})
    dry = dry_run(rt, VENDOR)
    async with claude.client(rt) as http:
        api = ClaudeSpendLimits(http)
        user_id = state.vendor_user_id if state else await _member_id(rt, person, period, api)
        if user_id is None:
            return Outcome("skipped", {"reason": "not a Claude Enterprise member"})
        current = await api.member(user_id, period)
        if current is None:
            return Outcome("skipped", {"reason": f"no {period} limit row for the member"})
        if current.currency != "USD":
            raise VendorError(f"{VENDOR}: the organization bills in {current.currency}; "
                              "tokencoach writes limits in USD only")
        if grants > 0:
            return await _raise(rt, op, api, person.id, user_id, period, current, state,
                                grants, dry)
        return await _restore(rt, op, api, person.id, user_id, period, current, state, dry)


async def _raise(rt: Runtime, op: VendorOp, api: ClaudeSpendLimits, person_id: int,
                 user_id: str, period: str, current: SpendSummary,
                 state: VendorOverride | None, grants: int, dry: bool) -> Outcome:
    if state is None or state.state != "active":
        if current.amount_micros is None:
            return Outcome("skipped", {"reason": "unlimited: there is no limit to raise"})
        if not dry:
            state = await _capture(rt, person_id, user_id, period, current)
    baseline = current.amount_micros if state is None or state.state != "active" else (
        state.baseline_amount_micros)
    if baseline is None:
        return Outcome("skipped", {"reason": "unlimited: there is no limit to raise"})
    target = claude.to_whole_cents(baseline + grants)
    body = api.set_body(user_id, target, period)
    result = {"user_id": user_id, "period": period, "baseline_micros": baseline,
              "grants_micros": grants, "target_micros": target}
    if current.is_override and current.amount_micros == target:
        # Already there: a previous attempt's write (recorded now) or a repeated op.
        calls = [Call("POST", LIMITS_PATH, body, after=describe(current),
                      already_applied=True)] if op.attempts > 1 else []
        record = await _recorder(rt, api, person_id, user_id, period, fresh=current,
                                 target_micros=target, spend_limit_id=current.spend_limit_id,
                                 written_at=rt.now())
        return Outcome("done", {**result, "changed": False}, calls, record)
    if dry:
        return Outcome("dry_run", result, [Call("POST", LIMITS_PATH, body,
                                                before=describe(current))])
    written = await api.set_limit(user_id, target, period)
    record = await _recorder(rt, api, person_id, user_id, period, target_micros=target,
                             spend_limit_id=written.id, written_at=rt.now())
    return Outcome("done", {**result, "changed": True, "spend_limit_id": written.id},
                   [Call("POST", LIMITS_PATH, body, before=describe(current),
                         after={"spend_limit_id": written.id})], record)


async def _restore(rt: Runtime, op: VendorOp, api: ClaudeSpendLimits, person_id: int,
                   user_id: str, period: str, current: SpendSummary,
                   state: VendorOverride | None, dry: bool) -> Outcome:
    if state is None or state.state != "active":
        return Outcome("skipped", {"reason": "no override of tokencoach's to restore"})
    restored: dict[str, Any] = {"state": "restored", "restored_at": rt.now()}
    result: dict[str, Any] = {"user_id": user_id, "period": period,
                              "restore": state.baseline_kind}
    if state.baseline_kind == "override":
        want = state.baseline_amount_micros
        body = api.set_body(user_id, want, period)
        call = Call("POST", LIMITS_PATH, body, before=describe(current))
        done = current.is_override and current.amount_micros == want
    else:
        limit_id = current.spend_limit_id if current.is_override else None
        call = Call("DELETE", f"{LIMITS_PATH}/{limit_id or state.spend_limit_id}",
                    before=describe(current))
        done = not current.is_override
    if done:
        call.already_applied = True
        record = await _recorder(rt, api, person_id, user_id, period, fresh=current,
                                 **restored)
        return Outcome("done", {**result, "changed": False},
                       [call] if op.attempts > 1 else [], record)
    if dry:
        return Outcome("dry_run", result, [call])
    if state.baseline_kind == "override":
        await api.set_limit(user_id, state.baseline_amount_micros, period)
    else:
        await api.delete_limit(call.path.rsplit("/", 1)[1])
    record = await _recorder(rt, api, person_id, user_id, period, **restored)
    return Outcome("done", {**result, "changed": True}, [call], record)
