"""`/tokens sandbox …`, `/tokens requests`, and the Approve / Deny / Cancel buttons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import and_, or_, select

from bot.approvals import flow
from bot.approvals.cards import decision_buttons
from bot.approvals.policy import RequestInvalid
from bot.directory import PersonView, people_by_ids
from bot.money import fmt_usd, to_micros
from bot.reply import (
    ActionResult,
    Actions,
    Block,
    Button,
    Context,
    Form,
    FormField,
    Header,
    Reply,
    Text,
    literal,
    simple,
)
from bot.store.tables import SandboxRequest
from handlers.context import Ctx


def request_form(ctx: Ctx) -> Form:
    cfg = ctx.rt.config.sandbox
    return Form(
        action="sandbox.submit",
        title="Sandbox budget",
        submit_label="Send request",
        intro=f"A budget for an experiment, exempt from ROI scrutiny. Up to "
        f"{fmt_usd(to_micros(cfg.per_request_max_usd))} per request; your "
        "manager decides.",
        fields=[
            FormField(name="amount", label="Amount (USD)", type="number", placeholder="300"),
            FormField(
                name="duration",
                label="Duration (days)",
                type="number",
                required=False,
                initial=str(cfg.default_duration_days),
                hint=f"1 to {cfg.max_duration_days} days",
            ),
            FormField(
                name="purpose",
                label="What will you try?",
                type="textarea",
                placeholder="Build an agent that triages bug reports",
                max_length=500,
            ),
            FormField(
                name="expected_outcome",
                label="What would success look like?",
                type="textarea",
                required=False,
                max_length=500,
            ),
        ],
    )


def _sent(req: SandboxRequest, approver_name: str) -> Reply:
    return Reply(
        text=f"Request #{req.id} sent to {approver_name}",
        blocks=[
            Text(
                text=f"Request **#{req.id}** for **{fmt_usd(req.amount_micros)}** "
                f"({req.duration_days} days) is with **{approver_name}**. I'll message you "
                "when they decide; you can cancel it from that message or "
                "`/tokens requests`."
            ),
        ],
    )


async def _create(ctx: Ctx, **fields: str | None) -> SandboxRequest:
    return await flow.create(
        ctx.rt,
        ctx.person,
        amount=fields.get("amount") or "",
        purpose=fields.get("purpose") or "",
        duration=fields.get("duration"),
        expected_outcome=fields.get("expected_outcome"),
        platform=ctx.actor.platform,
    )


async def _approver_name(ctx: Ctx, req: SandboxRequest) -> str:
    async with ctx.rt.db.reader() as s:
        people = await people_by_ids(s, {req.current_approver_id or 0})
    approver = people.get(req.current_approver_id or 0)
    return approver.name if approver else "your approver"


async def request_command(ctx: Ctx, args: list[str]) -> Reply | Form:
    if not args:
        return request_form(ctx)
    try:
        req = await _create(ctx, amount=args[0], purpose=" ".join(args[1:]))
    except RequestInvalid as exc:
        return simple(f"{exc} (Or use `/tokens sandbox` on its own for a form.)")
    return _sent(req, await _approver_name(ctx, req))


async def open_form(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    return ActionResult(form=request_form(ctx))


async def submit(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    try:
        req = await _create(ctx, **fields)
    except RequestInvalid as exc:
        return ActionResult(errors={exc.field: str(exc)})
    return ActionResult(reply=_sent(req, await _approver_name(ctx, req)))


def _result(outcome: flow.Outcome) -> ActionResult:
    # A fresh card replaces the clicked one; a refusal goes privately to the clicker.
    return ActionResult(
        update=outcome.card, reply=None if outcome.ok and outcome.card else outcome.message
    )


# Buttons in the `/tokens requests` list carry this after their value, with the ids the
# list shows: a decision made there updates the list (entries acted on show what happened,
# the others keep their buttons) instead of replacing it with one request's card.
FROM_LIST = "@list"


def _origin(value: str) -> tuple[str, frozenset[int] | None]:
    """(the button's own value, the ids the requests list showed, or None if the button
    was not in the list)."""
    own, marker, shown = value.partition(FROM_LIST)
    if not marker:
        return value, None
    return own, frozenset(int(i) for i in shown.lstrip(":").split(",") if i.isdigit())


def _request_id(value: str) -> int | None:
    head = value.partition(":")[0]
    return int(head) if head.isdigit() else None


async def _listed(
    ctx: Ctx, value: str, shown: frozenset[int], outcome: flow.Outcome
) -> ActionResult:
    """The list again: what it showed stays where it was, with its state now."""
    req_id = _request_id(value)
    keep = shown | ({req_id} if req_id is not None else set())
    return ActionResult(
        update=await requests_reply(ctx, keep=keep), reply=None if outcome.ok else outcome.message
    )


async def _decided(ctx: Ctx, value: str, outcome_of: Callable[[str], Awaitable[flow.Outcome]]
                   ) -> ActionResult:
    own, shown = _origin(value)
    outcome = await outcome_of(own)
    return _result(outcome) if shown is None else await _listed(ctx, own, shown, outcome)


async def approve(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    return await _decided(
        ctx,
        value,
        lambda v: flow.decide(ctx.rt, ctx.person, v, approve=True, platform=ctx.actor.platform),
    )


async def deny(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    own, shown = _origin(value)
    refusal = await flow.may_decide(ctx.rt, ctx.person, own, platform=ctx.actor.platform)
    if refusal is not None:
        return _result(refusal) if shown is None else await _listed(ctx, own, shown, refusal)
    return ActionResult(
        form=Form(
            action="sandbox.deny_submit",
            title="Deny request",
            submit_label="Deny",
            value=value,
            intro="The requester will see your reason.",
            fields=[
                FormField(
                    name="reason",
                    label="Reason",
                    type="textarea",
                    max_length=500,
                    placeholder="e.g. let's first finish the pilot in Q1",
                )
            ],
        )
    )


async def deny_submit(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    reason = (fields.get("reason") or "").strip()
    if len(reason) < 3:
        return ActionResult(errors={"reason": "Give a short reason (the requester sees it)."})
    return await _decided(
        ctx,
        value,
        lambda v: flow.decide(
            ctx.rt, ctx.person, v, approve=False, reason=reason, platform=ctx.actor.platform
        ),
    )


async def cancel(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    return await _decided(
        ctx, value, lambda v: flow.cancel(ctx.rt, ctx.person, v, platform=ctx.actor.platform)
    )


async def outcome_form(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    return ActionResult(
        form=Form(
            action="grant.outcome",
            title="Experiment outcome",
            submit_label="Share",
            value=value,
            fields=[
                FormField(
                    name="outcome",
                    label="What did you learn?",
                    type="textarea",
                    max_length=500,
                    placeholder="One line is plenty",
                )
            ],
        )
    )


async def outcome(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    result = await flow.record_outcome(
        ctx.rt, ctx.person, value, fields.get("outcome", ""), platform=ctx.actor.platform
    )
    if not result.ok:
        return ActionResult(errors={"outcome": result.message.text if result.message else ""})
    return ActionResult(update=result.card, reply=result.message)


async def list_requests(ctx: Ctx, args: list[str]) -> Reply | Form:
    return await requests_reply(ctx)


def _listed_buttons(r: SandboxRequest, marker: str) -> Actions:
    """Approve / Deny as on the approver's card, marked as clicked in the list."""
    buttons = decision_buttons(r).buttons
    return Actions(buttons=[b.model_copy(update={"value": b.value + marker}) for b in buttons])


