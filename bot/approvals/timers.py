"""What time does to sandbox requests and grants: remind after 24 h, escalate after 48 h,
expire after 7 days; ask for a grant's outcome before it ends; end grants (and restore any
vendor limits). The scheduler says when (``jobs/approvals.py``); the rules are here.

Each step is one conditional transition (``bot.approvals.transition``), so two replicas or
a rerun after a crash never remind, escalate or expire twice; outgoing messages go through
the outbox with stable keys. The timers of a request follow the policy snapshotted on it:
later config edits don't move them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.approvals import cards
from bot.approvals.flow import close_orphan, confirm_key, reroute, update_cards
from bot.approvals.policy import escalation_target
from bot.approvals.transition import Audit, pending_at, transition
from bot.config.types import parse_duration
from bot.directory import person_by_id
from bot.enforcement.grants import sync_grants
from bot.money import fmt_usd
from bot.outbox import enqueue, enqueue_update
from bot.reply import Header, Reply, Text, literal
from bot.runtime import Runtime
from bot.store.tables import Person, SandboxGrant, SandboxRequest
from bot.timeutil import as_utc

log = logging.getLogger("tokencoach.approvals")


async def remind(rt: Runtime, req: SandboxRequest) -> bool:
    now = rt.now()
    async with rt.db.session() as s:
        reminded = await transition(
            s, rt, SandboxRequest, req.id,
            when=(*pending_at(req), SandboxRequest.reminded_at.is_(None)),
            to=dict(reminded_at=now),
            audit_as=Audit("sandbox.reminded", "scheduler",
                           detail={"approver": req.current_approver_id}),
        )
        if not reminded:
            return False
        requester = await person_by_id(s, req.person_id)
        approver = await person_by_id(s, req.current_approver_id or 0)
        if requester is None or approver is None:
            return False
        waited = int((now - as_utc(req.stage_started_at)).total_seconds() // 3600)
        reply = Reply(
            text=f"Reminder: {requester.name}'s sandbox request is waiting for you",
            blocks=[
                Header(text="A sandbox request is waiting for you"),
                Text(
                    text=f"**{literal(requester.name)}** asked for "
                    f"**{fmt_usd(req.amount_micros)}** {waited} hours ago: "
                    f"“{literal(req.purpose[:200])}”"
                ),
                cards.decision_buttons(req),
            ],
        )
        await enqueue(
            s,
            rt,
            kind="approval_reminder",
            target_type="person",
            target_id=approver.id,
            reply=reply,
            key=f"sandbox:{req.id}:remind:{req.stage}:{approver.id}",
        )
    return True


async def escalate(rt: Runtime, req: SandboxRequest) -> bool:
    async with rt.db.reader() as s:
        target = await escalation_target(
            s, req.current_approver_id or 0, req.person_id, rt.config.sandbox, list(req.stages)
        )
    if target is None:
        return False  # nobody above: it waits for the approver, then expires
    hours = int(rt.config.sandbox.escalate_after.total_seconds() // 3600)
    return await reroute(rt, req, target, status="escalated", escalation=True,
                         note=f"Escalated to you: {{previous}} didn't decide within {hours} h.")


async def expire(rt: Runtime, req: SandboxRequest) -> bool:
    now = rt.now()
    async with rt.db.session() as s:
        expired = await transition(
            s, rt, SandboxRequest, req.id,
            when=(SandboxRequest.status == "pending",),
            to=dict(status="expired", decided_at=now),
            audit_as=Audit("sandbox.expired", "scheduler"),
        )
        if not expired:
            return False
        fresh = await s.get(SandboxRequest, req.id)
        assert fresh is not None
        await s.refresh(fresh)
        requester = await person_by_id(s, req.person_id)
        assert requester is not None
        await update_cards(s, rt, fresh, requester, status="expired", who="")
        days = rt.config.sandbox.expire_after.days
        line = f"⏱ **Expired** after {days} days without a decision. You can ask again."
        await enqueue_update(
            s,
            rt,
            original_key=confirm_key(req.id),
            key=f"{confirm_key(req.id)}:expired",
            reply=cards.confirmation(fresh, None, status_line=line),
        )
        await enqueue(
            s,
            rt,
            kind="approval_result",
            target_type="person",
            target_id=req.person_id,
            key=f"sandbox:{req.id}:expired",
            reply=Reply(
                text=f"Your sandbox request #{req.id} expired",
                blocks=[
                    Header(text=f"Sandbox request #{req.id} expired"),
                    Text(
                        text=f"Nobody decided within {days} days, so it lapsed. "
                        "`/tokens sandbox` to ask again — maybe mention it to "
                        "your manager first."
                    ),
                ],
            ),
        )
    return True


async def ask_outcome(rt: Runtime, grant: SandboxGrant) -> bool:
    async with rt.db.session() as s:
        asked = await transition(
            s, rt, SandboxGrant, grant.id,
            when=(SandboxGrant.outcome_asked_at.is_(None),),
            to=dict(outcome_asked_at=rt.now()),
        )
        if not asked:
            return False
        person = await person_by_id(s, grant.person_id)
        ends = cards.stamp(grant.ends_at, person.timezone if person else None, rt.tz)
        await enqueue(
            s,
            rt,
            kind="outcome_prompt",
            target_type="person",
            target_id=grant.person_id,
            key=f"grant:{grant.id}:outcome",
            reply=cards.outcome_prompt(grant.id, grant.amount_micros, ends),
        )
    return True


async def end(rt: Runtime, grant: SandboxGrant) -> bool:
    async with rt.db.session() as s:
        return await transition(
            s, rt, SandboxGrant, grant.id,
            when=(SandboxGrant.status == "active",),
            to=dict(status="ended"),
            audit_as=Audit("sandbox.grant_ended", "scheduler"),
        )


def _after(value: Any, default: timedelta) -> timedelta:
    try:
        return parse_duration(value) if value is not None else default
    except ValueError:
        return default


async def sweep(rt: Runtime) -> dict[str, Any]:
    """Every timer that is due now, each in its own transaction."""
    cfg = rt.config.sandbox
    now = rt.now()
    counts = {"reminded": 0, "escalated": 0, "expired": 0, "outcome_asked": 0, "ended": 0,
              "closed": 0, "errors": 0}
    async with rt.db.reader() as s:
        pending = (
            await s.scalars(select(SandboxRequest).where(SandboxRequest.status == "pending"))
        ).all()
        asking = (
            await s.scalars(
                select(SandboxGrant).where(
                    SandboxGrant.status == "active",
                    SandboxGrant.outcome_asked_at.is_(None),
                    SandboxGrant.ends_at <= now + cfg.outcome_prompt_before,
                )
            )
        ).all()
        ending = (
            await s.scalars(
                select(SandboxGrant).where(
                    SandboxGrant.status == "active", SandboxGrant.ends_at <= now
                )
            )
        ).all()
        active = set((await s.scalars(select(Person.id).where(Person.active))).all())

    async def step(label: str, work: Awaitable[bool]) -> None:
        # One bad row must not stop the others (or the grant ends and syncs below).
        try:
            counts[label] += await work
        except Exception:
            log.exception("approvals step failed", extra={"step": label})
            counts["errors"] += 1

    for req in pending:
        if req.person_id not in active:
            await step("closed", close_orphan(rt, req.id))
            continue
        snap = req.policy or {}
        waited = now - as_utc(req.stage_started_at)
        if now - as_utc(req.created_at) >= _after(snap.get("expire_after"), cfg.expire_after):
            await step("expired", expire(rt, req))
        elif (waited >= _after(snap.get("escalate_after"), cfg.escalate_after)
              and req.escalated_at is None):
            await step("escalated", escalate(rt, req))
        elif (waited >= _after(snap.get("reminder_after"), cfg.reminder_after)
              and req.reminded_at is None):
            await step("reminded", remind(rt, req))
    for grant in asking:
        if as_utc(grant.ends_at) > now:
            await step("outcome_asked", ask_outcome(rt, grant))
    for grant in ending:
        await step("ended", end(rt, grant))
    counts.update(await sync_grants(rt))
    return counts
