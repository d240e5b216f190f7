"""Slack identity binding and delivery faults (issue #22, items 5 and 7), through the
real /slack/events endpoint and the real outbox, against the fake Slack Web API."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from sqlalchemy import select

from bot.outbox import drain, enqueue
from bot.platforms import attach_deliverers
from bot.reply import simple
from bot.slack.client import ConnectionRetry, ServerErrorRetry
from bot.store.tables import AuditEntry, OutboxMessage, Person
from tests.conftest import with_overrides
from tests.helpers.slack import SECRET, TOKEN

TOMAS = "tomas.novak@acme.example"
NOT_FOUND = "couldn't find you in the tokencoach directory"


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused user ids are remembered per process for a few minutes: start clean."""
    from bot.slack import people

    monkeypatch.setattr(people, "_UNKNOWN", {})


async def linked_id(rt, email: str) -> str | None:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        return await s.scalar(select(Person.slack_user_id).where(Person.email == email))


async def refusals(rt) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        rows = (await s.scalars(select(AuditEntry).where(
            AuditEntry.action == "slack.link_refused").order_by(AuditEntry.id))).all()
    return [{"subject": r.subject, **(r.detail or {})} for r in rows]


async def answer_text(bot, uid: str) -> str:  # type: ignore[no-untyped-def]
    status, body = await bot.client.command(uid, "")
    assert status == 200
    return str(body.get("text", "")) + str(body.get("blocks", ""))


@pytest.mark.parametrize("uid, account, reason", [
    ("U9FOREIGN", {"team_id": "T0OTHER"}, "another workspace"),
    ("U9DELETED", {"deleted": True}, "deactivated"),
    ("U9GUEST01", {"is_restricted": True}, "guest"),
    ("U9GUEST02", {"is_ultra_restricted": True}, "guest"),
])
async def test_accounts_the_company_does_not_vouch_for_are_not_linked(
        slack_bot, uid: str, account: dict[str, Any], reason: str) -> None:  # type: ignore[no-untyped-def]
    """A Slack account with a directory person's email, but from another workspace, a
    deactivated one or a guest: refused (no figures), not linked, audited."""
    slack_bot.fake.users[uid] = TOMAS
    slack_bot.fake.accounts[uid] = account
    assert NOT_FOUND in await answer_text(slack_bot, uid)
    assert await linked_id(slack_bot.rt, TOMAS) is None
    [refused] = await refusals(slack_bot.rt)
    assert refused["subject"] == f"slack_user:{uid}" and reason in refused["reason"]
    assert refused["email"] == TOMAS


async def test_a_person_linked_to_one_slack_account_is_not_moved_to_another(slack_bot) -> None:  # type: ignore[no-untyped-def]
    own = slack_bot.uid(TOMAS)
    assert NOT_FOUND not in await answer_text(slack_bot, own)
    assert await linked_id(slack_bot.rt, TOMAS) == own
    slack_bot.fake.users["U9IMPOSTOR"] = TOMAS  # e.g. a second account given his address
    assert NOT_FOUND in await answer_text(slack_bot, "U9IMPOSTOR")
    assert await linked_id(slack_bot.rt, TOMAS) == own  # his DMs still go to him
    [refused] = await refusals(slack_bot.rt)
    assert refused["linked_to"] == own and "already linked" in refused["reason"]


