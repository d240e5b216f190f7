"""Property-based fuzzing of the command grammar, button payloads and the ingest webhook
through the real HTTP endpoints: never a 500, never a traceback; a reply or a 4xx."""

from __future__ import annotations

import json
import shutil
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config.env import Env
from bot.directory import sync_directory
from bot.runtime import Runtime
from bot.server import build_app
from bot.store import Database
from tests.conftest import with_overrides
from tests.fakes.slack import FakeSlack
from tests.helpers.server import free_port
from tests.helpers.slack import SECRET, TOKEN, SlackClient, signed_headers
from tests.helpers.threaded import ThreadedApps

pytestmark = pytest.mark.slow
INGEST_TOKEN = "fuzz-ingest-token-0123456789"
WORDS = ["", "tokens", "/tokens", "sandbox", "help", "history", "requests", "tips", "on", "off",
         "team", "admin", "balance", "audit", "unattributed", "300", "0", "-1", "1e9", "12.345",
         "$50", "NaN", "∞", "<!channel>", "**", "`", "\n", "\t", "'; DROP TABLE people; --",
         "support", "platform", "dana.okafor@acme.example", "🤖", "\u202e", "\x00"]


@pytest.fixture(scope="module")
def bot(templates: dict[str, str], base_config: Any, tmp_path_factory: Any) -> Any:
    db_file = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    shutil.copyfile(templates["sqlite"], db_file)
    fake = FakeSlack(users={f"U{i:04d}": p.email for i, p in
                            enumerate(base_config.directory.people)})
    cfg = with_overrides(base_config, server={"commands_per_minute": 1_000_000})

    fake_port = free_port()
    fake.base_url = f"http://127.0.0.1:{fake_port}"

    async def factory() -> list[Any]:
        url = f"sqlite+aiosqlite:///{db_file}"
        rt = Runtime(config=cfg, env=Env(
            database_url=url, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
            slack_api_url=f"{fake.base_url}/api/",
            source={"TOKENCOACH_INGEST_TOKEN": INGEST_TOKEN}), db=Database(url))
        await sync_directory(rt)
        return [(fake.app(), fake_port), (build_app(rt, background=False), 0)]

    with ThreadedApps(factory) as apps:
        yield {"base": apps.bases[1], "fake": fake}


def signed_post(base: str, body: str, content_type: str = "application/x-www-form-urlencoded"
                ) -> httpx.Response:
    return httpx.post(f"{base}/slack/events", content=body.encode(),
                      headers=signed_headers(body, content_type=content_type), timeout=30)


@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join),
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=12)), max_size=5).map(" ".join),
))
def test_command_grammar_never_breaks(bot: Any, text: str) -> None:
    client = SlackClient(None, bot["base"], bot["fake"].base_url)  # type: ignore[arg-type]
    body = client.command_body("U0002", text)
    resp = signed_post(bot["base"], body)
    assert resp.status_code == 200, (text, resp.text)
    assert "Traceback" not in resp.text
    if resp.text and resp.headers.get("content-type", "").startswith("application/json"):
        data = resp.json()
        assert data.get("blocks") or data.get("text") or data == {}


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(action=st.one_of(st.text(max_size=80), st.sampled_from(
    ["sandbox.approve", "sandbox.deny", "sandbox.cancel", "tips.open", "tips.stop",
     "grant.outcome_form", "sandbox.approve:3", "balance.refresh"])),
       value=st.one_of(st.text(max_size=80), st.from_regex(r"-?\d{1,12}:-?\d{1,4}")))
def test_button_payloads_never_break(bot: Any, action: str, value: str) -> None:
    client = SlackClient(None, bot["base"], bot["fake"].base_url)  # type: ignore[arg-type]
    payload = client.block_action("U0002", action, value, channel="D0002", message_ts="1.1")
    resp = signed_post(bot["base"], urlencode({"payload": json.dumps(payload)}))
    assert resp.status_code == 200, (action, value, resp.text)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["occurred_at", "user", "model", "input_tokens", "output_tokens",
                         "cost_usd", "id", "tags", "category", "x"]) | st.text(max_size=8),
        children, max_size=8),
    max_leaves=20)


@settings(max_examples=800, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=400), JSONISH.map(json.dumps),
                      st.lists(JSONISH, max_size=5).map(lambda xs: "\n".join(map(json.dumps, xs)))),
       token=st.sampled_from([INGEST_TOKEN, "", "nope", INGEST_TOKEN + "x"]))
def test_ingest_webhook_never_breaks(bot: Any, body: Any, token: str) -> None:
    data = body if isinstance(body, bytes) else body.encode()
    resp = httpx.post(f"{bot['base']}/ingest/usage", content=data,
                      headers={"Authorization": f"Bearer {token}".strip()}, timeout=30)
    if token != INGEST_TOKEN:
        assert resp.status_code == 401
        return
    assert resp.status_code in (200, 400, 422), (body, resp.status_code, resp.text)
    answer = resp.json()
    assert "error" in answer or {"new", "rejected", "errors"} <= set(answer)


