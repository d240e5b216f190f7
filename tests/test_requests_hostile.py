"""Hostile requests (issue #22, items 1, 4 and 8) against the real endpoints: nothing of an
unauthenticated request is parsed before its signature or token is checked, bodies have
small limits, odd input gets a clean 4xx or a short answer and never a traceback in the
logs, and Teams emulator mode only answers (and only calls) this computer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.server import build_app
from bot.store.tables import SandboxRequest
from tests.fakes.teams import FakeConnector, TeamsUser
from tests.helpers.cli import tokencoach
from tests.helpers.server import non_loopback_address, serving
from tests.helpers.slack import SECRET, signed_headers
from tests.helpers.teams import TeamsClient, TeamsHarness, teams_harness

TOMAS = "tomas.novak@acme.example"
APP_ID = "9d1a6a4e-3c55-4b0e-8a51-2f1b7f0e4c11"
MiB = 1024 * 1024


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the test, at every level, from every logger."""
    caplog.set_level(logging.DEBUG)
    for name in ("slack_bolt", "tokencoach.slack.bolt", "aiohttp", "botbuilder"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    traced = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert traced == [], [(r.name, r.getMessage()[:200]) for r in traced]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- Slack: verified before parsed ------------------------------------------------------


@pytest.fixture
def bolt_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts Bolt's body parses (its request object parses in its constructor)."""
    from slack_bolt.request import async_request

    calls: list[int] = []
    real = async_request.parse_body

    def spy(body: str, content_type: str | None) -> dict[str, Any]:
        calls.append(len(body))
        return real(body, content_type)

    monkeypatch.setattr(async_request, "parse_body", spy)
    return calls


async def test_forged_slack_requests_are_refused_before_anything_parses_them(
        slack_bot, bolt_parses: list[int], logged) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    marker = f"FORGED-{uuid.uuid4().hex}"
    fields = urlencode({f"f{i}": marker for i in range(20_000)})  # ~1 MiB of fields
    forged = signed_headers(fields, secret="not-the-secret")
    assert (await bot.client.post(fields, headers=forged))[0] in (401, 413)
    small = urlencode({"payload": json.dumps({"type": "block_actions", "x": marker})})
    assert (await bot.client.post(small, headers=signed_headers(small, secret="nope")))[0] == 401
    json_forged = signed_headers("{not json " + marker, secret="nope",
                                 content_type="application/json")
    assert (await bot.client.post("{not json " + marker, headers=json_forged))[0] == 401
    assert bolt_parses == []  # none of it was parsed
    assert bot.fake.calls == []
    # What Slack signs still works, and is parsed once.
    status, _ = await bot.client.command(bot.uid(TOMAS), "help")
    assert status == 200 and len(bolt_parses) == 1
    assert not [r for r in logged.records if marker in r.getMessage() or marker in str(r.__dict__)]
    assert_no_traceback(logged)


async def test_slack_bodies_over_the_limit_get_413_unread(slack_bot, bolt_parses) -> None:  # type: ignore[no-untyped-def]
    from bot.slack.routes import MAX_BODY

    bot = slack_bot
    big = "payload=" + "x" * (MAX_BODY + 1)
    async with bot.http.post(bot.client.url, data=big.encode(),
                             headers=signed_headers(big)) as resp:
        assert resp.status == 413  # even correctly signed: no Slack request is this large

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 64 * 1024

    async with bot.http.post(bot.client.url, data=chunks(),
                             headers=signed_headers("x")) as resp:
        assert resp.status == 413
    assert bolt_parses == [] and bot.fake.calls == []


@pytest.mark.parametrize("timestamp", ["soon", "1700000000.5", "١٧٠٠٠٠٠٠٠٠", "9" * 5000, "-1", ""])
async def test_odd_slack_timestamps_are_401_without_a_traceback(slack_bot, logged,
                                                                 timestamp: str) -> None:  # type: ignore[no-untyped-def]
    body = slack_bot.client.command_body(slack_bot.uid(TOMAS), "")
    headers = signed_headers(body) | {"X-Slack-Request-Timestamp": timestamp}
    async with slack_bot.http.post(slack_bot.client.url, data=body.encode(),
                                   headers={k: v.encode().decode("latin-1")
                                            for k, v in headers.items()}) as resp:
        assert resp.status == 401
    assert_no_traceback(logged)


async def test_odd_slack_signatures_and_bodies_get_a_clean_4xx(slack_bot, logged) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    body = bot.client.command_body(bot.uid(TOMAS), "")
    for signature in ("v0=\u00e9\u00e9", "", "v1=abc", "x" * 5000):
        headers = signed_headers(body) | {"X-Slack-Signature": signature}
        async with bot.http.post(bot.client.url, data=body.encode(), headers={
                k: v.encode().decode("latin-1") for k, v in headers.items()}) as resp:
            assert resp.status == 401, signature
    # Signed by Slack, but not a payload: 400, not a stack trace.
    for raw, ctype in (("{not json", "application/json"), ("[1, 2]", "application/json"),
                       ("payload=%7Bnope", "application/x-www-form-urlencoded")):
        status, _ = await bot.client.post(raw, headers=signed_headers(raw, content_type=ctype))
        assert status == 400, raw
    not_utf8 = b"text=caf\xe9&user_id=U1"
    ts = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + not_utf8, hashlib.sha256)
    async with bot.http.post(bot.client.url, data=not_utf8, headers={
            "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac.hexdigest(),
            "Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 400
    assert_no_traceback(logged)


# --- Teams: authorization and size before parsing ---------------------------------------


@pytest.fixture
async def teams_with_app_id(make_runtime: Callable[..., Any]) -> AsyncIterator[TeamsClient]:
    fake = FakeConnector()
    async with serving(fake.app()) as service_url:
        rt = await make_runtime(microsoft_app_id=APP_ID, microsoft_app_password="s3cret-value",
                                microsoft_app_tenant_id="72f988bf-86f1-41af-91ab-2d7cd011db47")
        async with serving(build_app(rt, background=False)) as base, \
                aiohttp.ClientSession() as http:
            yield TeamsClient(http, f"{base}/api/messages", service_url)
    assert fake.calls == []


async def test_teams_bad_authorization_is_401_before_the_body_is_read(
        teams_with_app_id: TeamsClient, logged) -> None:  # type: ignore[no-untyped-def]
    client = teams_with_app_id
    activity = client.message(TeamsUser(TOMAS, "Tomás Novák"), "tokens", FakeConnector())
    for auth in ("Bearer garbage", "Bearer a.b.c", "Bearer " + "x" * 5_000, "Bearer ey.J9.",
                 "Basic dXNlcjpwYXNz", "Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer  "):
        sent = await client.post(activity, headers={"Content-Type": "application/json",
                                                    "Authorization": auth})
        assert sent.status == 401, auth
    # A header over aiohttp's 8 KiB line limit is refused by its parser: 400, logged quietly.
    sent = await client.post(activity, headers={"Content-Type": "application/json",
                                                "Authorization": "Bearer " + "x" * 10_000})
    assert sent.status == 400
    # A huge body with a bad token: refused on the token, before reading 2 MiB.
    async with client.http.post(client.url, data=b"{" + b" " * 2 * MiB + b"}", headers={
            "Content-Type": "application/json", "Authorization": "Bearer garbage"}) as resp:
        assert resp.status == 401
    assert_no_traceback(logged)


async def test_teams_bodies_over_the_limit_get_413(make_runtime, logged) -> None:  # type: ignore[no-untyped-def]
    from bot.teams.routes import MAX_BODY

    async with teams_harness(make_runtime) as h:
        activity = h.client.message(h.user(TOMAS), "tokens " + "x" * MAX_BODY, h.fake)
        assert (await h.client.post(activity)).status == 413
        for raw in ('{"type": "message", "timestamp": "not a time"}', '"just a string"',
                    "[" * 100_000 + "]" * 100_000):
            async with h.client.http.post(h.client.url, data=raw, headers={
                    "Content-Type": "application/json"}) as resp:
                assert resp.status in (400, 413), raw[:40]
        assert h.fake.calls == []
    assert_no_traceback(logged)


# --- Teams emulator mode: this computer only ----------------------------------------------


@pytest.fixture
async def emulator(make_runtime: Callable[..., Any]) -> AsyncIterator[TeamsHarness]:
    async with teams_harness(make_runtime) as harness:
        yield harness


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
    {"X-Real-IP": "203.0.113.9"}, {"X-Forwarded-Host": "bot.example.com"},
    {"Host": "bot.example.com"},
])
async def test_emulator_mode_refuses_proxied_or_public_host_requests(
        emulator: TeamsHarness, headers: dict[str, str]) -> None:
    h = emulator
    sent = await h.client.post(h.client.message(h.user(TOMAS), "tokens", h.fake),
                               headers={"Content-Type": "application/json", **headers})
    assert sent.status == 403 and "emulator" in str(sent.body)
    assert h.fake.calls == []
    assert (await h.say(TOMAS, "tokens")).status in (200, 201)  # directly: still works


