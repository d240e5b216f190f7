"""Text shown to others (issue #22, items 9 and 11): mrkdwn a person typed stays literal,
bidi overrides and isolates never reach Slack, Teams or the playground, and Slack's
rendering limits hold (empty texts, long URLs, entities never cut, modal state by key)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.reply import (
    Actions,
    Button,
    Context,
    Fact,
    Facts,
    Form,
    FormField,
    Image,
    Quote,
    Reply,
    Text,
)
from bot.server import build_app
from bot.slack import render as slack_render
from bot.slack import views
from bot.teams import render as teams_render
from bot.usertext import BIDI_CONTROLS
from tests.helpers.server import serving
from tests.helpers.slack import block_texts
from tests.helpers.surfaces import person_id
from tests.helpers.teams import card_text, teams_harness, walk

TOMAS, PRIYA = "tomas.novak@acme.example", "priya.raman@acme.example"
# A purpose that would render bold, italic, struck and as a quote, and whose last word is
# displayed reversed by a right-to-left override ("exe.gnp" reads "png.exe").
PURPOSE = "*Urgent* _approve_ ~now~ `x` \u202eexe.gnp \u2066isolated\u2069 agent triage"


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def no_bidi(payload: Any) -> None:
    found = [s for s in strings(payload) if any(c in s for c in BIDI_CONTROLS)]
    assert found == [], found


# --- the approval card a manager sees, on each platform, both backends ---------------------


async def test_slack_approval_card_shows_the_purpose_inert(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await bot.client.command(bot.uid(TOMAS), f"sandbox 300 {PURPOSE}")
    await bot.deliver()
    [card] = [m for m in bot.fake.messages(bot.fake.dm_channel(PRIYA))
              if "Sandbox budget request" in json.dumps(m)]
    no_bidi(card)
    shown = " ".join(block_texts(card["blocks"]))
    assert "∗Urgent∗ ˍapproveˍ ∼now∼ ˋxˋ exe.gnp isolated agent triage" in shown, shown
    # No live markup from the purpose: no *…*, _…_ or ~…~ pair around its words.
    assert not re.search(r"[*_~]\w+[*_~]", shown.split("Purpose")[-1])
    for block in card["blocks"]:
        Block.parse(block).validate_json()
    # The bot's own bold still works (the card's labels).
    assert "*Purpose*" in json.dumps(card)


@pytest.fixture
async def teams(make_runtime) -> AsyncIterator[Any]:  # type: ignore[no-untyped-def]
    async with teams_harness(make_runtime) as harness:
        yield harness


async def test_teams_approval_card_shows_the_purpose_without_bidi(teams) -> None:  # type: ignore[no-untyped-def]
    h = teams
    for who in (TOMAS, PRIYA):
        await h.client.post(h.client.install_personal(h.user(who), h.fake))
    await h.say(TOMAS, f"sandbox 300 {PURPOSE}")
    await h.deliver()
    cards = [p.card for p in h.dm(PRIYA) if p.card and "Sandbox budget request" in card_text(
        p.card)]
    assert cards
    no_bidi(cards)
    assert "exe.gnp isolated agent triage" in card_text(cards[-1])
    for node in walk(cards[-1]):  # markdown-capable fact values: no typed emphasis
        for f in node.get("facts") or []:
            assert not re.search(r"(?<![*\w])[*_]\w", f["value"]), f


async def test_playground_approval_card_shows_the_purpose_without_bidi(make_runtime) -> None:  # type: ignore[no-untyped-def]
    rt = await make_runtime()
    async with serving(build_app(rt, playground=True, background=False)) as base, \
            aiohttp.ClientSession() as http:
        me, priya = await person_id(rt, TOMAS), await person_id(rt, PRIYA)
        async with http.post(f"{base}/playground/api/send", json={
                "as": me, "text": f"/tokens sandbox 300 {PURPOSE}"}) as resp:
            assert resp.status == 200
        async with http.post(f"{base}/playground/api/run-due", json={}) as resp:
            assert resp.status == 200
        async with http.post(f"{base}/playground/api/messages", json={
                "as": priya, "conversation": f"dm:{priya}"}) as resp:
            page = await resp.json()
    html = " ".join(m["html"] for m in page["messages"])
    assert "Sandbox budget request" in html and "exe.gnp" in html
    assert not any(c in html for c in BIDI_CONTROLS)


# --- the renderers, on every block kind ----------------------------------------------------


def hostile_reply() -> Reply:
    typed = "*b* _i_ ~s~ \u202etxet\u202c \u2067x\u2069 a_b@x.example 2*3*4"
    return Reply(text=f"**{typed}**", blocks=[
        Text(text=f"**Bold bot label** {typed}\n> quoted? {typed}"),
        Facts(title=typed, items=[Fact(label=typed, value=f"**{typed}** {typed}")]),
        Context(text=typed), Quote(text=f"> {typed}", author=typed),
        Actions(buttons=[Button(label=typed, action="tips.open", value="v")]),
    ])


def test_every_renderer_removes_bidi_and_slack_makes_typed_markup_inert() -> None:
    from bot.playground import render as playground_render

    reply = hostile_reply()
    slack = slack_render.message(reply)
    teams = teams_render.reply_card(reply)
    html = playground_render.reply_html(reply, lambda _id: "")
    for payload in (slack, teams, html):
        no_bidi(payload)
    texts = block_texts(slack["blocks"])
    joined = "\n".join(texts)
    assert "∗b∗ ˍiˍ ∼s∼" in joined and "a_b@x.example" in joined and "2*3*4" in joined
    assert "*Bold bot label*" in joined
    assert not re.search(r"(?m)^&gt;", joined)  # a typed '>' starts no quote
    assert "\u00ad&gt; quoted?" in joined


# --- Slack limits ----------------------------------------------------------------------------


def test_slack_never_sends_an_empty_text_or_a_cut_url() -> None:
    long_url = "https://charts.example/" + "a" * 3000
    reply = Reply(text="", blocks=[
        Context(text=""), Context(text="   "), Text(text=""),
        Facts(items=[Fact(label="", value="")]),
        Image(alt="chart", title="Spend", url=long_url),
        Actions(buttons=[Button(label="Open", url=long_url), Button(label="Go", action="a")]),
    ])
    out = slack_render.message(reply)
    assert out["text"].strip() == "" and out["text"] != ""
    for block in out["blocks"]:
        Block.parse(block).validate_json()
    for node in [n for b in out["blocks"] for n in walk(b)]:
        if node.get("type") in ("mrkdwn", "plain_text"):
            assert node["text"] != "", node
    payload = json.dumps(out)
    assert long_url not in payload and "a" * 2000 not in payload  # left out, not cut
    assert "Chart: Spend" in payload  # the image falls back to its title
    buttons = [el for b in out["blocks"] if b["type"] == "actions" for el in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Go"]


@pytest.mark.parametrize("filler", [2997, 2998, 2999, 3000, 5999])
def test_slack_pieces_never_cut_an_escaped_entity(filler: int) -> None:
    text = "a" * filler + "&<>" * 400
    sections = slack_render.block_kit(Text(text=text))
    pieces = [s["text"]["text"] for s in sections]
    assert "".join(pieces) == slack_render.mrkdwn(text)
    for piece in pieces:
        assert len(piece) <= slack_render.SECTION_TEXT
        assert not re.search(r"&[a-z]{0,3}$", piece), piece[-8:]
        assert not re.match(r"^[a-z]{1,3};", piece), piece[:8]
    [context] = slack_render.block_kit(Context(text=text))
    shown = context["elements"][0]["text"]
    assert len(shown) <= 3000 and not re.search(r"&[a-z]{0,3}…$", shown), shown[-8:]


async def test_modal_state_is_a_key_whatever_its_size(rt) -> None:  # type: ignore[no-untyped-def]
    form = Form(action="grant.outcome", title="Outcome", fields=[
        FormField(name="outcome", label="What did you learn?")], value="x" * 5000)
    state = {"value": form.value, "channel": "D0TOMAS", "ts": "1700000000.000001",
             "ephemeral": False}
    key = await views.remember(rt, state)
    view = slack_render.modal(form, key)
    assert view["private_metadata"] == key and len(key) <= 32
    View(**view).validate_json()  # slack_sdk checks private_metadata's 3,000 characters
    assert await views.recall(rt, key) == state
    assert await views.recall(rt, "forged-key") == {}
    assert await views.recall(rt, "k" * 5000) == {}
    with pytest.raises(ValueError):
        slack_render.modal(form, json.dumps(state))
