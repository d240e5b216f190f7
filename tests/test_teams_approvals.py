"""Sandbox requests and approvals through the real Teams endpoint (/api/messages), with
the approver's card delivered by the outbox through stored conversation references."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.store.tables import AuditEntry, OutboxMessage, SandboxGrant, SandboxRequest
from tests.helpers.teams import TeamsHarness, buttons, card_text, teams_harness

TOMAS = "tomas.novak@acme.example"
PRIYA = "priya.raman@acme.example"  # Tomás's manager
AISHA = "aisha.bello@acme.example"
PURPOSE = "Build an agent that triages bug reports"


@pytest.fixture
async def teams(make_runtime: Callable[..., Any]) -> AsyncIterator[TeamsHarness]:
    async with teams_harness(make_runtime) as harness:
        yield harness


async def count(rt: Any, model: Any, *where: Any) -> int:
    async with rt.db.reader() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def request_and_deliver(h: TeamsHarness, text: str = f"tokens sandbox 300 {PURPOSE}"
                              ) -> Any:
    """Priya has installed the app; Tomás asks; the outbox delivers her card."""
    await h.client.post(h.client.install_personal(h.user(PRIYA), h.fake))
    answer = await h.say(TOMAS, text)
    assert answer.status == 201
    said = card_text(h.dm(TOMAS)[-1].card)
    assert "#1" in said and "Priya Raman" in said
    stats = await h.deliver()
    assert stats.failed == 0 and stats.unreachable == 0
    return next(m for m in h.dm(PRIYA) if "Sandbox budget request #1" in card_text(m.card))


async def test_request_approve_in_place_and_requester_told(teams: TeamsHarness) -> None:
    h = teams
    card = await request_and_deliver(h)
    assert set(buttons(card.card)) == {"Approve", "Deny"}
    approve = buttons(card.card)["Approve"]
    assert approve["verb"] == "sandbox.approve" and approve["fallback"]["type"] == "Action.Submit"
    assert PURPOSE in card_text(card.card) and "Sandbox pool left" in card_text(card.card)

    answer = await h.click(PRIYA, card, "Approve")
    assert answer.status == 200
    assert answer.body["statusCode"] == 200
    assert answer.body["type"] == "application/vnd.microsoft.card.adaptive"
    decided = answer.body["value"]
    assert buttons(decided) == {}
    # Who decided and when (10:00 in New York for the test clock's 15:00 UTC).
    assert "Approved by Priya Raman · Nov 18 10:00" in card_text(decided)

    await h.deliver()
    note = h.dm(TOMAS)[-1]
    assert "approved" in card_text(note.card).lower()
    confirmation = next(m for m in h.dm(TOMAS) if "Your sandbox request #1" in card_text(m.card))
    assert confirmation.edits == 1 and buttons(confirmation.card) == {}
    assert "Approved" in card_text(confirmation.card)
    # The outbox also replaced Priya's original card (same activity id, PUT).
    assert card.edits == 1 and buttons(card.card) == {}
    async with h.rt.db.reader() as s:
        grant = await s.scalar(select(SandboxGrant))
    assert grant is not None and grant.amount_micros == 300_000_000


async def test_concurrent_execute_invokes_make_one_decision(teams: TeamsHarness) -> None:
    h = teams
    card = await request_and_deliver(h)
    user = h.user(PRIYA)
    action = buttons(card.card)["Approve"]
    clicks = [h.client.execute(user, action, h.client.personal(user, h.fake), card.id)
              for _ in range(4)]
    answers = await asyncio.gather(*(h.client.post(c) for c in clicks))
    assert all(a.status == 200 for a in answers)
    cards = [a.body["value"] for a in answers
             if a.body["type"] == "application/vnd.microsoft.card.adaptive"]
    toasts = [a.body["value"] for a in answers
              if a.body["type"] == "application/vnd.microsoft.activity.message"]
    # The winner's card is replaced in place. A loser that lost inside the same instant
    # (the conditional UPDATE) is told so; one that came after also sees the decided card.
    assert len(cards) + len(toasts) == 4 and cards
    assert all(buttons(c) == {} and "Approved by Priya Raman" in card_text(c) for c in cards)
    assert all("already handled" in t for t in toasts)
    assert await count(h.rt, SandboxGrant) == 1
    async with h.rt.db.reader() as s:
        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert actions.count("sandbox.granted") == 1
    await h.deliver()
    assert await count(h.rt, OutboxMessage, OutboxMessage.kind == "approval_result") == 1
    approved = [m for m in h.dm(TOMAS) if "was approved" in (m.activity.get("summary") or "")]
    assert len(approved) == 1
    # The losers were told privately, in Priya's chat, that it was already handled, and
    # the outbox replaced the card they clicked (buttons gone) for everyone.
    assert sum("already handled" in card_text(m.card) for m in h.dm(PRIYA)) == 3
    assert buttons(card.card) == {} and "Approved by Priya Raman" in card_text(card.card)


async def test_retried_invoke_delivery_is_a_no_op(teams: TeamsHarness) -> None:
    h = teams
    card = await request_and_deliver(h)
    user = h.user(PRIYA)
    click = h.client.execute(user, buttons(card.card)["Approve"],
                             h.client.personal(user, h.fake), card.id)
    first, again = await h.client.post(click), await h.client.post(click)
    assert first.body["type"] == "application/vnd.microsoft.card.adaptive"
    assert again.body["type"] == "application/vnd.microsoft.activity.message"
    assert await count(h.rt, SandboxGrant) == 1


async def test_deny_asks_a_reason_in_the_card_and_shows_errors(teams: TeamsHarness) -> None:
    h = teams
    card = await request_and_deliver(h)
    opened = await h.click(PRIYA, card, "Deny")
    form = opened.body["value"]
    assert "Deny request" in card_text(form)
    inputs = [n for n in _walk(form) if n.get("type", "").startswith("Input.")]
    assert [i["id"] for i in inputs] == ["input.reason"]
    card.activity["attachments"][0]["content"] = form  # Teams shows the form in place
    # An empty reason: the same form comes back, with the message under the field.
    again = await h.click(PRIYA, card, "Deny", {"input.reason": " "})
    assert "Give a short reason" in card_text(again.body["value"])
    assert buttons(again.body["value"]).keys() == {"Deny"}
    reason = "Let's finish the Q4 pilot first [click](https://evil.example) <at>all</at>"
    done = await h.click(PRIYA, card, "Deny", {"input.reason": reason})
    decided = done.body["value"]
    assert buttons(decided) == {} and "Denied by Priya Raman" in card_text(decided)
    # The reason is shown, but no markdown link or mention can form from it.
    runs = [n["text"] for n in _walk(decided) if n.get("type") == "TextRun"]
    assert any("Q4 pilot" in t for t in runs)
    assert not any("](" in t or "<at>" in t for t in runs)
    await h.deliver()
    assert "finish the Q4 pilot" in card_text(h.dm(TOMAS)[-1].card)
    assert await count(h.rt, SandboxGrant) == 0


async def test_only_the_approver_decides(teams: TeamsHarness) -> None:
    h = teams
    card = await request_and_deliver(h)
    user = h.user(AISHA)  # a colleague replaying Priya's card
    answer = await h.client.post(h.client.execute(
        user, buttons(card.card)["Approve"], h.client.personal(user, h.fake), card.id))
    assert answer.body["type"] == "application/vnd.microsoft.activity.message"
    assert "isn't yours to decide" in answer.body["value"]
    assert await count(h.rt, SandboxRequest, SandboxRequest.status == "pending") == 1


async def test_submit_fallback_decides_and_updates_the_card(teams: TeamsHarness) -> None:
    h = teams
    card = await request_and_deliver(h)
    user = h.user(PRIYA)
    sent = await h.client.post(h.client.submit(
        user, buttons(card.card)["Approve"], h.client.personal(user, h.fake), card.id))
    assert sent.status == 201
    assert card.edits >= 1 and buttons(card.card) == {}
    assert "Approved by Priya Raman" in card_text(card.card)
    assert await count(h.rt, SandboxGrant) == 1


async def test_sandbox_form_by_message_then_execute(teams: TeamsHarness) -> None:
    h = teams
    await h.client.post(h.client.install_personal(h.user(PRIYA), h.fake))
    await h.say(TOMAS, "/tokens sandbox")
    form = h.dm(TOMAS)[-1]
    ids = [n["id"] for n in _walk(form.card) if n.get("type", "").startswith("Input.")]
    assert ids == ["input.amount", "input.duration", "input.purpose", "input.expected_outcome"]
    bad = await h.click(TOMAS, form, "Send request", {"input.amount": "0",
                                                      "input.purpose": PURPOSE})
    assert "more than $0" in card_text(bad.body["value"])
    assert await count(h.rt, SandboxRequest) == 0
    ok = await h.click(TOMAS, form, "Send request", {"input.amount": "250",
                                                     "input.duration": 14,
                                                     "input.purpose": PURPOSE})
    assert "is with Priya Raman" in card_text(ok.body["value"])
    async with h.rt.db.reader() as s:
        req = await s.scalar(select(SandboxRequest))
    assert req.amount_micros == 250_000_000 and req.duration_days == 14
    assert req.origin_platform == "teams"


def _walk(node: Any) -> list[dict[str, Any]]:
    from tests.helpers.teams import walk

    return walk(node)