async def test_emulator_mode_never_calls_a_service_url_off_this_computer(emulator) -> None:  # type: ignore[no-untyped-def]
    """The request names a serviceUrl on another address (SSRF): refused, nothing called
    there; and a stored reference to one is never delivered to either."""
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to test with")
    h = emulator
    elsewhere = FakeConnector()
    async with serving(elsewhere.app(), host=address) as outside:
        elsewhere.base_url = outside
        activity = h.client.message(h.user(TOMAS), "tokens", h.fake)
        activity["serviceUrl"] = outside
        sent = await h.client.post(activity)
        assert sent.status == 403 and "loopback serviceUrl" in str(sent.body)
        await h.say(TOMAS, "tokens")  # a real conversation, then its reference points away
        from bot.store.tables import ConversationRef

        async with h.rt.db.session() as s:
            for ref in (await s.scalars(select(ConversationRef))).all():
                ref.reference = {**ref.reference, "service_url": outside}
        from bot.outbox import drain, enqueue
        from bot.reply import simple
        from tests.helpers.surfaces import person_id

        async with h.rt.db.session() as s:
            await enqueue(s, h.rt, kind="nudge_test", target_type="person",
                          target_id=await person_id(h.rt, TOMAS), reply=simple("hi"),
                          key="ssrf-test")
        stats = await drain(h.rt)
        assert stats.failed >= 1
    assert elsewhere.calls == []