async def test_listed_workspaces_and_grid_organizations_are_linked(make_runtime, fake_slack,
                                                                   base_config) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    from bot.server import build_app
    from tests.conftest import SlackBot
    from tests.helpers.server import serving
    from tests.helpers.slack import SlackClient

    cfg = with_overrides(base_config, slack={"allowed_team_ids": ["T0SISTER", "E0ACMEORG"]})
    rt = await make_runtime(config=cfg, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=f"{fake_slack.base_url}/api/")
    priya = "priya.raman@acme.example"
    fake_slack.users.update({"U9SISTER1": TOMAS, "U9GRIDUSR": priya})
    fake_slack.accounts["U9SISTER1"] = {"team_id": "T0SISTER"}
    fake_slack.accounts["U9GRIDUSR"] = {"team_id": "T0ELSE", "enterprise_user": {
        "enterprise_id": "E0ACMEORG", "teams": ["T0ELSE"]}}
    async with serving(build_app(rt, background=False)) as base, \
            aiohttp.ClientSession() as http:
        bot = SlackBot(rt=rt, base=base, fake=fake_slack,
                       client=SlackClient(http, base, fake_slack.base_url), http=http)
        assert NOT_FOUND not in await answer_text(bot, "U9SISTER1")
        assert NOT_FOUND not in await answer_text(bot, "U9GRIDUSR")
    assert await linked_id(rt, TOMAS) == "U9SISTER1"
    assert await linked_id(rt, priya) == "U9GRIDUSR"
    assert await refusals(rt) == []


async def test_delivery_does_not_link_a_guest_found_by_email(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    aisha = "aisha.bello@acme.example"
    bot.fake.accounts[bot.uid(aisha)] = {"is_restricted": True}
    async with bot.rt.db.session() as s:
        pid = await s.scalar(select(Person.id).where(Person.email == aisha))
        await enqueue(s, bot.rt, kind="nudge_test", target_type="person", target_id=pid,
                      reply=simple("hello"), key="guest-test")
    stats = await bot.deliver()
    assert stats.unreachable == 1 and bot.fake.messages(bot.fake.dm_channel(aisha)) == []
    assert await linked_id(bot.rt, aisha) is None
    assert "guest" in (await refusals(bot.rt))[0]["reason"]


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_5xx_after_slack_posted_is_looked_up_not_posted_again(
        make_runtime, fake_slack, status: int) -> None:  # type: ignore[no-untyped-def]
    """Slack posts, then answers 5xx: the outbox treats the outcome as unknown, finds the
    message by its metadata, and never posts it twice (the probe saw 9 doubles in 10)."""
    rt = await make_runtime(slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=f"{fake_slack.base_url}/api/")
    attach_deliverers(rt)
    async with rt.db.session() as s:
        for team_id in (1, 2):
            await enqueue(s, rt, kind="digest", target_type="team", target_id=team_id,
                          reply=simple(f"hello team {team_id}"), key=f"5xx-{team_id}")
    fake_slack.fail_after_acting("chat.postMessage", status, status)
    first = await drain(rt)
    assert first.retried == 2 and first.sent == 0
    rt.clock.advance(minutes=5)
    second = await drain(rt)
    assert second.recovered == 2 and second.sent == 2
    posted = fake_slack.messages()
    assert sorted(m["text"] for m in posted) == ["hello team 1", "hello team 2"]
    assert len(fake_slack.calls_to("chat.postMessage")) == 2
    async with rt.db.reader() as s:
        assert set((await s.scalars(select(OutboxMessage.status))).all()) == {"sent"}


async def test_posts_are_never_retried_in_process_once_slack_may_have_them() -> None:
    def req(method: str) -> HttpRequest:
        return HttpRequest(method="POST", url=f"https://slack.com/api/{method}", headers={})

    server_error = HttpResponse(status_code=500, headers={}, body={})
    retry = ServerErrorRetry(max_retry_count=1)
    for method in ("chat.postMessage", "chat.postEphemeral"):
        assert not await retry._can_retry_async(state=None, request=req(method),  # type: ignore[arg-type]
                                                response=server_error)
    assert await retry._can_retry_async(state=None, request=req("views.open"),  # type: ignore[arg-type]
                                        response=server_error)
    import aiohttp

    dropped = aiohttp.ServerDisconnectedError()
    connection = ConnectionRetry(max_retry_count=2)
    assert not await connection._can_retry_async(state=None, request=req("chat.postMessage"),  # type: ignore[arg-type]
                                                 error=dropped)
    assert await connection._can_retry_async(state=None, request=req("users.info"),  # type: ignore[arg-type]
                                             error=dropped)
