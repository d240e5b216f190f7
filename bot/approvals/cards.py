"""What approvers and requesters see: request cards, decided cards, notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.directory import PersonView
from bot.money import fmt_usd, pct
from bot.reply import (
    Actions,
    Block,
    Button,
    Context,
    Fact,
    Facts,
    Header,
    Quote,
    Reply,
    Text,
    literal,
)
from bot.store.tables import SandboxRequest
from bot.timeutil import as_utc

STATUS_LINES = {
    "approved": "✅ **Approved** by {who} · {when}",
    "denied": "❌ **Denied** by {who} · {when}",
    "expired": "⏱ **Expired** without a decision · {when}",
    "cancelled": "↩ **Cancelled** by the requester · {when}",
    "closed": "🚫 **Closed**: {who} is no longer in the directory · {when}",
    "escalated": "➡ **Escalated** to {who} · {when}",
    "reassigned": "➡ **Re-routed** to {who} · {when}",
    "forwarded": "✅ **Approved** by {who} · {when} — now waiting for the second approval",
}


@dataclass(frozen=True)
class RequesterFigures:
    spent: int
    limit: int
    agentic_share: int
    pool_left: int
    pool_total: int


def stamp(at: datetime, tz: str | None, org_tz: str) -> str:
    return as_utc(at).astimezone(ZoneInfo(tz or org_tz)).strftime("%b %-d %H:%M")


def _request_blocks(
    req: SandboxRequest, requester: PersonView, figures: RequesterFigures, *, stage_note: str | None
) -> list[Block]:
    blocks: list[Block] = [
        Header(text=f"Sandbox budget request #{req.id}"),
        Text(
            text=f"**{literal(requester.name)}** asks for **{fmt_usd(req.amount_micros)}** "
            f"for {req.duration_days} days."
        ),
    ]
    if stage_note:
        blocks.append(Context(text=stage_note))
    blocks.append(Quote(text=req.purpose, author="Purpose"))
    if req.expected_outcome:
        blocks.append(Quote(text=req.expected_outcome, author="Expected outcome"))
    blocks.append(
        Facts(
            items=[
                Fact(
                    label="Their month so far",
                    value=f"{fmt_usd(figures.spent)} of {fmt_usd(figures.limit)} "
                    f"({pct(figures.spent, figures.limit)}%) · agentic {figures.agentic_share}%",
                ),
                Fact(
                    label="Sandbox pool left",
                    value=f"{fmt_usd(figures.pool_left)} of {fmt_usd(figures.pool_total)}",
                ),
            ]
        )
    )
    return blocks


def decision_buttons(req: SandboxRequest) -> Actions:
    """Approve / Deny for the request's current stage (a stale stage's buttons do nothing)."""
    value = f"{req.id}:{req.stage}"
    return Actions(
        buttons=[
            Button(label="Approve", action="sandbox.approve", value=value, style="primary"),
            Button(label="Deny", action="sandbox.deny", value=value, style="danger"),
        ]
    )


def approver_card(
    req: SandboxRequest,
    requester: PersonView,
    figures: RequesterFigures,
    *,
    stage_note: str | None,
    expires: str,
) -> Reply:
    blocks = _request_blocks(req, requester, figures, stage_note=stage_note)
    blocks.append(decision_buttons(req))
    blocks.append(
        Context(
            text=f"You're the approver for this stage. If nobody decides, it expires on {expires}."
        )
    )
    return Reply(
        text=f"{requester.name} asks for a {fmt_usd(req.amount_micros)} sandbox budget",
        blocks=blocks,
        visibility="public",
    )


def decided_card(
    req: SandboxRequest,
    requester: PersonView,
    figures: RequesterFigures,
    *,
    status: str,
    who: str,
    when: str,
    reason: str | None = None,
) -> Reply:
    blocks = _request_blocks(req, requester, figures, stage_note=None)
    blocks.append(Text(text=STATUS_LINES[status].format(who=who, when=when)))
    if reason:
        blocks.append(Quote(text=reason, author="Reason"))
    return Reply(text=f"Sandbox request #{req.id}: {status}", blocks=blocks, visibility="public")


def confirmation(
    req: SandboxRequest,
    approver: PersonView | None,
    *,
    status_line: str | None = None,
    reason: str | None = None,
) -> Reply:
    """The requester's own copy; Cancel while pending, the outcome once decided."""
    blocks: list[Block] = [
        Header(text=f"Your sandbox request #{req.id}"),
        Text(text=f"**{fmt_usd(req.amount_micros)}** for {req.duration_days} days."),
        Quote(text=req.purpose, author="Purpose"),
    ]
    if status_line:
        blocks.append(Text(text=status_line))
        if reason:
            blocks.append(Quote(text=reason, author="Reason"))
    else:
        who = approver.name if approver else "the approver"
        blocks.append(Text(text=f"Waiting for **{who}**. I'll tell you as soon as they decide."))
        blocks.append(
            Actions(
                buttons=[
                    Button(
                        label="Cancel request",
                        action="sandbox.cancel",
                        value=str(req.id),
                        style="danger",
                        confirm="Cancel this sandbox request?",
                    )
                ]
            )
        )
    return Reply(text=f"Your sandbox request #{req.id}", blocks=blocks)


def outcome_prompt(grant_id: int, amount: int, ends: str) -> Reply:
    return Reply(
        text="What did you learn from your sandbox experiment?",
        blocks=[
            Header(text="How did the experiment go?"),
            Text(
                text=f"Your {fmt_usd(amount)} sandbox grant ends on {ends}. In one line: what did "
                "you learn? Your team's weekly digest shows outcomes (it's how sandbox "
                "budgets keep their case)."
            ),
            Actions(
                buttons=[
                    Button(
                        label="Share the outcome",
                        action="grant.outcome_form",
                        value=str(grant_id),
                        style="primary",
                    )
                ]
            ),
        ],
    )
