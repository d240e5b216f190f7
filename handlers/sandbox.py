"""`/tokens sandbox …`, `/tokens requests`, and the Approve / Deny / Cancel buttons."""

from __future__ import annotations

from sqlalchemy import select

from bot.approvals import flow
from bot.approvals.cards import decision_buttons
from bot.approvals.policy import RequestInvalid
from bot.directory import people_by_ids
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


async def approve(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    return _result(
        await flow.decide(ctx.rt, ctx.person, value, approve=True, platform=ctx.actor.platform)
    )


async def deny(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    refusal = await flow.may_decide(ctx.rt, ctx.person, value, platform=ctx.actor.platform)
    if refusal is not None:
        return _result(refusal)
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
    return _result(
        await flow.decide(
            ctx.rt, ctx.person, value, approve=False, reason=reason, platform=ctx.actor.platform
        )
    )


async def cancel(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    return _result(await flow.cancel(ctx.rt, ctx.person, value, platform=ctx.actor.platform))


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
    me = ctx.person
    async with ctx.rt.db.reader() as s:
        # Two lists, each with its own limit: many requests of my own must not push the
        # ones waiting on me out of sight.
        own = (await s.scalars(select(SandboxRequest).where(SandboxRequest.person_id == me.id)
                               .order_by(SandboxRequest.id.desc()).limit(8))).all()
        waiting_rows = (await s.scalars(
            select(SandboxRequest)
            .where(SandboxRequest.current_approver_id == me.id,
                   SandboxRequest.status == "pending", SandboxRequest.person_id != me.id)
            .order_by(SandboxRequest.id).limit(10))).all()
        rows = [*own, *waiting_rows]
        names = await people_by_ids(
            s, {r.person_id for r in rows} | {r.current_approver_id or 0 for r in rows}
        )
    mine, waiting = own, waiting_rows
    blocks: list[Block] = [Header(text="Sandbox requests")]
    if waiting:
        blocks.append(Text(text=f"**Waiting on you ({len(waiting)})**"))
        for r in waiting[:10]:
            who = names[r.person_id].name if r.person_id in names else "someone"
            blocks.append(
                Text(
                    text=f"#{r.id} · **{literal(who)}** · {fmt_usd(r.amount_micros)} "
                    f"for {r.duration_days} days — {literal(r.purpose[:150])}"
                )
            )
            blocks.append(decision_buttons(r))
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
                            value=str(r.id),
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