# --- odd values inside authenticated requests ---------------------------------------------


@pytest.mark.parametrize("value", ["99999999999999999999:1", "99999999999:1", "2147483648:1",
                                   "\u00b2:1", "1:99999999999999999999", "-1:1"])
async def test_huge_or_odd_ids_in_buttons_get_a_short_answer(slack_bot, logged,
                                                             value: str) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    for action, val in (("sandbox.approve:0", value), ("sandbox.cancel:0", value.split(":")[0]),
                        ("tips.not_now:0", "t|" + value.split(":")[0])):
        status, _ = await bot.client.interact(bot.client.block_action(
            bot.uid(TOMAS), action, val, channel="D0TOMAS", message_ts="1700000000.000001"))
        assert status == 200
    said = " ".join(r.get("text", "") for r in bot.fake.responses)
    assert "Something went wrong" not in said
    assert_no_traceback(logged)


async def test_a_lone_surrogate_or_nul_in_a_form_is_stored_as_valid_text(slack_bot, logged) -> None:  # type: ignore[no-untyped-def]
    """A sandbox request whose purpose holds \\ud800 and NUL (JSON escapes Slack would
    pass on): created, with U+FFFD for the surrogate, no stack trace on either backend."""
    bot = slack_bot
    _, _ = await bot.client.command(bot.uid(TOMAS), "sandbox")
    [opened] = bot.fake.calls_to("views.open")
    purpose = "Build an agent \ud800 that triages\u0000 bug reports"
    payload = bot.client.view_submission(bot.uid(TOMAS), opened["view"], {
        "amount": "120", "purpose": purpose, "duration": "30"})
    body = urlencode({"payload": json.dumps(payload)})  # ensure_ascii: \ud800 as an escape
    status, answer = await bot.client.post(body)
    assert status == 200 and "errors" not in str(answer), answer
    async with bot.rt.db.reader() as s:
        stored = await s.scalar(select(SandboxRequest.purpose))
    assert stored == "Build an agent \ufffd that triages bug reports"
    assert_no_traceback(logged)


