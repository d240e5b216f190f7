"""`/tokens` on Slack through the real HTTP endpoint, signed as Slack signs requests."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from slack_sdk.models.blocks import Block

from bot import ledger
from bot.directory import person_by_email
from bot.money import fmt_usd
from tests.helpers.slack import block_texts, field_value, signed_headers
from tests.helpers.usage import raw_month_spend, seed_demo

TOMAS = "tomas.novak@acme.example"


def assert_valid_block_kit(blocks: list[dict]) -> None:  # type: ignore[type-arg]
    assert 0 < len(blocks) <= 50
    for block in blocks:
        Block.parse(block).validate_json()  # raises SlackObjectFormationError if invalid


async def test_balance_card_matches_the_ledger_and_raw_rows(slack_bot) -> None:  # type: ignore[no-untyped-def]
    await seed_demo(slack_bot.rt, [TOMAS], days=25)
    status, body = await slack_bot.client.command(slack_bot.uid(TOMAS), "")
    assert status == 200
    assert body["response_type"] == "ephemeral"
    blocks = body["blocks"]
    assert_valid_block_kit(blocks)
    async with slack_bot.rt.db.reader() as s:
        person = await person_by_email(s, TOMAS)
    assert person is not None
    bal = await ledger.balance(slack_bot.rt, person)
    independent = await raw_month_spend(slack_bot.rt, TOMAS)
    assert bal.spent == independent > 0
    assert field_value(blocks, "Spent this month") == fmt_usd(independent)
    assert field_value(blocks, "Monthly cap") == fmt_usd(bal.cap)
    assert field_value(blocks, "Remaining") == fmt_usd(bal.cap - independent)
    texts = " ".join(block_texts(blocks))
    assert "Usage as of" in texts and "Where it goes" in texts
    # The person's Slack id was learned once and stored.
    assert len(slack_bot.fake.calls_to("users.info")) == 1
    await slack_bot.client.command(slack_bot.uid(TOMAS), "")
    assert len(slack_bot.fake.calls_to("users.info")) == 1


async def test_low_value_heavy_person_gets_one_tip_with_buttons(slack_bot) -> None:  # type: ignore[no-untyped-def]
    omar = "omar.haddad@acme.example"  # a "summarizer" in the demo generator
    await seed_demo(slack_bot.rt, [omar], days=25)
    _, body = await slack_bot.client.command(slack_bot.uid(omar), "")
    texts = " ".join(block_texts(body["blocks"]))
    assert texts.count("Tip:") == 1
    buttons = [el for b in body["blocks"] if b["type"] == "actions" for el in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Open tutorial", "Request sandbox budget"]
    assert buttons[0]["url"].startswith("https://learn.acme.example/")


async def test_forged_unsigned_and_stale_requests_are_refused(slack_bot) -> None:  # type: ignore[no-untyped-def]
    body = slack_bot.client.command_body(slack_bot.uid(TOMAS), "")
    forged = signed_headers(body, secret="not-the-secret")
    stale = signed_headers(body, timestamp=int(time.time()) - 6 * 60)
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
    for headers in (forged, stale, unsigned):
        status, _ = await slack_bot.client.post(body, headers=headers)
        assert status == 401
    assert slack_bot.fake.calls == []  # nothing ran: no lookups, no auth.test


async def test_unknown_command_gets_usage_not_a_trace(slack_bot) -> None:  # type: ignore[no-untyped-def]
    for text in ("frobnicate", "sandbox", "tips maybe", "' OR 1=1 --", "\u202e\u0000x"):
        status, body = await slack_bot.client.command(slack_bot.uid(TOMAS), text)
        assert status == 200
        if "blocks" in body:
            assert_valid_block_kit(body["blocks"])
    _, body = await slack_bot.client.command(slack_bot.uid(TOMAS), "frobnicate")
    assert "I don't know" in " ".join(block_texts(body["blocks"]))


async def test_person_not_in_directory_is_told_whom_to_ask(slack_bot) -> None:  # type: ignore[no-untyped-def]
    slack_bot.fake.users["UOUTSIDER"] = "visitor@elsewhere.example"
    _, body = await slack_bot.client.command("UOUTSIDER", "")
    text = " ".join(block_texts(body["blocks"]))
    assert "couldn't find you" in text and "Dana Okafor" in text


async def test_help_and_history(slack_bot) -> None:  # type: ignore[no-untyped-def]
    await seed_demo(slack_bot.rt, [TOMAS], days=40)
    _, help_body = await slack_bot.client.command(slack_bot.uid(TOMAS), "help")
    assert "/tokens sandbox" in " ".join(block_texts(help_body["blocks"]))
    _, hist = await slack_bot.client.command(slack_bot.uid(TOMAS), "history")
    assert_valid_block_kit(hist["blocks"])
    fields = [f for b in hist["blocks"] for f in b.get("fields", [])]
    assert len(fields) == 6 and "Nov 2026" in fields[0]["text"]


async def test_retried_event_is_handled_once(slack_bot) -> None:  # type: ignore[no-untyped-def]
    event = {"type": "event_callback", "event_id": "Ev0001", "team_id": "T0ACME",
             "api_app_id": "A0TOKENS", "event_time": int(time.time()),
             "event": {"type": "app_home_opened", "user": slack_bot.uid(TOMAS), "tab": "home"}}
    body = json.dumps(event)
    for retry in (None, "1", "2"):
        headers = signed_headers(body, content_type="application/json")
        if retry:
            headers |= {"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"}
        status, _ = await slack_bot.client.post(body, headers=headers)
        assert status == 200
    published = slack_bot.fake.calls_to("views.publish")
    assert len(published) == 1
    assert published[0]["view"]["type"] == "home"
    assert_valid_block_kit(published[0]["view"]["blocks"])


async def test_url_verification_and_ssl_check(slack_bot) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"})
    status, text = await slack_bot.client.post(
        body, headers=signed_headers(body, content_type="application/json"))
    assert status == 200 and json.loads(text)["challenge"] == "abc123"
    ssl = urlencode({"ssl_check": "1", "token": "x"})
    status, _ = await slack_bot.client.post(ssl, headers=signed_headers(ssl))
    assert status == 200


INJECTIONS = [
    "<!channel> everyone look", "<!here|here>", "<@U0001> ping", "<#C0PLATFORM>",
    "<https://evil.example|your bonus>", "&lt;!channel&gt;", "<javascript:alert(1)|x>",
    "[click](https://evil.example)", "**bold** <b>html</b> `code`", "@channel", "<<!everyone>>",
]


async def test_user_text_cannot_become_a_mention_or_link(slack_bot) -> None:  # type: ignore[no-untyped-def]
    from bot.slack.render import message
    from handlers.sandbox import _sent  # noqa: F401  (the reply builders under test)

    for evil in INJECTIONS:
        status, _ = await slack_bot.client.command(
            slack_bot.uid(TOMAS), f"sandbox 50 {evil} for the team")
        assert status == 200
    await slack_bot.deliver()
    # The approver card carries the purpose; every rendered text is escaped.
    posted = slack_bot.fake.calls_to("chat.postMessage")
    assert posted
    for call in posted:
        for text in [*block_texts(call["blocks"]), call["text"]]:
            assert "<!" not in text and "<@" not in text and "<#" not in text
            assert "<http" not in text and "<javascript" not in text
    # And directly: a Quote with the whole corpus renders without a live token.
    from bot.reply import Quote, Reply

    quote = Quote(text="\n".join(INJECTIONS), author="<!here>")
    rendered = message(Reply(text="x", blocks=[quote]))
    for text in block_texts(rendered["blocks"]):
        assert "<" not in text.replace("&lt;", "")
