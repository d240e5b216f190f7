"""The request state machine: create, decide, cancel, remind, escalate, expire.

Every transition is one conditional UPDATE (``… WHERE status = 'pending' AND stage = …``)
whose row count says whether this caller won; the grant, the audit row and the outgoing
messages are written in the same transaction. So a double click, a retried request, two
replicas or two approvers racing produce exactly one decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit, ledger
from bot.approvals import cards, policy
from bot.approvals.cards import RequesterFigures
from bot.approvals.policy import RequestInvalid
from bot.approvals.transition import Audit, pending_at, transition
from bot.config.types import parse_duration
from bot.directory import PersonView, person_by_id
from bot.money import fmt_usd, to_micros
from bot.outbox import enqueue, enqueue_update
from bot.reply import Header, Quote, Reply, Text, simple
from bot.runtime import Runtime
from bot.store.locks import xact_lock
from bot.store.tables import OutboxMessage, Person, SandboxGrant, SandboxRequest
from bot.store.types import row_id
from bot.timeutil import as_utc, month_at

__all__ = ["RequestInvalid", "cancel", "create", "decide", "reroute"]


@dataclass(frozen=True)
class Outcome:
    """What a handler tells the clicker, and the card to show in place of theirs."""

    message: Reply | None
    card: Reply | None = None
    ok: bool = True


def card_key(req_id: int, approver_id: int) -> str:
    return f"sandbox:{req_id}:card:{approver_id}"


def confirm_key(req_id: int) -> str:
    return f"sandbox:{req_id}:confirm"


async def figures(
    rt: Runtime, s: AsyncSession, requester: PersonView, period: str
) -> RequesterFigures:
    bal = await ledger.balance(rt, requester, within=s)  # sees this transaction's grant
    pool = to_micros(rt.config.sandbox.pool_usd)
    return RequesterFigures(
        spent=bal.spent,
        limit=bal.limit,
        agentic_share=bal.agentic_share,
        pool_left=pool - await policy.pool_used(s, period),
        pool_total=pool,
    )


def _expires(rt: Runtime, req: SandboxRequest, tz: str | None) -> str:
    # The policy snapshotted on the request decides, as it does for the expiry job.
    try:
        after = parse_duration((req.policy or {}).get("expire_after") or "")
    except ValueError:
        after = rt.config.sandbox.expire_after
    return cards.stamp(as_utc(req.created_at) + after, tz, rt.tz)


async def send_card(
    s: AsyncSession,
    rt: Runtime,
    req: SandboxRequest,
    requester: PersonView,
    approver: PersonView,
    note: str | None,
) -> None:
    fig = await figures(rt, s, requester, req.period)
    card = cards.approver_card(
        req, requester, fig, stage_note=note, expires=_expires(rt, req, approver.timezone)
    )
    await enqueue(
        s,
        rt,
        kind="approval_request",
        target_type="person",
        target_id=approver.id,
        reply=card,
        key=card_key(req.id, approver.id),
    )


async def create(
    rt: Runtime,
    requester: PersonView,
    *,
    amount: str,
    purpose: str,
    duration: str | None = None,
    expected_outcome: str | None = None,
    platform: str = "cli",
) -> SandboxRequest:
    """Validate, route and store a request; nothing is stored if any check fails."""
    cfg = rt.config.sandbox
    if not cfg.enabled:
        raise RequestInvalid("Sandbox budgets are turned off for your organization.")
    amount_micros = policy.parse_amount(amount, cfg)
    purpose_text = policy.check_purpose(purpose, cfg)
    days = policy.check_duration(duration, cfg)
    outcome_text = policy.check_outcome(expected_outcome)
    now = rt.now()
    month = month_at(now, rt.tz)
    period = month.key
    async with rt.db.session() as s:
        await xact_lock(s, f"sandbox-pool:{period}")
        if cfg.one_open_request:
            open_id = await s.scalar(
                select(SandboxRequest.id).where(
                    SandboxRequest.person_id == requester.id, SandboxRequest.status == "pending"
                )
            )
            if open_id:
                raise RequestInvalid(
                    f"You already have request #{open_id} waiting for a "
                    "decision. Cancel it first (`/tokens requests`), or wait."
                )
        left = to_micros(cfg.pool_usd) - await policy.pool_used(s, period)
        if amount_micros > left:
            raise RequestInvalid(
                f"The sandbox pool for {month.first:%B} has {fmt_usd(max(left, 0))} left (pending "
                "requests count). Ask for less, or try again next month."
            )
        plan = await policy.route(s, requester, amount_micros, cfg)
        req = SandboxRequest(
            person_id=requester.id,
            amount_micros=amount_micros,
            duration_days=days,
            purpose=purpose_text,
            expected_outcome=outcome_text,
            status="pending",
            stage=1,
            stages=plan.stages,
            current_approver_id=plan.stages[0],
            policy=policy.snapshot(cfg),
            period=period,
            created_at=now,
            stage_started_at=now,
            origin_platform=platform,
        )
        s.add(req)
        await s.flush()
        approver = await person_by_id(s, plan.stages[0])
        assert approver is not None
        note = "; ".join(plan.notes).capitalize() or None
        if len(plan.stages) > 1:
            note = (
                (note + ". ") if note else ""
            ) + "Over the threshold: a second approval follows yours."
        await send_card(s, rt, req, requester, approver, note)
        await enqueue(
            s,
            rt,
            kind="approval_confirm",
            target_type="person",
            target_id=requester.id,
            reply=cards.confirmation(req, approver),
            key=confirm_key(req.id),
        )
        await audit.record(
            s,
            at=now,
            action="sandbox.requested",
            actor=f"{platform}",
            actor_id=requester.id,
            subject=f"sandbox_request:{req.id}",
            detail={
                "amount_usd": fmt_usd(amount_micros),
                "stages": plan.stages,
                "duration_days": days,
            },
        )
    return req


async def update_cards(
    s: AsyncSession,
    rt: Runtime,
    req: SandboxRequest,
    requester: PersonView,
    *,
    status: str,
    who: str,
    reason: str | None = None,
    only: int | None = None,
) -> None:
    """Replace every approver's copy of the card (buttons gone, who decided and when)."""
    fig = await figures(rt, s, requester, req.period)
    keys = (
        await s.scalars(
            select(OutboxMessage.dedupe_key).where(
                OutboxMessage.dedupe_key.like(f"sandbox:{req.id}:card:%"),
                OutboxMessage.update_of_id.is_(None),
            )
        )
    ).all()
    approvers = {int(k.split("@")[0].rsplit(":", 1)[1]) for k in keys}
    for approver_id in approvers:
        if only is not None and approver_id != only:
            continue
        approver = await person_by_id(s, approver_id)
        when = cards.stamp(rt.now(), approver.timezone if approver else None, rt.tz)
        card = cards.decided_card(
            req, requester, fig, status=status, who=who, when=when, reason=reason
        )
        await enqueue_update(
            s,
            rt,
            original_key=card_key(req.id, approver_id),
            key=f"{card_key(req.id, approver_id)}:{status}:{req.stage}",
            reply=card,
        )


