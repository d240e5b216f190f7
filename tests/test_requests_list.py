"""Deciding one request from the `/tokens requests` list updates only that entry: the other
requests keep their buttons. On Slack (an ephemeral message, replaced through its
response_url, also after the deny form), on Teams (the card, in place) and in the
playground — each through its real endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.server import build_app
from bot.store.tables import SandboxRequest
from tests.helpers.server import serving
from tests.helpers.slack import block_texts
from tests.helpers.teams import TeamsHarness, card_text, teams_harness, walk

TOMAS = "tomas.novak@acme.example"
AISHA = "aisha.bello@acme.example"
PRIYA = "priya.raman@acme.example"  # manager of both
ASKS = {TOMAS: "sandbox 300 Build an agent that triages bug reports",
        AISHA: "sandbox 150 Try an eval harness for our prompts"}


async def statuses(rt: Any) -> dict[int, str]:
    async with rt.db.reader() as s:
        return {r.id: r.status for r in (await s.scalars(select(SandboxRequest))).all()}


# --- Slack -------------------------------------------------------------------------------


def slack_buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """'<label> <value>' -> button element, for every button in a Block Kit message."""
    return {f"{e['text']['text']} {e.get('value', '')}": e
            for b in blocks if b["type"] == "actions" for e in b["elements"]}


async def test_slack_list_decisions_update_only_their_entry(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    for who, text in ASKS.items():
        status, _ = await bot.client.command(bot.uid(who), text)
        assert status == 200
    status, listed = await bot.client.command(bot.uid(PRIYA), "requests")
    assert status == 200
    buttons = slack_buttons(listed["blocks"])
    assert {f"{label} {req}:1@list:1,2" for label in ("Approve", "Deny") for req in (1, 2)} <= set(
        buttons)
    dm = bot.fake.dm_channel(PRIYA)

    approve = buttons["Approve 1:1@list:1,2"]
    payload = bot.client.block_action(bot.uid(PRIYA), approve["action_id"], approve["value"],
                                      channel=dm, message_ts="1700000000.000100", ephemeral=True)
    response_url = payload["response_url"]
    status, _ = await bot.client.interact(payload)
    assert status == 200
    replaced = bot.fake.responses[-1]
    assert replaced.get("replace_original") is True
    after = slack_buttons(replaced["blocks"])
    assert set(after) == {"Approve 2:1@list:1,2", "Deny 2:1@list:1,2"}  # #2 keeps its buttons
    text = " ".join(block_texts(replaced["blocks"]))
    assert "#1" in text and "approved by you" in text and "#2" in text

    # Deny #2 from the updated list: the reason form opens; on submit the list is
    # replaced again through the list's response_url.
    deny = after["Deny 2:1@list:1,2"]
    payload = bot.client.block_action(bot.uid(PRIYA), deny["action_id"], deny["value"],
                                      channel=dm, message_ts="1700000000.000100", ephemeral=True)
    payload["response_url"] = response_url
    await bot.client.interact(payload)
    view = bot.fake.calls_to("views.open")[-1]["view"]
    status, _ = await bot.client.interact(bot.client.view_submission(
        bot.uid(PRIYA), view, {"reason": "Let's finish the Q4 pilot first"}))
    assert status == 200
    final = bot.fake.responses[-1]
    assert final.get("replace_original") is True and slack_buttons(final["blocks"]) == {}
    text = " ".join(block_texts(final["blocks"]))
    assert "approved by you" in text and "denied by you" in text
    assert await statuses(bot.rt) == {1: "approved", 2: "denied"}


# --- Teams -------------------------------------------------------------------------------


@pytest.fixture
async def teams(make_runtime: Callable[..., Any]) -> AsyncIterator[TeamsHarness]:
    async with teams_harness(make_runtime) as harness:
        yield harness


def teams_actions(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{a['title']} {(a.get('data') or {}).get('value', '')}": a
            for node in walk(card) if node.get("type") == "ActionSet" for a in node["actions"]}


async def test_teams_list_decisions_update_only_their_entry(teams: TeamsHarness) -> None:
    h = teams
    await h.client.post(h.client.install_personal(h.user(PRIYA), h.fake))
    for who, text in ASKS.items():
        assert (await h.say(who, f"tokens {text}")).status == 201
    await h.deliver()
    assert (await h.say(PRIYA, "tokens requests")).status == 201
    listed = h.dm(PRIYA)[-1]
    actions = teams_actions(listed.card)
    assert {"Approve 1:1@list:1,2", "Approve 2:1@list:1,2"} <= set(actions)
    user = h.user(PRIYA)
    where = h.client.personal(user, h.fake)

    answer = await h.client.post(h.client.execute(user, actions["Approve 1:1@list:1,2"], where,
                                                  listed.id))
    assert answer.status == 200
    card = answer.body["value"]
    assert set(teams_actions(card)) == {"Approve 2:1@list:1,2", "Deny 2:1@list:1,2"}
    assert "approved by you" in card_text(card) and "Sandbox requests" in card_text(card)

    # Deny #2: the reason form takes the card's place, and its answer is the list again.
    opened = await h.client.post(h.client.execute(user, teams_actions(card)["Deny 2:1@list:1,2"],
                                                  where, listed.id))
    form = opened.body["value"]
    assert "Deny request" in card_text(form)
    deny = next(a for a in teams_actions(form).values() if a["verb"] == "sandbox.deny_submit")
    done = await h.client.post(h.client.execute(user, deny, where, listed.id,
                                                {"input.reason": "Q4 pilot first"}))
    final = done.body["value"]
    assert teams_actions(final) == {}
    assert "approved by you" in card_text(final) and "denied by you" in card_text(final)
    assert await statuses(h.rt) == {1: "approved", 2: "denied"}


# --- the playground ------------------------------------------------------------------------


async def test_playground_list_decisions_update_only_their_entry(rt: Any) -> None:
    from bot.directory import person_by_email

    async with rt.db.reader() as s:
        ids = {e: (await person_by_email(s, e)).id for e in (TOMAS, AISHA, PRIYA)}
    async with serving(build_app(rt, playground=True, background=False)) as base, \
            aiohttp.ClientSession() as http:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with http.post(f"{base}/playground/api/{path}", json=body) as resp:
                assert resp.status == 200, await resp.text()
                return dict(await resp.json())

        for who, text in ASKS.items():
            await post("send", {"as": ids[who], "text": text})
        priya = {"as": ids[PRIYA], "conversation": f"dm:{ids[PRIYA]}"}
        await post("send", {**priya, "text": "requests"})
        listed = (await post("messages", priya))["messages"][-1]
        assert 'data-value="1:1@list:1,2"' in listed["html"]

        await post("action", {**priya, "action": "sandbox.approve", "value": "1:1@list:1,2",
                              "message_id": listed["id"]})
        shown = {m["id"]: m["html"] for m in (await post("messages", priya))["messages"]}
        html = shown[listed["id"]]  # the same message, updated in place
        assert "approved by you" in html
        assert 'data-value="1:1@list:1,2"' not in html and 'data-value="2:1@list:1,2"' in html

        opened = await post("action", {**priya, "action": "sandbox.deny", "value": "2:1@list:1,2",
                                       "message_id": listed["id"]})
        assert opened["form"]["message_id"] == listed["id"]
        await post("action", {**priya, "action": "sandbox.deny_submit", "value": "2:1@list:1,2",
                              "message_id": listed["id"], "form": {"reason": "Q4 pilot first"}})
        shown = {m["id"]: m["html"] for m in (await post("messages", priya))["messages"]}
        html = shown[listed["id"]]
        assert "approved by you" in html and "denied by you" in html and "data-value=" not in html

        # A hand-made value naming someone else's request shows Aisha nothing of it.
        aisha = {"as": ids[AISHA], "conversation": f"dm:{ids[AISHA]}"}
        await post("send", {**aisha, "text": "requests"})
        own = (await post("messages", aisha))["messages"][-1]
        await post("action", {**aisha, "action": "sandbox.cancel", "value": "2@list:1",
                              "message_id": own["id"]})
        html = {m["id"]: m["html"] for m in (await post("messages", aisha))["messages"]}[own["id"]]
        assert "#2" in html and "#1" not in html and "Build an agent" not in html
    assert await statuses(rt) == {1: "approved", 2: "denied"}
