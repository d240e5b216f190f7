"""Faults: kill -9 mid-work, the database restarting under load, slow platforms.
After each, the store is exact: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from decimal import Decimal

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.store.tables import OutboxMessage, SandboxGrant
from bot.timeutil import utcnow
from tests.helpers.approvals import buttons, card_in
from tests.helpers.cli import REPO
from tests.helpers.pgcluster import PrivateCluster
from tests.helpers.processes import clean_env, serve_process
from tests.helpers.slack import SECRET, TOKEN, SlackClient, block_texts
from tests.helpers.usage import totals
from tests.test_digests import MONDAY, crafted_month

pytestmark = pytest.mark.slow


def slack_env(fake) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": f"{fake.base_url}/api/"}


def spawn(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bot", "--log-format", "text", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


async def test_kill_9_during_a_backfill_then_rerun_is_exact(rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "backfill.jsonl"
    expected = Decimal(0)
    with path.open("w") as f:
        for i in range(120_000):
            cost = Decimal(i % 997) / 1000
            expected += cost
            f.write(json.dumps({"occurred_at": f"2026-11-{1 + i % 17:02d}T{i % 24:02d}:00:00Z",
                                "user": "tomas.novak@acme.example", "model": "gpt-4o",
                                "input_tokens": i, "output_tokens": 7, "cost_usd": str(cost),
                                "id": f"bf-{i}"}) + "\n")
    env = clean_env(DATABASE_URL=rt.env.database_url)
    proc = spawn("ingest", str(path), env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (await totals(rt))[0] == 0:
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    partial = (await totals(rt))[0]
    assert 0 < partial < 120_000, "the kill should land mid-backfill"
    again = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bot", "ingest",
                                                     str(path)], cwd=REPO, env=env,
                                    capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    n, raw, daily = await totals(rt)
    assert n == 120_000 and raw == daily == int(expected * 1_000_000)


async def test_kill_9_while_sending_digests_posts_each_once(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await crafted_month(bot.rt)
    bot.fake.delays["chat.postMessage"] = 30  # posted, but the answer never comes in time
    env = clean_env(DATABASE_URL=bot.rt.env.database_url, **slack_env(bot.fake))
    proc = spawn("jobs", "run-due", "--at", MONDAY, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            "weekly AI digest" in str(m["blocks"]) for m in bot.fake.messages()):
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    bot.fake.delays.clear()
    # Restart ten minutes later (the dead sender's lease has run out).
    later = "2026-11-23T17:40:00+00:00"
    result = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "bot", "jobs", "run-due", "--at", later], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for channel in ("C0PLATFORM", "C0SUPPORT", "C0GROWTH"):
        posts = [m for m in bot.fake.messages(channel) if "weekly AI digest" in str(m["blocks"])]
        assert len(posts) == 1, channel
    async with bot.rt.db.reader() as s:
        statuses = (await s.scalars(select(OutboxMessage.status).where(
            OutboxMessage.kind == "digest"))).all()
    assert statuses == ["sent"] * 3


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_kill_9_during_an_approval_yields_one_grant(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    bot.rt.clock.set(utcnow())
    await bot.client.command(bot.uid("tomas.novak@acme.example"),
                             "sandbox 150 Build an agent that triages bugs")
    await bot.deliver()
    card = card_in(bot.fake, "priya.raman@acme.example", 1)
    approve = buttons(card)["Approve"]
    env = clean_env(DATABASE_URL=bot.rt.env.database_url, **slack_env(bot.fake))
    bot.fake.delays["chat.update"] = 30  # the decision is made; the card update hangs
    async with aiohttp.ClientSession() as http:
        async with serve_process(env, "--no-scheduler") as (base, proc):
            client = SlackClient(http, base, bot.fake.base_url)
            payload = client.block_action(bot.uid("priya.raman@acme.example"),
                                          approve["action_id"], approve["value"],
                                          channel=bot.fake.dm_channel("priya.raman@acme.example"),
                                          message_ts=card["ts"])
            click = asyncio.create_task(client.interact(payload))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not bot.fake.calls_to("chat.update"):
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            with pytest.raises(aiohttp.ClientError):
                await click
        bot.fake.delays.clear()
        async with serve_process(env, "--no-scheduler") as (base, _):
            client = SlackClient(http, base, bot.fake.base_url)
            payload = client.block_action(bot.uid("priya.raman@acme.example"),
                                          approve["action_id"], approve["value"],
                                          channel=bot.fake.dm_channel("priya.raman@acme.example"),
                                          message_ts=card["ts"])
            await client.interact(payload)
    bot.rt.clock.set(utcnow())
    await bot.deliver()
    async with bot.rt.db.reader() as s:
        grants = await s.scalar(select(func.count()).select_from(SandboxGrant))
        results = await s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "approval_result"))
    assert (grants, results) == (1, 1)
    notices = [m for m in bot.fake.messages(bot.fake.dm_channel("tomas.novak@acme.example"))
               if "was approved" in m.get("text", "")]
    assert len(notices) == 1


async def test_slack_timeout_after_posting_is_not_a_double_post(make_runtime, fake_slack,
                                                                base_config) -> None:  # type: ignore[no-untyped-def]
    from bot.outbox import drain, enqueue
    from bot.platforms import attach_deliverers
    from bot.reply import simple
    from tests.conftest import with_overrides

    cfg = with_overrides(base_config, server={"request_timeout_seconds": 1})
    rt = await make_runtime(config=cfg, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=f"{fake_slack.base_url}/api/")
    attach_deliverers(rt)
    async with rt.db.session() as s:
        await enqueue(s, rt, kind="digest", target_type="team", target_id=1,
                      reply=simple("hello team"), key="timeout-test")
    fake_slack.delays["chat.postMessage"] = 2.5  # longer than the client's 1 s timeout
    first = await drain(rt)
    assert first.retried == 1 and len(fake_slack.messages("C0PLATFORM")) == 1
    fake_slack.delays.clear()
    rt.clock.advance(minutes=5)
    second = await drain(rt)
    assert second.recovered == 1 and second.sent == 1
    assert len(fake_slack.messages("C0PLATFORM")) == 1  # found, not posted again
    assert len(fake_slack.calls_to("conversations.history")) == 1


async def test_postgres_restart_under_load_fails_fast_and_recovers(fake_slack) -> None:  # type: ignore[no-untyped-def]
    cluster = PrivateCluster()
    cluster.init()
    cluster.start()
    try:
        url = cluster.url()
        env = clean_env(DATABASE_URL=url, **slack_env(fake_slack))
        up = subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        tomas = fake_slack.user_id("tomas.novak@acme.example")
        async with serve_process(env, "--no-scheduler") as (base, _), \
                aiohttp.ClientSession() as http:
            client = SlackClient(http, base, fake_slack.base_url)

            async def ask() -> tuple[float, str]:
                started = time.monotonic()
                status, body = await client.command(tomas, "")
                assert status == 200
                return time.monotonic() - started, " ".join(block_texts(body["blocks"]))

            took, said = await ask()
            assert "Your AI budget" in said
            await asyncio.to_thread(cluster.stop)
            during = await asyncio.gather(*(ask() for _ in range(8)))
            for took, said in during:
                assert took < 3.0, "requests must fail fast while the database is down"
                assert "can't reach my database" in said
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 503
            await asyncio.to_thread(cluster.start)
            deadline = time.monotonic() + 20
            said = ""
            while time.monotonic() < deadline and "Your AI budget" not in said:
                _, said = await ask()
                await asyncio.sleep(0.2)
            assert "Your AI budget" in said  # recovered by itself, no restart
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
    finally:
        cluster.destroy()