async def decided_card_for(rt: Runtime, req_id: int, viewer: PersonView) -> Reply | None:
    """The card as it stands now (shown to someone clicking a stale button)."""
    async with rt.db.reader() as s:
        req = await s.get(SandboxRequest, req_id)
        if req is None or req.status == "pending":
            return None
        requester = await person_by_id(s, req.person_id)
        decider = await person_by_id(s, req.decided_by_id) if req.decided_by_id else None
        if requester is None:
            return None
        fig = await figures(rt, s, requester, req.period)
        when = cards.stamp(req.decided_at or rt.now(), viewer.timezone, rt.tz)
        return cards.decided_card(
            req,
            requester,
            fig,
            status=req.status,
            who=decider.name if decider else "—",
            when=when,
            reason=req.deny_reason,
        )


async def decide(
    rt: Runtime,
    actor: PersonView,
    value: str,
    *,
    approve: bool,
    reason: str | None = None,
    platform: str = "cli",
) -> Outcome:
    """Approve or deny the stage named in ``value`` ('<request id>:<stage>')."""
    target = _parse_stage(value)
    if target is None:
        return Outcome(simple("That button is no longer valid."), ok=False)
    req_id, stage = target
    now = rt.now()
    async with rt.db.session() as s:
        req = await s.get(SandboxRequest, req_id)
        refusal = await _refusal(s, rt, req, actor, stage, platform=platform)
        if refusal is not None:
            return refusal
        assert req is not None  # _refusal refuses a missing request
        subject = f"sandbox_request:{req.id}"
        if not approve:
            reason_text = " ".join((reason or "").split())
            if len(reason_text) < 3:
                return Outcome(simple("Please give a short reason for the denial."), ok=False)
            reason = reason_text[: policy.MAX_OUTCOME]
        requester = await person_by_id(s, req.person_id)
    if requester is None:
        # The requester has left: close the request (its own transaction) instead.
        await close_orphan(rt, req_id)
        return Outcome(
            simple(
                f"Request #{req_id} was closed: the person who asked is no longer in the directory."
            ),
            ok=False,
        )
    # The decision itself is one conditional UPDATE, so this second transaction is safe.
    async with rt.db.session() as s:
        req = await s.get(SandboxRequest, req_id)
        assert req is not None
        stages: list[int] = list(req.stages)
        more = approve and stage < len(stages)
        values: dict[str, object]
        audit_as = None  # approving: the grant's own entry (below) needs the grant's id
        if more:
            values = dict(
                stage=stage + 1,
                current_approver_id=stages[stage],
                stage_started_at=now,
                reminded_at=None,
                escalated_at=None,
            )
            audit_as = Audit("sandbox.stage_approved", platform, actor.id, {"stage": stage})
        else:
            values = dict(
                status="approved" if approve else "denied",
                decided_at=now,
                decided_by_id=actor.id,
                deny_reason=None if approve else reason,
            )
            if not approve:
                audit_as = Audit("sandbox.denied", platform, actor.id, {"reason": reason})
        won = await transition(
            s,
            rt,
            SandboxRequest,
            req.id,
            when=(
                SandboxRequest.status == "pending",
                SandboxRequest.stage == stage,
                SandboxRequest.current_approver_id == actor.id,
            ),
            to=values,
            audit_as=audit_as,
        )
        if not won:
            # Lost a race to another click or replica: show the card as it now stands.
            return Outcome(
                simple(f"Request #{req.id} was already handled."),
                await decided_card_for(rt, req.id, actor),
                ok=False,
            )
        await s.refresh(req)
        when = cards.stamp(now, actor.timezone, rt.tz)
        if more:
            nxt = await person_by_id(s, stages[stage])
            assert nxt is not None
            await update_cards(
                s, rt, req, requester, status="forwarded", who=actor.name, only=actor.id
            )
            await send_card(
                s, rt, req, requester, nxt, f"Second approval: {actor.name} approved stage 1."
            )
            await enqueue_update(
                s,
                rt,
                original_key=confirm_key(req.id),
                key=f"{confirm_key(req.id)}:stage{stage + 1}",
                reply=cards.confirmation(req, nxt),
            )
            fig = await figures(rt, s, requester, req.period)
            card = cards.decided_card(
                req, requester, fig, status="forwarded", who=actor.name, when=when
            )
            return Outcome(
                simple(
                    f"Approved. Request #{req.id} now goes to {nxt.name} for the second approval."
                ),
                card,
            )
        status = "approved" if approve else "denied"
        if approve:
            grant = SandboxGrant(
                request_id=req.id,
                person_id=req.person_id,
                amount_micros=req.amount_micros,
                period=req.period,
                starts_at=now,
                ends_at=now + timedelta(days=req.duration_days),
                status="active",
                created_at=now,
            )
            s.add(grant)
            await s.flush()
            ends = cards.stamp(grant.ends_at, requester.timezone, rt.tz)
            line = (
                f"✅ **Approved** by {actor.name}: {fmt_usd(req.amount_micros)} is yours "
                f"to experiment with until {ends}."
            )
            note = Reply(
                text=f"Your sandbox request #{req.id} was approved",
                blocks=[
                    Header(text=f"Sandbox request #{req.id} approved"),
                    Text(
                        text=line + " It's added to your limit in `/tokens`; before it ends "
                        "I'll ask what you learned."
                    ),
                ],
            )
            await audit.record(
                s,
                at=now,
                action="sandbox.granted",
                actor=platform,
                actor_id=actor.id,
                subject=subject,
                detail={
                    "grant_id": grant.id,
                    "amount_usd": fmt_usd(req.amount_micros),
                    "ends_at": grant.ends_at.isoformat(),
                },
            )
        else:
            line = f"❌ **Denied** by {actor.name}."
            note = Reply(
                text=f"Your sandbox request #{req.id} was denied",
                blocks=[
                    Header(text=f"Sandbox request #{req.id} denied"),
                    Text(text=line),
                    Quote(text=reason or "", author="Reason"),
                ],
            )
        await update_cards(s, rt, req, requester, status=status, who=actor.name, reason=reason)
        await enqueue_update(
            s,
            rt,
            original_key=confirm_key(req.id),
            key=f"{confirm_key(req.id)}:{status}",
            reply=cards.confirmation(req, None, status_line=line, reason=reason),
        )
        await enqueue(
            s,
            rt,
            kind="approval_result",
            target_type="person",
            target_id=req.person_id,
            reply=note,
            key=f"sandbox:{req.id}:{status}",
        )
        fig = await figures(rt, s, requester, req.period)
        card = cards.decided_card(
            req, requester, fig, status=status, who=actor.name, when=when, reason=reason
        )
    return Outcome(simple(f"{status.capitalize()}: request #{req.id} from {requester.name}."), card)


