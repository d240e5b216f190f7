"""Sandbox requests and approvals through the real Slack endpoint and a fake Web API."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import func, select

from bot.store.tables import AuditEntry, OutboxMessage, SandboxGrant, SandboxRequest
from tests.conftest import with_overrides
from tests.helpers.approvals import buttons, card_in, latest_in, text_of
from tests.helpers.slack import block_texts, field_value

TOMAS = "tomas.novak@acme.example"
PRIYA = "priya.raman@acme.example"  # Tomás's manager
AISHA = "aisha.bello@acme.example"  # a colleague
JORDAN = "jordan.blake@acme.example"  # Priya's manager, fallback approver
DANA = "dana.okafor@acme.example"  # second approver over $1,000


async def ask(bot, who: str, text: str) -> str:  # type: ignore[no-untyped-def]
    status, body = await bot.client.command(bot.uid(who), text)
    assert status == 200
    return " ".join(block_texts(body.get("blocks", []))) or body.get("text", "")


async def click(bot, who: str, message: dict, label: str, owner: str) -> tuple[int, object]:  # type: ignore[no-untyped-def,type-arg]
    button = buttons(message)[label]
    payload = bot.client.block_action(bot.uid(who), button["action_id"], button.get("value", ""),
                                      channel=bot.fake.dm_channel(owner),
                                      message_ts=message["ts"])
    return await bot.client.interact(payload)


async def count(rt, model, *where) -> int:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def audit_actions(rt) -> list[str]:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        return list((await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())


async def test_happy_path_request_approve_grant(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    answer = await ask(bot, TOMAS, "sandbox 300 Build an agent that triages bug reports")
    assert "#1" in answer and "Priya Raman" in answer
    await bot.deliver()
    card = card_in(bot.fake, PRIYA, 1)
    assert set(buttons(card)) == {"Approve", "Deny"}
    assert "Build an agent that triages bug reports" in text_of(card)
    assert "Sandbox pool left" in text_of(card)
    confirmation = latest_in(bot.fake, TOMAS)
    assert "Cancel request" in buttons(confirmation)

    status, _ = await click(bot, PRIYA, card, "Approve", owner=PRIYA)
    assert status == 200
    card = card_in(bot.fake, PRIYA, 1)
    assert card.get("edited") and buttons(card) == {}
    assert "Approved" in text_of(card) and "Priya Raman" in text_of(card)
    await bot.deliver()
    note = latest_in(bot.fake, TOMAS)
    assert "approved" in text_of(note).lower()
    updated = bot.fake.messages(bot.fake.dm_channel(TOMAS))[0]
    assert updated["ts"] == confirmation["ts"] and updated.get("edited")
    assert buttons(updated) == {} and "Approved" in text_of(updated)
    async with bot.rt.db.reader() as s:
        grant = await s.scalar(select(SandboxGrant))
        req = await s.scalar(select(SandboxRequest))
    assert grant.amount_micros == 300_000_000 and req.status == "approved"
    _, body = await bot.client.command(bot.uid(TOMAS), "")
    assert field_value(body["blocks"], "Sandbox grants") == "$300"
    assert field_value(body["blocks"], "Remaining") == "$1,800"
    assert await audit_actions(bot.rt) == ["sandbox.requested", "sandbox.granted"]


async def test_deny_asks_a_reason_and_tells_the_requester(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await ask(bot, TOMAS, "sandbox 120 Try an eval harness for our prompts")
    await bot.deliver()
    card = card_in(bot.fake, PRIYA, 1)
    await click(bot, PRIYA, card, "Deny", owner=PRIYA)
    opened = bot.fake.calls_to("views.open")[-1]["view"]
    assert opened["callback_id"] == "sandbox.deny_submit"
    # An empty reason is refused in the modal itself.
    status, body = await bot.client.interact(bot.client.view_submission(
        bot.uid(PRIYA), opened, {"reason": ""}))
    assert status == 200 and body["response_action"] == "errors" and "reason" in body["errors"]
    status, body = await bot.client.interact(bot.client.view_submission(
        bot.uid(PRIYA), opened, {"reason": "Let's finish the Q4 pilot first"}))
    assert status == 200 and body in ("", {})
    card = card_in(bot.fake, PRIYA, 1)
    assert buttons(card) == {} and "Denied" in text_of(card)
    assert "Let's finish the Q4 pilot first" in text_of(card)
    await bot.deliver()
    assert "Let's finish the Q4 pilot first" in text_of(latest_in(bot.fake, TOMAS))
    assert await count(bot.rt, SandboxGrant) == 0


async def test_only_the_designated_approver_decides(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await ask(bot, TOMAS, "sandbox 80 Prototype a research agent with citations")
    await bot.deliver()
    card = copy.deepcopy(card_in(bot.fake, PRIYA, 1))
    await click(bot, AISHA, card, "Approve", owner=PRIYA)
    await click(bot, TOMAS, card, "Approve", owner=PRIYA)
    await click(bot, AISHA, card, "Deny", owner=PRIYA)
    said = [r.get("text", "") for r in bot.fake.responses]
    assert sum("isn't yours to decide" in t for t in said) == 2
    assert sum("can't decide your own request" in t for t in said) == 1
    assert await count(bot.rt, SandboxRequest, SandboxRequest.status == "pending") == 1
    actions = await audit_actions(bot.rt)
    assert actions.count("sandbox.unauthorized_decision") == 2
    assert actions.count("sandbox.self_approval_refused") == 1
    assert not bot.fake.calls_to("views.open")  # no deny form for the wrong person


async def test_double_click_yields_one_decision(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await ask(bot, TOMAS, "sandbox 200 Automate the weekly release notes with an agent")
    await bot.deliver()
    card = copy.deepcopy(card_in(bot.fake, PRIYA, 1))  # the stale card still on screen
    await click(bot, PRIYA, card, "Approve", owner=PRIYA)
    await click(bot, PRIYA, card, "Approve", owner=PRIYA)
    # And a retried delivery of the very same click (same action_ts).
    button = buttons(card)["Approve"]
    same = bot.client.block_action(bot.uid(PRIYA), button["action_id"], button["value"],
                                   channel=bot.fake.dm_channel(PRIYA), message_ts=card["ts"],
                                   action_ts="1700000000.1")
    await bot.client.interact(same)
    await bot.client.interact(same)
    await bot.deliver()
    assert await count(bot.rt, SandboxGrant) == 1
    assert await count(bot.rt, OutboxMessage, OutboxMessage.kind == "approval_result") == 1
    approvals = [m for m in bot.fake.messages(bot.fake.dm_channel(TOMAS))
                 if "approved" in m.get("text", "").lower()]
    assert len(approvals) == 1


async def test_requester_can_cancel(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await ask(bot, TOMAS, "sandbox 60 Compare two agent frameworks on our tickets")
    await bot.deliver()
    confirmation = latest_in(bot.fake, TOMAS)
    await click(bot, TOMAS, confirmation, "Cancel request", owner=TOMAS)
    await bot.deliver()
    assert "Cancelled" in text_of(card_in(bot.fake, PRIYA, 1))
    assert buttons(card_in(bot.fake, PRIYA, 1)) == {}
    assert await count(bot.rt, SandboxRequest, SandboxRequest.status == "cancelled") == 1
    # Now a new request is allowed (one open request at a time).
    assert "#2" in await ask(bot, TOMAS, "sandbox 60 Compare two agent frameworks again")


@pytest.mark.parametrize(("text", "expected"), [
    ("sandbox 0 Build an agent that triages", "more than $0"),
    ("sandbox -5 Build an agent that triages", "isn't an amount"),
    ("sandbox 12.345 Build an agent that triages", "more than 2 decimals"),
    ("sandbox 99999 Build an agent that triages", "at most $2,000"),
    ("sandbox abc Build an agent that triages", "isn't an amount"),
    ("sandbox 300 agents", "at least 3 words"),
    ("sandbox 300", "at least 3 words"),
    ("sandbox 1e3 Build an agent that triages", "isn't an amount"),
    ("sandbox NaN Build an agent that triages", "isn't an amount"),
])
async def test_bad_requests_are_answered_and_store_nothing(slack_bot, text, expected) -> None:  # type: ignore[no-untyped-def]
    answer = await ask(slack_bot, TOMAS, text)
    assert expected in answer
    assert await count(slack_bot.rt, SandboxRequest) == 0
    assert await count(slack_bot.rt, OutboxMessage) == 0


async def test_one_open_request_at_a_time(slack_bot) -> None:  # type: ignore[no-untyped-def]
    await ask(slack_bot, TOMAS, "sandbox 50 Build an agent that triages bug reports")
    answer = await ask(slack_bot, TOMAS, "sandbox 70 Something else entirely here")
    assert "already have request #1" in answer
    assert await count(slack_bot.rt, SandboxRequest) == 1


async def test_pool_exhaustion_counts_pending(make_runtime, fake_slack, base_config) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    from bot.server import build_app
    from tests.helpers.server import serving
    from tests.helpers.slack import SECRET, TOKEN, SlackClient

    cfg = with_overrides(base_config, sandbox={"pool_usd": "500"})
    rt = await make_runtime(config=cfg, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=f"{fake_slack.base_url}/api/")
    async with serving(build_app(rt, background=False)) as base, aiohttp.ClientSession() as http:
        client = SlackClient(http, base, fake_slack.base_url)
        _, first = await client.command(fake_slack.user_id(TOMAS),
                                        "sandbox 300 Build an agent that triages")
        _, second = await client.command(fake_slack.user_id(AISHA),
                                         "sandbox 300 Build a code review agent")
    assert "#1" in first["text"]
    assert "pool for November has $200 left" in " ".join(block_texts(second["blocks"]))
    assert await count(rt, SandboxRequest) == 1


async def test_large_request_needs_a_second_approver(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await ask(bot, TOMAS, "sandbox 1500 Run a month-long agentic migration pilot")
    await bot.deliver()
    priya_card = copy.deepcopy(card_in(bot.fake, PRIYA, 1))
    await click(bot, PRIYA, priya_card, "Approve", owner=PRIYA)
    await bot.deliver()
    assert "second approval" in text_of(card_in(bot.fake, PRIYA, 1))
    dana_card = copy.deepcopy(card_in(bot.fake, DANA, 1))
    assert set(buttons(dana_card)) == {"Approve", "Deny"}
    assert await count(bot.rt, SandboxGrant) == 0
    # Priya's stale stage-1 button, and Priya on Dana's card, do nothing now.
    await click(bot, PRIYA, priya_card, "Approve", owner=PRIYA)
    await click(bot, PRIYA, dana_card, "Approve", owner=DANA)
    assert await count(bot.rt, SandboxGrant) == 0
    await click(bot, DANA, dana_card, "Approve", owner=DANA)
    assert await count(bot.rt, SandboxGrant) == 1


async def test_delivery_survives_429_then_500(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    bot.fake.fail("chat.postMessage", 429, 500, retry_after=1)
    await ask(bot, TOMAS, "sandbox 90 Build an agent that drafts changelogs")
    for _ in range(6):
        await bot.deliver()
        bot.rt.clock.advance(seconds=30)
    posts = bot.fake.messages()
    cards = [m for m in posts if "Sandbox budget request #1" in text_of(m)]
    confirmations = [m for m in posts if "Your sandbox request #1" in text_of(m)]
    assert len(cards) == 1 and len(confirmations) == 1
    async with bot.rt.db.reader() as s:
        rows = (await s.scalars(select(OutboxMessage))).all()
    assert {r.status for r in rows} == {"sent"}
    # Two scripted failures, then success: four calls, four attempts in all.
    assert len(bot.fake.calls_to("chat.postMessage")) == 4
    assert sum(r.attempts for r in rows) == 4


async def test_permanent_failure_is_reported_to_admins(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    bot.fake.fail("conversations.open", "channel_not_found")
    await ask(bot, TOMAS, "sandbox 90 Build an agent that drafts changelogs")
    await bot.deliver()
    async with bot.rt.db.reader() as s:
        failed = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.status == "failed"))).all()
    assert len(failed) == 1 and "channel_not_found" in failed[0].last_error
    alerts = [m for m in bot.fake.messages(bot.fake.dm_channel(DANA))
              if "could not be delivered" in text_of(m)]
    assert len(alerts) == 1




async def test_a_request_from_someone_who_left_is_closed_without_stalling_others(slack_bot) -> None:  # type: ignore[no-untyped-def]
    from bot.directory import sync_directory
    from bot.scheduling.runner import run_job
    from tests.conftest import with_overrides

    bot = slack_bot
    await ask(bot, TOMAS, "sandbox 100 Build an agent that triages bug reports")
    await ask(bot, AISHA, "sandbox 100 Build a code review agent for our repo")
    await bot.deliver()
    # Tomás leaves: he is removed from app.yaml and the directory is synced.
    cfg = bot.rt.config
    people = [p.model_dump(mode="json") for p in cfg.directory.people if p.email != TOMAS]
    bot.rt.config = with_overrides(cfg, directory={**cfg.directory.model_dump(
        mode="json", exclude={"people_csv"}), "people": people})
    await sync_directory(bot.rt)
    bot.rt.clock.advance(hours=25)
    [outcome] = await run_job(bot.rt, "approvals")
    assert outcome.ok and outcome.result["closed"] == 1 and outcome.result["reminded"] == 1
    assert outcome.result["errors"] == 0
    await bot.deliver()
    assert "no longer in the directory" in text_of(card_in(bot.fake, PRIYA, 1))
    assert buttons(card_in(bot.fake, PRIYA, 1)) == {}
    async with bot.rt.db.reader() as s:
        statuses = dict((await s.execute(select(SandboxRequest.id, SandboxRequest.status))).all())
    assert statuses == {1: "cancelled", 2: "pending"}


async def test_a_corrected_form_resubmission_goes_through(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await bot.client.command(bot.uid(TOMAS), "sandbox")
    view = bot.fake.calls_to("views.open")[-1]["view"]
    values = {"amount": "abc", "duration": "30",
              "purpose": "Build an agent that triages bug reports", "expected_outcome": ""}
    first = bot.client.view_submission(bot.uid(TOMAS), view, values)
    status, body = await bot.client.interact(first)
    assert body["response_action"] == "errors" and "amount" in body["errors"]
    # Slack keeps the same view (id and hash) when a submission is answered with errors.
    again = copy.deepcopy(first)
    again["view"]["state"]["values"]["amount"]["value"]["value"] = "120"
    status, body = await bot.client.interact(again)
    assert status == 200 and body in ("", {})
    assert await count(bot.rt, SandboxRequest) == 1
