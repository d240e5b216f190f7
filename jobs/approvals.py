"""Approval timers: remind after 24 h, escalate after 48 h, expire after 7 days; ask for
a grant's outcome before it ends; end grants (restoring any gateway budget).

Each step is a conditional UPDATE, so two replicas or a rerun after a crash never remind,
escalate or expire twice; outgoing messages go through the outbox with stable keys.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from bot import audit
from bot.approvals import cards
from bot.approvals.flow import close_orphan, confirm_key, send_card, update_cards
from bot.approvals.policy import escalation_target
from bot.config.types import parse_duration
from bot.directory import person_by_id
from bot.enforcement.grants import sync_grants
from bot.money import fmt_usd
from bot.outbox import enqueue, enqueue_update
from bot.reply import Header, Reply, Text, literal
from bot.runtime import Runtime
from bot.scheduling.registry import JobSpec, Occurrence, cron_due, register
from bot.store.results import affected
from bot.store.tables import Person, SandboxGrant, SandboxRequest
from bot.timeutil import as_utc

log = logging.getLogger("tokencoach.jobs.approvals")


async def _remind(rt: Runtime, req: SandboxRequest) -> bool:
    now = rt.now()
    async with rt.db.session() as s:
        won = await s.execute(
            update(SandboxRequest)
            .where(
                SandboxRequest.id == req.id,
                SandboxRequest.status == "pending",
                SandboxRequest.stage == req.stage,
                SandboxRequest.reminded_at.is_(None),
                SandboxRequest.current_approver_id == req.current_approver_id,
            )
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if affected(won) != 1:
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
        await audit.record(
            s,
            at=now,
            action="sandbox.reminded",
            actor="scheduler",
            subject=f"sandbox_request:{req.id}",
            detail={"approver": approver.id},
        )
    return True


async def _escalate(rt: Runtime, req: SandboxRequest) -> bool:
    now = rt.now()
    async with rt.db.session() as s:
        target = await escalation_target(
            s, req.current_approver_id or 0, req.person_id, rt.config.sandbox, list(req.stages)
        )
        if target is None:
            return False  # nobody above: it waits for the approver, then expires
        old = req.current_approver_id
        won = await s.execute(
            update(SandboxRequest)
            .where(
                SandboxRequest.id == req.id,
                SandboxRequest.status == "pending",
                SandboxRequest.stage == req.stage,
                SandboxRequest.escalated_at.is_(None),
                SandboxRequest.current_approver_id == old,
            )
            .values(
                current_approver_id=target, escalated_at=now, stage_started_at=now, reminded_at=None
            )
            .execution_options(synchronize_session=False)
        )
        if affected(won) != 1:
            return False
        fresh = await s.get(SandboxRequest, req.id)
        assert fresh is not None
        await s.refresh(fresh)
        requester = await person_by_id(s, req.person_id)
        new = await person_by_id(s, target)
        previous = await person_by_id(s, old or 0)
        assert requester is not None and new is not None
        await update_cards(s, rt, fresh, requester, status="escalated", who=new.name, only=old)
        hours = int(rt.config.sandbox.escalate_after.total_seconds() // 3600)
        who = previous.name if previous else "the approver"
        note = f"Escalated to you: {who} didn't decide within {hours} h."
        await send_card(s, rt, fresh, requester, new, note)
        await enqueue_update(
            s,
            rt,
            original_key=confirm_key(req.id),
            key=f"{confirm_key(req.id)}:escalated:{target}",
            reply=cards.confirmation(fresh, new),
        )
        await audit.record(
            s,
            at=now,
            action="sandbox.escalated",
            actor="scheduler",
            subject=f"sandbox_request:{req.id}",
            detail={"from": old, "to": target},
        )
    return True


async def _expire(rt: Runtime, req: SandboxRequest) -> bool:
    now = rt.now()
    async with rt.db.session() as s:
        won = await s.execute(
            update(SandboxRequest)
            .where(
                SandboxRequest.id == req.id,
                SandboxRequest.status == "pending",
            )
            .values(status="expired", decided_at=now)
            .execution_options(synchronize_session=False)
        )
        if affected(won) != 1:
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
        await audit.record(
            s,
            at=now,
            action="sandbox.expired",
            actor="scheduler",
            subject=f"sandbox_request:{req.id}",
        )
    return True


async def _ask_outcome(rt: Runtime, grant: SandboxGrant) -> bool:
    now = rt.now()
    async with rt.db.session() as s:
        won = await s.execute(
            update(SandboxGrant)
            .where(
                SandboxGrant.id == grant.id,
                SandboxGrant.outcome_asked_at.is_(None),
            )
            .values(outcome_asked_at=now)
            .execution_options(synchronize_session=False)
        )
        if affected(won) != 1:
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


async def _end(rt: Runtime, grant: SandboxGrant) -> bool:
    now = rt.now()
    async with rt.db.session() as s:
        won = await s.execute(
            update(SandboxGrant)
            .where(
                SandboxGrant.id == grant.id,
                SandboxGrant.status == "active",
            )
            .values(status="ended")
            .execution_options(synchronize_session=False)
        )
        if affected(won) != 1:
            return False
        await audit.record(
            s,
            at=now,
            action="sandbox.grant_ended",
            actor="scheduler",
            subject=f"sandbox_grant:{grant.id}",
        )
    return True


async def run(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    cfg = rt.config.sandbox
    now = rt.now()
    counts = {"reminded": 0, "escalated": 0, "expired": 0, "outcome_asked": 0, "ended": 0}
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
    async with rt.db.reader() as s:
        active = set((await s.scalars(select(Person.id).where(Person.active))).all())
    counts["closed"] = counts["errors"] = 0

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
        # Use the policy snapshotted on the request: later config edits don't move timers.
        snap = req.policy or {}
        expire_after = _td(snap.get("expire_after"), cfg.expire_after)
        escalate_after = _td(snap.get("escalate_after"), cfg.escalate_after)
        remind_after = _td(snap.get("reminder_after"), cfg.reminder_after)
        waited = now - as_utc(req.stage_started_at)
        if now - as_utc(req.created_at) >= expire_after:
            await step("expired", _expire(rt, req))
        elif waited >= escalate_after and req.escalated_at is None:
            await step("escalated", _escalate(rt, req))
        elif waited >= remind_after and req.reminded_at is None:
            await step("reminded", _remind(rt, req))
    for grant in asking:
        if as_utc(grant.ends_at) > now:
            await step("outcome_asked", _ask_outcome(rt, grant))
    for grant in ending:
        await step("ended", _end(rt, grant))
    counts.update(await sync_grants(rt))
    return counts


def _td(value: Any, default: timedelta) -> timedelta:
    try:
        return parse_duration(value) if value is not None else default
    except ValueError:
        return default


register(
    JobSpec(
        name="approvals",
        description="Sandbox approvals: reminders, escalation, expiry, outcome prompts, grant ends",
        func=run,
        due=cron_due(lambda rt: rt.config.schedules.approvals, lookback=timedelta(hours=2)),
        lease=timedelta(minutes=10),
    )
)
