"""Two `serve` replicas and a `worker` on one PostgreSQL, all running the scheduler:
traffic is split, every scheduled message goes out exactly once, and killing a replica
leaves the others serving."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select

from bot.scheduling.claims import first_seen
from bot.scheduling.registry import all_jobs
from bot.store.tables import JobClaim, OutboxMessage
from bot.timeutil import utcnow
from tests.helpers.cli import REPO
from tests.helpers.processes import clean_env, serve_process, wait_healthy
from tests.helpers.server import free_port
from tests.helpers.slack import SECRET, TOKEN, SlackClient, block_texts

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgresql"])]
CHANNELS = ("C0PLATFORM", "C0SUPPORT", "C0GROWTH")


def digest_posts(fake, channel: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [m for m in fake.messages(channel) if "weekly AI digest" in str(m["blocks"])]


async def test_replicas_and_a_worker_share_the_work_exactly_once(rt, fake_slack) -> None:  # type: ignore[no-untyped-def]
    env = clean_env(DATABASE_URL=rt.env.database_url, SLACK_BOT_TOKEN=TOKEN,
                    SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=f"{fake_slack.base_url}/api/")
    seeded = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "bot", "demo", "--days", "21"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    # The bot ran before and was down over last Monday (a fresh install would catch up
    # nothing): on start the processes catch Monday's digests up, between them once.
    await first_seen(rt.db, list(all_jobs()), now=utcnow() - timedelta(days=8))
    worker_port = free_port()
    worker = subprocess.Popen([sys.executable, "-m", "bot", "worker", "--port",
                               str(worker_port)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_healthy(f"http://127.0.0.1:{worker_port}", worker)  # type: ignore[arg-type]
        async with serve_process(env) as (a, proc_a), serve_process(env) as (b, _), \
                aiohttp.ClientSession() as http:
            clients = [SlackClient(http, a, fake_slack.base_url),
                       SlackClient(http, b, fake_slack.base_url)]
            people = [p.email for p in rt.config.directory.people][:20]

            async def ask(i: int, client: SlackClient) -> str:
                status, body = await client.command(fake_slack.user_id(people[i % 20]), "")
                assert status == 200
                return " ".join(block_texts(body.get("blocks", [])))

            answers = await asyncio.gather(*(ask(i, clients[i % 2]) for i in range(40)))
            assert all("AI budget" in a for a in answers)
            # The startup catch-up posts last Monday's digests (late) and the admin digest.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not all(
                    digest_posts(fake_slack, c) for c in CHANNELS):
                await asyncio.sleep(0.5)
            await asyncio.sleep(5)  # give a would-be duplicate the time to show up
            for channel in CHANNELS:
                assert len(digest_posts(fake_slack, channel)) == 1, channel
            # One replica dies; the other keeps answering.
            proc_a.send_signal(signal.SIGKILL)
            proc_a.wait(timeout=10)
            more = await asyncio.gather(*(ask(i, clients[1]) for i in range(10)))
            assert all("AI budget" in a for a in more)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    async with rt.db.reader() as s:
        claims = (await s.scalars(select(JobClaim))).all()
        sent = Counter((await s.scalars(select(OutboxMessage.dedupe_key).where(
            OutboxMessage.status == "sent"))).all())
    assert claims and all(c.status in ("done", "running") and c.attempts == 1 for c in claims)
    assert {c.job for c in claims} >= {"digests", "admin-digest", "alerts", "approvals"}
    assert all(n == 1 for n in sent.values())
    # The demo's pending request: Priya got its card once.
    priya = fake_slack.dm_channel("priya.raman@acme.example")
    cards = [m for m in fake_slack.messages(priya) if "Sandbox budget request" in str(m["blocks"])]
    assert len(cards) == len({str(c["blocks"]) for c in cards})
