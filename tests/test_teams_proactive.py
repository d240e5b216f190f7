"""Proactive messages to Teams: references captured on install and on every message, then
outbox rows (bot.outbox.enqueue + drain) delivered through them to the fake connector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.outbox import enqueue
from bot.reply import Actions, Button, Context, Header, Image, Reply, Text
from bot.store.tables import Chart, ConversationRef, OutboxMessage, Person, Team
from tests.conftest import with_overrides
from tests.fakes.teams import TENANT
from tests.helpers.teams import TEAM_ID, TeamsHarness, buttons, card_text, teams_harness, walk

TOMAS = "tomas.novak@acme.example"
PRIYA = "priya.raman@acme.example"
AISHA = "aisha.bello@acme.example"
LENA = "lena.fischer@acme.example"
DANA = "dana.okafor@acme.example"  # the admin
PNG = (Path(__file__).resolve().parents[1] / "teams" / "color.png").read_bytes()

NUDGE = Reply(text="You mostly use AI for summaries", blocks=[
    Header(text="A tip for this week"),
    Text(text="Most of your spend is **summarizing documents**. Try delegating a whole "
              "research task to an agent that cites its sources."),
    Actions(buttons=[Button(label="Open tutorial", action="tips.open", value="research-agent",
                            url="https://learn.acme.example/research-agent"),
                     Button(label="Not now", action="tips.not_now", value="1"),
                     Button(label="Stop these tips", action="tips.opt_out", value="1",
                            confirm="Stop personal tips?")]),
])


def digest(chart_id: str | None = None) -> Reply:
    blocks: list[Any] = [Header(text="Platform Engineering · week of Nov 9"),
                         Text(text="Spend **$4,210** this week; agentic share **38%** (+6 pts).")]
    if chart_id:
        blocks.append(Image(chart_id=chart_id, alt="Weekly spend by category",
                            title="Weekly spend by category"))
    blocks.append(Context(text="Channel digests show aggregates only."))
    return Reply(text="Platform Engineering weekly digest", blocks=blocks, visibility="public")


@pytest.fixture
async def teams(make_runtime: Callable[..., Any], base_config: Any
                ) -> AsyncIterator[TeamsHarness]:
    # The platform team's digest goes to the Teams team the tests install the app in.
    teams_cfg = [t.model_dump(mode="json") for t in base_config.directory.teams]
    teams_cfg[0]["channel"]["teams"] = TEAM_ID
    config = with_overrides(base_config, directory={
        **base_config.directory.model_dump(mode="json", exclude={"people_csv"}),
        "teams": teams_cfg})
    async with teams_harness(make_runtime, config=config) as harness:
        yield harness


async def person_id(h: TeamsHarness, email: str) -> int:
    async with h.rt.db.reader() as s:
        return int(await s.scalar(select(Person.id).where(Person.email == email)))


async def team_id(h: TeamsHarness, key: str = "platform") -> int:
    async with h.rt.db.reader() as s:
        return int(await s.scalar(select(Team.id).where(Team.key == key)))


async def queue(h: TeamsHarness, *, kind: str, target_type: str, target_id: int, reply: Reply,
                key: str) -> None:
    async with h.rt.db.session() as s:
        await enqueue(s, h.rt, kind=kind, target_type=target_type, target_id=target_id,
                      reply=reply, key=key)


async def references(h: TeamsHarness) -> dict[str, ConversationRef]:
    async with h.rt.db.reader() as s:
        return {r.key: r for r in (await s.scalars(select(ConversationRef))).all()}


async def outbox(h: TeamsHarness) -> list[OutboxMessage]:
    async with h.rt.db.reader() as s:
        return list((await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def test_install_captures_references_and_welcomes(teams: TeamsHarness) -> None:
    h = teams
    priya, aisha = h.user(PRIYA), h.user(AISHA)
    assert (await h.client.post(h.client.install_personal(priya, h.fake))).status == 201
    welcome = h.dm(PRIYA)[-1]
    assert "tokencoach commands" in card_text(welcome.card)
    # Installed in a team by Priya, with Aisha among the members added.
    await h.client.post(h.client.install_team(priya, members=[aisha]))
    refs = await references(h)
    mine = refs[f"user:{priya.id}"]
    assert mine.person_id == await person_id(h, PRIYA) and mine.active
    assert mine.reference["conversation"] == {"id": h.fake.personal_id(priya), "type": "personal"}
    assert mine.reference["tenant_id"] == TENANT  # kept, though botbuilder drops it
    channel = refs[f"channel:{TEAM_ID}"]
    assert channel.team_id == await team_id(h)
    hello = h.fake.in_conversation(TEAM_ID)[-1]
    assert "weekly AI spend digest here" in card_text(hello.card)
    # Aisha is known from the team roster (her AAD id is stored), but has no 1:1 chat yet.
    theirs = refs[f"user:{aisha.id}"]
    assert theirs.person_id == await person_id(h, AISHA)
    assert theirs.reference["conversation"] is None
    async with h.rt.db.reader() as s:
        assert await s.scalar(select(Person.teams_aad_id).where(Person.email == AISHA)) \
            == aisha.aad


async def test_nudge_opens_a_chat_for_someone_known_from_a_channel(teams: TeamsHarness) -> None:
    h = teams
    await h.client.post(h.client.install_team(h.user(PRIYA), members=[h.user(AISHA)]))
    aisha = await person_id(h, AISHA)
    await queue(h, kind="nudge", target_type="person", target_id=aisha, reply=NUDGE,
                key="test:nudge:1")
    stats = await h.deliver()
    assert stats.sent == 1
    created = h.fake.calls_to("create")
    assert len(created) == 1
    assert created[0].body["members"] == [{"id": h.user(AISHA).id}]
    assert created[0].body["channelData"] == {"tenant": {"id": TENANT}}
    posted = h.dm(AISHA)
    assert len(posted) == 1 and "summarizing documents" in card_text(posted[0].card)
    shown = buttons(posted[0].card)
    assert shown["Open tutorial"] == {"type": "Action.OpenUrl", "title": "Open tutorial",
                                      "url": "https://learn.acme.example/research-agent"}
    assert shown["Not now"]["type"] == "Action.Execute"
    assert shown["Stop these tips"]["type"] == "Action.ShowCard"  # confirm first
    # The chat is remembered: the next message goes straight there.
    await queue(h, kind="nudge", target_type="person", target_id=aisha, reply=NUDGE,
                key="test:nudge:2")
    await h.deliver()
    assert len(h.fake.calls_to("create")) == 1 and len(h.dm(AISHA)) == 2
    rows = await outbox(h)
    assert rows[0].ref["conversation_id"] == h.fake.personal_id(h.user(AISHA))


async def test_digest_goes_to_the_team_channel_with_its_chart(teams: TeamsHarness) -> None:
    h = teams
    await h.client.post(h.client.install_team(h.user(PRIYA)))
    async with h.rt.db.session() as s:
        s.add(Chart(id="wk46-platform", title="Weekly spend", png=PNG, created_at=h.rt.now()))
    await queue(h, kind="digest", target_type="team", target_id=await team_id(h),
                reply=digest("wk46-platform"), key="test:digest:1")
    assert (await h.deliver()).sent == 1
    posted = h.fake.in_conversation(TEAM_ID)[-1]
    assert posted.reply_to is None  # a new post in the channel, not a reply
    assert "agentic share 38%" in card_text(posted.card)
    # No public_url configured: the small PNG rides inline as a data URI.
    image = next(n for n in walk(posted.card) if n.get("type") == "Image")
    assert image["url"].startswith("data:image/png;base64,")
    assert image["altText"] == "Weekly spend by category"


async def test_digest_chart_is_a_signed_link_under_public_url(make_runtime: Any,
                                                              base_config: Any) -> None:
    teams_cfg = [t.model_dump(mode="json") for t in base_config.directory.teams]
    teams_cfg[0]["channel"]["teams"] = TEAM_ID
    config = with_overrides(base_config, server={"public_url": "https://bot.acme.example"},
                            directory={**base_config.directory.model_dump(
                                mode="json", exclude={"people_csv"}), "teams": teams_cfg})
    async with teams_harness(make_runtime, config=config) as h:
        await h.client.post(h.client.install_team(h.user(PRIYA)))
        async with h.rt.db.session() as s:
            s.add(Chart(id="wk46", title="Weekly spend", png=PNG * 20, created_at=h.rt.now()))
        await queue(h, kind="digest", target_type="team", target_id=await team_id(h),
                    reply=digest("wk46"), key="test:digest:2")
        await h.deliver()
        image = next(n for n in walk(h.fake.in_conversation(TEAM_ID)[-1].card)
                     if n.get("type") == "Image")
        assert image["url"].startswith("https://bot.acme.example/charts/wk46.png?exp=")


async def test_chart_too_big_to_inline_becomes_a_line_of_text(teams: TeamsHarness) -> None:
    h = teams
    await h.client.post(h.client.install_team(h.user(PRIYA)))
    async with h.rt.db.session() as s:
        s.add(Chart(id="big", title="Weekly spend", png=PNG * 20, created_at=h.rt.now()))
    await queue(h, kind="digest", target_type="team", target_id=await team_id(h),
                reply=digest("big"), key="test:digest:3")
    await h.deliver()
    card = h.fake.in_conversation(TEAM_ID)[-1].card
    assert not [n for n in walk(card) if n.get("type") == "Image"]
    assert "Chart: Weekly spend by category" in card_text(card)


async def test_403_retires_the_reference_and_tells_admins(teams: TeamsHarness) -> None:
    h = teams
    for email in (PRIYA, DANA):
        await h.client.post(h.client.install_personal(h.user(email), h.fake))
    h.fake.fail("send", 403, code="ConversationBlockedByUser")
    await queue(h, kind="nudge", target_type="person", target_id=await person_id(h, PRIYA),
                reply=NUDGE, key="test:nudge:403")
    stats = await h.deliver()
    assert stats.failed == 1
    failed = [r for r in await outbox(h) if r.status == "failed"]
    assert len(failed) == 1 and "ConversationBlockedByUser" in (failed[0].last_error or "")
    ref = (await references(h))[f"user:{h.user(PRIYA).id}"]
    assert not ref.active and "403" in (ref.retired_reason or "")
    alerts = [m for m in h.dm(DANA) if "could not be delivered" in card_text(m.card)]
    assert len(alerts) == 1 and PRIYA in card_text(alerts[0].card)
    # With the reference retired, the next message is unreachable, not another 403.
    await queue(h, kind="nudge", target_type="person", target_id=await person_id(h, PRIYA),
                reply=NUDGE, key="test:nudge:after")
    assert (await h.deliver()).unreachable == 1
    # Priya writes to the bot again (she unblocked it): the reference comes back.
    await h.say(PRIYA, "tokens help")
    assert (await references(h))[f"user:{h.user(PRIYA).id}"].active


async def test_conversation_not_found_retires_a_channel(teams: TeamsHarness) -> None:
    h = teams
    await h.client.post(h.client.install_team(h.user(PRIYA)))
    h.fake.fail("send", 404, code="ConversationNotFound")
    await queue(h, kind="digest", target_type="team", target_id=await team_id(h),
                reply=digest(), key="test:digest:404")
    assert (await h.deliver()).failed == 1
    assert not (await references(h))[f"channel:{TEAM_ID}"].active


async def test_429_with_retry_after_then_success_delivers_once(teams: TeamsHarness) -> None:
    h = teams
    await h.client.post(h.client.install_personal(h.user(PRIYA), h.fake))
    h.fake.fail("send", 429, retry_after=30)
    await queue(h, kind="nudge", target_type="person", target_id=await person_id(h, PRIYA),
                reply=NUDGE, key="test:nudge:429")
    stats = await h.deliver()
    assert stats.retried == 1 and stats.sent == 0
    row = (await outbox(h))[0]
    assert row.status == "pending"
    assert row.next_attempt_at == h.rt.now() + timedelta(seconds=30)  # Retry-After honoured
    assert (await h.deliver()).sent == 0  # not due yet
    h.rt.clock.advance(seconds=31)
    assert (await h.deliver()).sent == 1
    nudges = [m for m in h.dm(PRIYA) if "summarizing documents" in card_text(m.card)]
    tries = [c for c in h.fake.calls_to("send") if "summarizing" in str(c.body)]
    assert len(nudges) == 1 and len(tries) == 2


async def test_5xx_is_retried_with_backoff(teams: TeamsHarness) -> None:
    h = teams
    await h.client.post(h.client.install_personal(h.user(PRIYA), h.fake))
    h.fake.fail("send", 500, 503)
    await queue(h, kind="nudge", target_type="person", target_id=await person_id(h, PRIYA),
                reply=NUDGE, key="test:nudge:5xx")
    for _ in range(4):
        await h.deliver()
        h.rt.clock.advance(minutes=5)
    rows = await outbox(h)
    assert [r.status for r in rows] == ["sent"] and rows[0].attempts == 3
    assert len([m for m in h.dm(PRIYA) if "summarizing" in card_text(m.card)]) == 1


async def test_no_reference_means_unreachable(teams: TeamsHarness) -> None:
    h = teams
    await queue(h, kind="nudge", target_type="person", target_id=await person_id(h, LENA),
                reply=NUDGE, key="test:nudge:lena")
    await queue(h, kind="digest", target_type="team", target_id=await team_id(h, "support"),
                reply=digest(), key="test:digest:support")
    stats = await h.deliver()
    assert stats.sent == 0 and stats.failed == 0
    rows = {r.dedupe_key: r for r in await outbox(h)}
    for key in ("test:nudge:lena@teams", "test:digest:support@teams"):
        assert rows[key].status == "unreachable"
    assert "not installed or messaged" in (rows["test:nudge:lena@teams"].last_error or "")
    assert "channel.teams" in (rows["test:digest:support@teams"].last_error or "")
    # Reachable nowhere, so admins are told (here they can't be reached either).
    assert {r.kind for r in rows.values()} == {"nudge", "digest", "admin_alert"}
    assert h.fake.calls == []


async def test_removing_the_app_retires_its_references(teams: TeamsHarness) -> None:
    h = teams
    priya = h.user(PRIYA)
    await h.client.post(h.client.install_team(priya))
    removed = h.client.install_team(priya)
    removed["membersRemoved"] = removed.pop("membersAdded")
    assert (await h.client.post(removed)).status == 201
    channel = (await references(h))[f"channel:{TEAM_ID}"]
    assert not channel.active and channel.retired_reason == "the bot was removed"
    await queue(h, kind="digest", target_type="team", target_id=await team_id(h),
                reply=digest(), key="test:digest:removed")
    assert (await h.deliver()).unreachable >= 1
    assert not [c for c in h.fake.calls_to("send") if "weekly digest" in str(c.body)]


async def test_a_message_reaches_someone_who_installs_the_app_later(teams: TeamsHarness) -> None:
    h = teams
    await queue(h, kind="nudge", target_type="person", target_id=await person_id(h, LENA),
                reply=NUDGE, key="test:nudge:later")
    await h.deliver()
    assert {r.dedupe_key: r for r in await outbox(h)}[
        "test:nudge:later@teams"].status == "unreachable"
    await h.client.post(h.client.install_personal(h.user(LENA), h.fake))
    await h.deliver()
    rows = {r.dedupe_key: r for r in await outbox(h)}
    assert rows["test:nudge:later@teams"].status == "sent"
    assert len([m for m in h.dm(LENA) if "summarizing" in card_text(m.card)]) == 1


async def test_tutorial_button_is_a_tracked_link_under_public_url(make_runtime: Any,
                                                                  base_config: Any) -> None:
    import aiohttp

    from bot.store.tables import TipEvent

    config = with_overrides(base_config, server={"public_url": "https://bot.acme.example"})
    async with teams_harness(make_runtime, config=config) as h:
        await h.client.post(h.client.install_personal(h.user(LENA), h.fake))
        await queue(h, kind="nudge", target_type="person", target_id=await person_id(h, LENA),
                    reply=NUDGE, key="test:nudge:tracked")
        await h.deliver()
        card = [m for m in h.dm(LENA) if "summarizing" in card_text(m.card)][-1].card
        link = buttons(card)["Open tutorial"]["url"]
        assert link.startswith("https://bot.acme.example/go?")
        local = h.client.url.removesuffix("/api/messages") + link.removeprefix(
            "https://bot.acme.example")
        async with aiohttp.ClientSession() as http:
            async with http.get(local, allow_redirects=False) as resp:
                assert resp.status == 302
                assert resp.headers["Location"] == "https://learn.acme.example/research-agent"
            async with http.get(local.replace("sig=", "sig=0"), allow_redirects=False) as resp:
                assert resp.status == 403
        async with h.rt.db.reader() as s:
            events = (await s.execute(select(TipEvent.event, TipEvent.tutorial_id))).all()
        assert [tuple(e) for e in events] == [("opened", "research-agent")]


async def test_digest_stays_in_the_configured_channel(teams: TeamsHarness) -> None:
    from tests.helpers.teams import CHANNEL_ID

    h = teams
    await h.client.post(h.client.install_team(h.user(PRIYA)))
    # Later someone talks to the bot in another channel of the same Teams team.
    await h.say(AISHA, "tokens help", in_channel=True)
    await queue(h, kind="digest", target_type="team", target_id=await team_id(h),
                reply=digest(), key="test:digest:channel")
    assert (await h.deliver()).sent == 1
    marker = "agentic share 38%"
    assert [p for p in h.fake.in_conversation(TEAM_ID) if marker in card_text(p.card)]
    assert not [p for p in h.fake.all_posted()
                if p.conversation.startswith(CHANNEL_ID) and marker in card_text(p.card)]
