"""`tokens` in Teams through the real /api/messages endpoint: the balance card, command
spellings, channels (private answers go 1:1), identity, authentication, bad requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot import ledger
from bot.directory import person_by_email
from bot.money import fmt_usd
from bot.server import build_app
from bot.store.tables import Person
from tests.fakes.teams import TENANT, FakeConnector, TeamsUser
from tests.helpers.server import serving
from tests.helpers.teams import (
    CHANNEL_ID,
    TeamsClient,
    TeamsHarness,
    card_text,
    fact,
    teams_harness,
    walk,
)
from tests.helpers.usage import raw_month_spend, seed_demo

TOMAS = "tomas.novak@acme.example"
APP_ID = "9d1a6a4e-3c55-4b0e-8a51-2f1b7f0e4c11"


@pytest.fixture
async def teams(make_runtime: Callable[..., Any]) -> AsyncIterator[TeamsHarness]:
    async with teams_harness(make_runtime) as harness:
        yield harness


async def test_balance_card_matches_the_ledger_and_raw_rows(teams: TeamsHarness) -> None:
    h = teams
    await seed_demo(h.rt, [TOMAS], days=25)
    sent = await h.say(TOMAS, "tokens")
    assert sent.status == 201
    posted = h.dm(TOMAS)[-1]
    assert posted.reply_to is not None  # answered in the same chat, in the turn
    card = posted.card
    async with h.rt.db.reader() as s:
        person = await person_by_email(s, TOMAS)
    assert person is not None
    bal = await ledger.balance(h.rt, person)
    independent = await raw_month_spend(h.rt, TOMAS)
    assert bal.spent == independent > 0
    assert fact(card, "Spent this month") == fmt_usd(independent)
    assert fact(card, "Monthly cap") == fmt_usd(bal.cap)
    assert fact(card, "Remaining") == fmt_usd(bal.cap - independent)
    assert "Usage as of" in card_text(card) and "Where it goes" in card_text(card)
    # The roster was asked once for the email; the AAD object id is stored from then on.
    assert len(h.fake.calls_to("member")) == 1
    async with h.rt.db.reader() as s:
        assert await s.scalar(select(Person.teams_aad_id).where(Person.email == TOMAS)) \
            == h.user(TOMAS).aad
    await h.say(TOMAS, "tokens")
    assert len(h.fake.calls_to("member")) == 1


@pytest.mark.parametrize("text", ["tokens help", "/tokens help", "help", "TOKENS   help",
                                  "<at>tokencoach</at> /tokens help"])
async def test_command_spellings_reach_the_same_handler(teams: TeamsHarness, text: str) -> None:
    await teams.say(TOMAS, text)
    assert "tokencoach commands" in card_text(teams.dm(TOMAS)[-1].card)


async def test_in_a_channel_the_answer_goes_private(teams: TeamsHarness) -> None:
    h = teams
    await seed_demo(h.rt, [TOMAS], days=10)
    sent = await h.say(TOMAS, "tokens", in_channel=True)
    assert sent.status == 201
    # The bot opened the 1:1 chat (with the tenant) and put the balance there ...
    created = h.fake.calls_to("create")
    assert len(created) == 1 and created[0].body["channelData"] == {"tenant": {"id": TENANT}}
    private = h.dm(TOMAS)
    assert len(private) == 1 and fact(private[0].card, "Spent this month", ) is not None
    # ... and only said so in the channel thread: no figures where colleagues can read.
    thread = [m for conv, msgs in h.fake.messages.items() if conv.startswith(CHANNEL_ID)
              for m in msgs]
    assert len(thread) == 1 and thread[0].reply_to is not None
    assert thread[0].activity["text"] == "I sent you the answer in a private chat with me."
    assert "$" not in json.dumps(thread[0].activity)
    # The 1:1 chat is remembered: the next channel question needs no new conversation.
    await h.say(TOMAS, "tokens help", in_channel=True)
    assert len(h.fake.calls_to("create")) == 1 and len(h.dm(TOMAS)) == 2


async def test_a_form_asked_for_in_a_channel_opens_privately(teams: TeamsHarness) -> None:
    h = teams
    await h.say(TOMAS, "tokens sandbox", in_channel=True)
    form = h.dm(TOMAS)[-1].card
    assert "Sandbox budget" in card_text(form)
    assert any(n.get("id") == "input.amount" for n in walk(form))
    thread = [m for conv, msgs in h.fake.messages.items() if conv.startswith(CHANNEL_ID)
              for m in msgs]
    assert [m.activity.get("attachments") for m in thread] == [None]


async def test_unknown_and_strange_input_gets_usage_not_a_trace(teams: TeamsHarness) -> None:
    for text in ("frobnicate", "tips maybe", "' OR 1=1 --", "\u202e\u0000x", "x" * 5000):
        sent = await teams.say(TOMAS, text)
        assert sent.status == 201
    assert "I don't know" in card_text(teams.dm(TOMAS)[0].card)


async def test_person_not_in_directory_is_told_whom_to_ask(teams: TeamsHarness) -> None:
    h = teams
    stranger = TeamsUser("guest@elsewhere.example", "Guest User")
    h.fake.add(stranger)
    await h.client.post(h.client.message(stranger, "tokens", h.fake))
    answer = h.fake.in_conversation(h.fake.personal_id(stranger))[-1]
    assert "couldn't find you" in card_text(answer.card)


async def test_a_minimal_activity_like_the_agents_playground_sends(teams: TeamsHarness) -> None:
    """No aadObjectId, no channelData, no conversationType: the roster's email decides."""
    h = teams
    user = h.user(TOMAS)
    activity = h.client.message(user, "tokens help", h.fake)
    del activity["from"]["aadObjectId"], activity["channelData"], activity["entities"]
    del activity["conversation"]["conversationType"], activity["conversation"]["tenantId"]
    assert (await h.client.post(activity)).status == 201
    assert "tokencoach commands" in card_text(h.dm(TOMAS)[-1].card)


async def test_bad_requests_are_refused_cleanly(teams: TeamsHarness) -> None:
    h = teams
    async with aiohttp.ClientSession() as http:
        async with http.post(h.client.url, data="tokens",
                             headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 415
        async with http.post(h.client.url, data="{not json",
                             headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400
        async with http.post(h.client.url, json={"text": "no type"}) as resp:
            assert resp.status == 400
    assert h.fake.calls == []


async def test_with_an_app_id_requests_without_a_valid_jwt_get_401(
        make_runtime: Callable[..., Any]) -> None:
    fake = FakeConnector()
    async with serving(fake.app()) as service_url:
        rt = await make_runtime(microsoft_app_id=APP_ID, microsoft_app_password="s3cret-value",
                                microsoft_app_tenant_id=TENANT)
        async with serving(build_app(rt, background=False)) as base, \
                aiohttp.ClientSession() as http:
            client = TeamsClient(http, f"{base}/api/messages", service_url)
            user = TeamsUser(TOMAS, "Tomás Novák")
            activity = client.message(user, "tokens", fake)
            for headers in ({"Content-Type": "application/json"},
                            {"Content-Type": "application/json", "Authorization": "Basic x"},
                            {"Content-Type": "application/json", "Authorization": "Bearer"},
                            {"Content-Type": "application/json",
                             "Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}):
                assert (await client.post(activity, headers=headers)).status == 401
    assert fake.calls == []  # nothing ran: no roster lookup, no reply