async def cancel(rt: Runtime, actor: PersonView, value: str, *, platform: str = "cli") -> Outcome:
    request_id = row_id(value)
    if request_id is None:
        return Outcome(simple("That button is no longer valid."), ok=False)
    now = rt.now()
    async with rt.db.session() as s:
        req = await s.get(SandboxRequest, request_id)
        if req is None or req.person_id != actor.id:
            if req is not None:
                await audit.record(
                    s,
                    at=now,
                    action="sandbox.unauthorized_cancel",
                    actor=platform,
                    actor_id=actor.id,
                    subject=f"sandbox_request:{req.id}",
                )
            return Outcome(simple("Only the person who asked can cancel a request."), ok=False)
        cancelled = await transition(
            s,
            rt,
            SandboxRequest,
            req.id,
            when=(SandboxRequest.status == "pending",),
            to=dict(status="cancelled", decided_at=now, decided_by_id=actor.id),
            audit_as=Audit("sandbox.cancelled", platform, actor.id),
        )
        if not cancelled:
            return Outcome(simple(f"Request #{req.id} was already {req.status}."), ok=False)
        await s.refresh(req)
        await update_cards(s, rt, req, actor, status="cancelled", who=actor.name)
        line = "↩ **Cancelled.** You can ask again any time."
        reply = cards.confirmation(req, None, status_line=line)
        await enqueue_update(
            s,
            rt,
            original_key=confirm_key(req.id),
            key=f"{confirm_key(req.id)}:cancelled",
            reply=reply,
        )
    return Outcome(simple(f"Request #{req.id} is cancelled."), reply)


