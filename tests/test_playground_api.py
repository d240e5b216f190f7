"""The playground's JSON API over real HTTP: who may reach it, who sees what, and how
click results are applied (a form opened from a card updates that card in place)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.directory import person_by_email
from bot.outbox import drain
from bot.runtime import Runtime
from bot.server import build_app
from bot.store.tables import PlaygroundMessage, Team
from tests.helpers.server import non_loopback_address, serving

TOMAS = "tomas.novak@acme.example"
PRIYA = "priya.raman@acme.example"
AISHA = "aisha.bello@acme.example"


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str):
        self.http, self.base = http, base

    async def post(self, path: str, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
        async with self.http.post(f"{self.base}/playground/api/{path}", json=body,
                                  headers=headers) as resp:
            return resp.status, await resp.json()

    async def read(self, who: int, conversation: str) -> list[dict[str, Any]]:
        status, body = await self.post("messages", {"as": who, "conversation": conversation})
        assert status == 200, body
        return list(body["messages"])


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[Client]:
    async with serving(build_app(rt, playground=True, background=False)) as base, \
            aiohttp.ClientSession() as http:
        yield Client(http, base)


async def ids(rt: Runtime, *emails: str) -> list[int]:
    async with rt.db.reader() as s:
        people = [await person_by_email(s, e) for e in emails]
    return [p.id for p in people if p is not None]


async def test_page_is_served_with_a_strict_content_security_policy(client: Client) -> None:
    async with client.http.get(f"{client.base}/") as resp:
        assert resp.status == 200
        page = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
    assert "Local test workspace" in page and "not connected to Slack or Microsoft Teams" in page
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    async with client.http.get(f"{client.base}/playground/static/../routes.py") as resp:
        assert resp.status == 404


@pytest.mark.parametrize("headers", [
    {"Host": "evil.example:3978"},  # a DNS-rebinding page
    {"X-Forwarded-For": "203.0.113.9"},  # forwarded by a proxy
    {"Forwarded": "for=203.0.113.9"},
    {"Origin": "http://evil.example"},  # a cross-site script
])
async def test_requests_that_did_not_come_from_this_machine_are_refused(
        rt: Runtime, client: Client, headers: dict[str, str]) -> None:
    tomas, = await ids(rt, TOMAS)
    status, body = await client.post("send", {"as": tomas, "text": "/tokens"}, **headers)
    assert status == 403, body
    async with client.http.get(f"{client.base}/", headers=headers) as resp:
        assert resp.status == 403 or "Origin" in headers  # a GET may carry any Origin
    assert await client.read(tomas, f"dm:{tomas}") == []


async def test_a_cross_site_form_post_is_refused(rt: Runtime, client: Client) -> None:
    tomas, = await ids(rt, TOMAS)
    async with client.http.post(f"{client.base}/playground/api/send",
                                data=f'{{"as": {tomas}, "text": "/tokens"}}',
                                headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 403
    assert await client.read(tomas, f"dm:{tomas}") == []


async def test_a_client_on_another_address_is_refused(rt: Runtime) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to test from")
    runner = web.AppRunner(build_app(rt, playground=True, background=False))
    await runner.setup()
    site = web.TCPSite(runner, address, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://{address}:{port}/", headers={"Host": "127.0.0.1"}) as resp:
            assert resp.status == 403
            assert "only answers this computer" in (await resp.json())["error"]
    finally:
        await runner.cleanup()


async def test_bad_input_gets_a_clear_answer(rt: Runtime, client: Client) -> None:
    tomas, priya = await ids(rt, TOMAS, PRIYA)
    assert (await client.post("messages", {"as": tomas, "conversation": f"dm:{priya}"}))[0] == 403
    assert (await client.post("messages", {"as": 99999}))[0] == 404
    assert (await client.post("messages", {"conversation": "team:1"}))[0] == 400
    assert (await client.post("send", {"as": tomas, "text": "   "}))[0] == 400
    assert (await client.post("run-due", {"at": "next tuesday"}))[0] == 400
    assert (await client.post("action", {"as": tomas, "action": "sandbox.approve",
                                         "message_id": "1"}))[0] == 400
    async with client.http.post(f"{client.base}/playground/api/send", data="{not json",
                                headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400


async def test_channel_commands_are_ephemeral_and_chat_is_shared(rt: Runtime,
                                                                  client: Client) -> None:
    tomas, aisha = await ids(rt, TOMAS, AISHA)
    async with rt.db.reader() as s:
        team_id = await s.scalar(select(Team.id).where(Team.key == "platform"))
    channel = f"team:{team_id}"
    assert (await client.post("send", {"as": tomas, "conversation": channel,
                                       "text": "/tokens help"}))[0] == 200
    assert (await client.post("send", {"as": tomas, "conversation": channel,
                                       "text": "hello <b>team</b>"}))[0] == 200
    mine = await client.read(tomas, channel)
    theirs = await client.read(aisha, channel)
    assert len(mine) == 3 and "tokencoach commands" in mine[1]["html"]
    assert "Only visible to you" in mine[0]["html"] and "Only visible to you" in mine[1]["html"]
    assert len(theirs) == 1 and "hello &lt;b&gt;team&lt;/b&gt;" in theirs[0]["html"]
    # Messages the page already shows, unchanged, are not sent again.
    status, body = await client.post("messages", {
        "as": tomas, "conversation": channel, "known": {str(m["id"]): m["etag"] for m in mine}})
    assert status == 200 and body["messages"] == [] and len(body["ids"]) == 3


async def test_deny_form_updates_the_card_it_was_opened_from(rt: Runtime,
                                                              client: Client) -> None:
    tomas, priya, aisha = await ids(rt, TOMAS, PRIYA, AISHA)
    status, _ = await client.post("send", {"as": tomas, "text": "tokens sandbox 300 Build an "
                                                                "agent that triages bug reports"})
    assert status == 200
    await drain(rt)
    card, = [m for m in await client.read(priya, f"dm:{priya}")
             if "Sandbox budget request #1" in m["html"]]
    where = {"as": priya, "conversation": f"dm:{priya}", "message_id": card["id"]}

    # Someone else cannot click a button on Priya's card (it is not in their conversation).
    status, _ = await client.post("action", {**where, "as": aisha, "conversation": f"dm:{aisha}",
                                             "action": "sandbox.deny", "value": "1:1"})
    assert status == 404

    status, opened = await client.post("action", {**where, "action": "sandbox.deny",
                                                  "value": "1:1"})
    assert status == 200 and opened["form"]["message_id"] == card["id"]
    assert 'data-action="sandbox.deny_submit"' in opened["form"]["html"]
    status, refused = await client.post("action", {**where, "action": "sandbox.deny_submit",
                                                   "value": "1:1", "form": {"reason": "no"}})
    assert refused["errors"]["reason"]
    status, _ = await client.post("action", {**where, "action": "sandbox.deny_submit",
                                             "value": "1:1",
                                             "form": {"reason": "Finish the <pilot> first"}})
    assert status == 200
    after = [m for m in await client.read(priya, f"dm:{priya}") if m["id"] == card["id"]]
    assert "Denied" in after[0]["html"] and "Finish the &lt;pilot&gt; first" in after[0]["html"]
    assert "<button" not in after[0]["html"]
    await drain(rt)
    async with rt.db.reader() as s:
        cards = (await s.scalars(select(PlaygroundMessage).where(
            PlaygroundMessage.conversation == f"dm:{priya}"))).all()
    assert len(cards) == 1  # replaced in place, by the click and by the outbox update alike
    told = await client.read(tomas, f"dm:{tomas}")
    assert any("Sandbox request #1 denied" in m["html"] for m in told)