def _decided_state(r: SandboxRequest, me: int, names: dict[int, PersonView]) -> str:
    """What became of a request just acted on from the list, for its line there."""
    decider = names.get(r.decided_by_id or 0)
    by = "you" if r.decided_by_id == me else decider.name if decider else "someone"
    if r.status == "pending":  # with someone else now: a later stage, or escalated
        nxt = names.get(r.current_approver_id or 0)
        stages = list(r.stages or [])
        with_whom = f"now with {nxt.name if nxt else 'another approver'}"
        done = me in stages and stages.index(me) + 1 < r.stage
        return f"✅ approved by you — {with_whom}" if done else with_whom
    return {"approved": f"✅ approved by {by}", "denied": f"❌ denied by {by}"}.get(
        r.status, r.status
    )


async def requests_reply(ctx: Ctx, *, keep: frozenset[int] = frozenset()) -> Reply:
    """The requests list; ``keep``: requests just acted on here, shown with their new state
    where they were (their buttons gone) while the others keep theirs."""
    me = ctx.person
    async with ctx.rt.db.reader() as s:
        # Two lists, each with its own limit: many requests of my own must not push the
        # ones waiting on me out of sight.
        own = (await s.scalars(select(SandboxRequest).where(SandboxRequest.person_id == me.id)
                               .order_by(SandboxRequest.id.desc()).limit(8))).all()
        waiting_now = and_(SandboxRequest.current_approver_id == me.id,
                           SandboxRequest.status == "pending")
        waiting_rows = (await s.scalars(
            select(SandboxRequest)
            .where(or_(waiting_now, SandboxRequest.id.in_(keep)), SandboxRequest.person_id != me.id)
            .order_by(SandboxRequest.id).limit(10))).all()
        # Kept entries are ones this person approves (or approved): a crafted button value
        # must not show anyone else's request.
        waiting_rows = [
            r for r in waiting_rows
            if me.id in (r.current_approver_id, r.decided_by_id) or me.id in (r.stages or [])
        ]
        rows = [*own, *waiting_rows]
        names = await people_by_ids(
            s, {r.person_id for r in rows} | {r.current_approver_id or 0 for r in rows}
            | {r.decided_by_id or 0 for r in rows}
        )
    mine, waiting = own, waiting_rows
    open_now = [r for r in waiting if r.status == "pending" and r.current_approver_id == me.id]
    marker = f"{FROM_LIST}:{','.join(str(r.id) for r in waiting)}"
    blocks: list[Block] = [Header(text="Sandbox requests")]
    if waiting:
        blocks.append(
            Text(text=f"**Waiting on you ({len(open_now)})**" if open_now else "**Decided**")
        )
        for r in waiting[:10]:
            who = names[r.person_id].name if r.person_id in names else "someone"
            line = (f"#{r.id} · **{literal(who)}** · {fmt_usd(r.amount_micros)} "
                    f"for {r.duration_days} days — {literal(r.purpose[:150])}")
            if r in open_now:
                blocks.append(Text(text=line))
                blocks.append(_listed_buttons(r, marker))
            else:
                blocks.append(Text(text=f"{line}\n**{_decided_state(r, me.id, names)}**"))
    blocks.append(
        Text(
            text="**Yours**"
            if mine
            else "You have no sandbox requests yet. `/tokens sandbox` starts one."
        )
    )
    for r in mine:
        approver = names.get(r.current_approver_id or 0)
        state = f"waiting for {approver.name}" if r.status == "pending" and approver else r.status
        blocks.append(
            Text(
                text=f"#{r.id} · {fmt_usd(r.amount_micros)} · {literal(state)} — "
                f"{literal(r.purpose[:150])}"
            )
        )
        if r.status == "pending":
            blocks.append(
                Actions(
                    buttons=[
                        Button(
                            label="Cancel",
                            action="sandbox.cancel",
                            value=f"{r.id}{marker}",
                            style="danger",
                            confirm="Cancel this request?",
                        )
                    ]
                )
            )
    blocks.append(Context(text="Decided requests stay in the audit log."))
    return Reply(text="Sandbox requests", blocks=blocks)


ACTIONS = {
    "sandbox.open_form": open_form,
    "sandbox.submit": submit,
    "sandbox.approve": approve,
    "sandbox.deny": deny,
    "sandbox.deny_submit": deny_submit,
    "sandbox.cancel": cancel,
    "grant.outcome_form": outcome_form,
    "grant.outcome": outcome,
}