async def record_outcome(
    rt: Runtime, actor: PersonView, grant_id: str, text: str, *, platform: str = "cli"
) -> Outcome:
    outcome = " ".join((text or "").split())
    if len(outcome) < 3:
        return Outcome(simple("Write a line about what you learned."), ok=False)
    grant_key = row_id(grant_id)
    if grant_key is None:
        return Outcome(simple("That button is no longer valid."), ok=False)
    now = rt.now()
    async with rt.db.session() as s:
        grant = await s.get(SandboxGrant, grant_key)
        if grant is None or grant.person_id != actor.id:
            return Outcome(simple("That grant isn't yours."), ok=False)
        grant.outcome = outcome[: policy.MAX_OUTCOME]
        grant.outcome_at = now
        await audit.record(
            s,
            at=now,
            action="sandbox.outcome",
            actor=platform,
            actor_id=actor.id,
            subject=f"sandbox_grant:{grant.id}",
        )
    return Outcome(
        simple("Thanks — your outcome will appear in your team's weekly digest."),
        simple(f"Outcome shared: “{outcome[:200]}”"),
    )


async def may_decide(
    rt: Runtime, actor: PersonView, value: str, *, platform: str = "cli"
) -> Outcome | None:
    """None if ``actor`` may decide the stage in ``value`` now; else why not (audited)."""
    target = _parse_stage(value)
    if target is None:
        return Outcome(simple("That button is no longer valid."), ok=False)
    async with rt.db.session() as s:
        req = await s.get(SandboxRequest, target[0])
        return await _refusal(s, rt, req, actor, target[1], platform=platform)


def _parse_stage(value: str) -> tuple[int, int] | None:
    """A decision button's value: '<request id>:<stage>'."""
    req_part, _, stage_part = value.partition(":")
    request_id, stage = row_id(req_part), row_id(stage_part)
    if request_id is None or stage is None:
        return None
    return request_id, stage