async def test_a_lone_surrogate_in_teams_and_the_playground(make_runtime, logged) -> None:  # type: ignore[no-untyped-def]
    async with teams_harness(make_runtime) as h:
        sent = await h.say(TOMAS, "sandbox 120 Build an agent \ud800 that triages bugs")
        assert sent.status in (200, 201)
        async with h.rt.db.reader() as s:
            assert await s.scalar(select(func.count()).select_from(SandboxRequest)) == 1
        async with serving(build_app(h.rt, playground=True, background=False)) as base, \
                aiohttp.ClientSession() as http:
            from tests.helpers.surfaces import person_id

            me = await person_id(h.rt, TOMAS)
            async with http.post(f"{base}/playground/api/send", data=json.dumps(
                    {"as": me, "text": "tips \ud800\u0000 off"}),
                    headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 200
            for who in (10**30, -5):
                async with http.post(f"{base}/playground/api/send", data=json.dumps(
                        {"as": who, "text": "/tokens"}),
                        headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 404
            async with http.post(f"{base}/playground/api/action", data=json.dumps(
                    {"as": me, "action": "sandbox.cancel", "value": "99999999999999999999",
                     "message_id": 10**25}), headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 400
    assert_no_traceback(logged)


# --- app.yaml -----------------------------------------------------------------------------


def test_a_date_like_value_that_is_no_date_is_named_with_its_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "app.yaml"
    config.write_text("org:\n  name: 2026-13-45\npricing:\n  models:\n    - model: gpt-x\n"
                      "      effective_from: 2026-13-45\n      input: 1\n      output: 2\n")
    url = f"sqlite:///{tmp_path}/tokencoach.db"  # never the repository's default file
    for args in (("check", "--offline"), ("digest", "--dry-run"), ("db", "current")):
        result = tokencoach(*args, config=config, database_url=url)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert f"{config}:6: pricing.models[0].effective_from: " in result.stderr, result.stderr
    config.write_text("org:\n  name: 2026-13-45\n")  # a name may look like anything
    result = tokencoach("check", "--offline", config=config, database_url=url)
    assert "config" in result.stdout and "Invalid configuration" not in result.stderr
    assert "Traceback" not in result.stderr


# --- no body in the logs ------------------------------------------------------------------


@pytest.mark.slow
async def test_no_request_body_reaches_the_logs_even_at_debug(rt, fake_slack) -> None:  # type: ignore[no-untyped-def]
    """A real `serve --log-level DEBUG`: forged and genuine Slack requests, a Teams
    emulator request; the bodies' markers never appear in anything it logged."""
    from tests.helpers.processes import clean_env, serve_process
    from tests.helpers.slack import SECRET, TOKEN, SlackClient

    env = clean_env(DATABASE_URL=rt.env.database_url, SLACK_BOT_TOKEN=TOKEN,
                    SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=f"{fake_slack.base_url}/api/",
                    TOKENCOACH_TEAMS_EMULATOR="1")
    markers = [f"BODY-MARKER-{i}-{uuid.uuid4().hex}" for i in range(6)]
    async with serve_process(env, "--no-scheduler", log_level="DEBUG") as (base, proc), \
            aiohttp.ClientSession() as http:
        assert proc.stderr is not None
        # Read as it comes: debug logging fills a pipe's buffer, and a full pipe blocks.
        reader = asyncio.create_task(asyncio.to_thread(proc.stderr.read))
        slack = SlackClient(http, base, fake_slack.base_url)
        forged = urlencode({"text": markers[0], **{f"f{i}": "x" for i in range(1000)}})
        await slack.post(forged, headers=signed_headers(forged, secret="nope"))
        await slack.post("{" + markers[1], headers=signed_headers(
            "{" + markers[1], secret="nope", content_type="application/json"))
        await slack.command(fake_slack.user_id(TOMAS), f"frobnicate {markers[2]}")
        event = json.dumps({"type": "event_callback", "event_id": markers[3],
                            "event": {"type": "app_mention", "text": markers[3]}})
        await slack.post(event, headers=signed_headers(event, content_type="application/json"))
        unknown = urlencode({"payload": json.dumps({"type": "shortcut", "x": markers[4]})})
        await slack.post(unknown)
        connector = FakeConnector()
        async with serving(connector.app()) as service_url:
            teams = TeamsClient(http, f"{base}/api/messages", service_url)
            await teams.post(teams.message(TeamsUser(TOMAS, "T"), f"tokens {markers[5]}",
                                           connector))
        await asyncio.sleep(0.5)
        proc.terminate()
        err = await asyncio.wait_for(reader, timeout=30)
    assert "request" in err  # it did log at debug level
    leaked = [m for m in markers if m in err]
    assert leaked == [], err[-3000:]
    assert "Traceback" not in err