async def _refusal(
    s: AsyncSession,
    rt: Runtime,
    req: SandboxRequest | None,
    actor: PersonView,
    stage: int,
    *,
    platform: str,
) -> Outcome | None:
    """Why ``actor`` may not decide ``stage`` of ``req`` now, audited; None if they may."""
    if req is None:
        return Outcome(simple("That request doesn't exist any more."), ok=False)
    subject = f"sandbox_request:{req.id}"
    if req.person_id == actor.id:
        await audit.record(
            s,
            at=rt.now(),
            action="sandbox.self_approval_refused",
            actor=platform,
            actor_id=actor.id,
            subject=subject,
        )
        return Outcome(simple("You can't decide your own request."), ok=False)
    if req.status != "pending" or req.stage != stage:
        # A double click, a retry, or someone else was first: say so, change nothing.
        card = await decided_card_for(rt, req.id, actor) if req.status != "pending" else None
        return Outcome(simple(f"Request #{req.id} was already handled."), card, ok=False)
    if req.current_approver_id != actor.id:
        await audit.record(
            s,
            at=rt.now(),
            action="sandbox.unauthorized_decision",
            actor=platform,
            actor_id=actor.id,
            subject=subject,
        )
        return Outcome(simple("This request isn't yours to decide."), ok=False)
    return None


async def close_orphan(rt: Runtime, req_id: int) -> bool:
    """Close a pending request whose requester left the directory (inactive): nobody can
    use the grant, and it must not stall the timers or the pool."""
    now = rt.now()
    async with rt.db.session() as s:
        closed = await transition(
            s,
            rt,
            SandboxRequest,
            req_id,
            when=(SandboxRequest.status == "pending",),
            to=dict(status="cancelled", decided_at=now),
            audit_as=Audit("sandbox.closed_requester_left", "scheduler"),
        )
        if not closed:
            return False
        req = await s.get(SandboxRequest, req_id)
        person = await s.get(Person, req.person_id) if req else None
        if req is None or person is None:
            return True
        await s.refresh(req)
        gone = PersonView.of(person)
        await update_cards(s, rt, req, gone, status="closed", who=gone.name)
    return True


async def reroute(
    rt: Runtime,
    req: SandboxRequest,
    to: int,
    *,
    status: str,
    note: str,
    actor: str = "scheduler",
    actor_id: int | None = None,
    escalation: bool = False,
) -> bool:
    """Hand the pending stage of ``req`` (as last read) from its approver to person ``to``.

    One call, for escalation after a silence and for an approver who leaves: a
    conditional transition (still pending at that stage with that approver; an
    escalation happens once), the old approver's card updated in place (``status``:
    "escalated", "reassigned" …, by whom it went to), a card to the new approver with
    ``note`` (``{previous}`` is replaced by the old approver's name), the requester's
    confirmation updated, audited as ``sandbox.<status>`` from/to. False if it lost.
    """
    now = rt.now()
    old = req.current_approver_id
    values: dict[str, object] = dict(current_approver_id=to, stage_started_at=now,
                                     reminded_at=None)
    when = list(pending_at(req))
    if escalation:
        values["escalated_at"] = now
        when.append(SandboxRequest.escalated_at.is_(None))
    async with rt.db.session() as s:
        moved = await transition(
            s, rt, SandboxRequest, req.id, when=when, to=values,
            audit_as=Audit(f"sandbox.{status}", actor, actor_id, {"from": old, "to": to}),
        )
        if not moved:
            return False
        fresh = await s.get(SandboxRequest, req.id)
        assert fresh is not None
        await s.refresh(fresh)
        requester = await person_by_id(s, req.person_id)
        new = await person_by_id(s, to)
        previous = await person_by_id(s, old or 0)
        assert requester is not None and new is not None
        await update_cards(s, rt, fresh, requester, status=status, who=new.name, only=old)
        who = previous.name if previous else "the approver"
        await send_card(s, rt, fresh, requester, new, note.format(previous=who))
        await enqueue_update(
            s,
            rt,
            original_key=confirm_key(req.id),
            key=f"{confirm_key(req.id)}:{status}:{to}",
            reply=cards.confirmation(fresh, new),
        )
    return True
