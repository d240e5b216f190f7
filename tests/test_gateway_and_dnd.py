"""Optional integrations: LiteLLM budget sync for grants, and Slack Do Not Disturb."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot.approvals import flow
from bot.directory import person_by_email
from bot.outbox import drain, enqueue
from bot.platforms import attach_deliverers
from bot.reply import simple
from bot.scheduling.runner import run_job
from bot.store.tables import OutboxMessage, SandboxGrant
from tests.conftest import with_overrides
from tests.helpers.server import serving
from tests.helpers.slack import SECRET, TOKEN

TOMAS, PRIYA = "tomas.novak@acme.example", "priya.raman@acme.example"


async def test_grants_raise_and_restore_the_litellm_budget(make_runtime, base_config) -> None:  # type: ignore[no-untyped-def]
    calls: list[dict[str, Any]] = []
    raw: list[str] = []

    async def user_update(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer sk-litellm-master"
        raw.append(await request.text())
        calls.append(json.loads(raw[-1]))
        return web.json_response({"user_id": calls[-1]["user_id"], "data": {}})

    fake = web.Application()
    fake.router.add_post("/user/update", user_update)
    async with serving(fake) as litellm:
        cfg = with_overrides(base_config, sandbox={"gateway": {
            "enabled": True, "base_url": litellm, "key_env": "LITELLM_MASTER_KEY"}})
        from bot.config.env import Env

        rt0 = await make_runtime(config=cfg)
        rt = await make_runtime(config=cfg, sync=False, env=Env(
            database_url=rt0.env.database_url, source={"LITELLM_MASTER_KEY": "sk-litellm-master"}))
        async with rt.db.reader() as s:
            tomas, priya = await person_by_email(s, TOMAS), await person_by_email(s, PRIYA)
        req = await flow.create(rt, tomas, amount="250.50", purpose="Build an eval agent here",
                                duration="10")
        await flow.decide(rt, priya, f"{req.id}:1", approve=True)
        await run_job(rt, "approvals")
        assert calls == [{"user_id": TOMAS, "max_budget": 1750.5}]
        assert '"max_budget": 1750.50' in raw[0]  # an exact decimal, no float round trip
        await run_job(rt, "approvals", rt.now() + timedelta(minutes=10))
        assert len(calls) == 1  # synced once
        rt.clock.advance(days=11)  # the grant ends
        await run_job(rt, "approvals")
        assert calls[-1] == {"user_id": TOMAS, "max_budget": 1500.0} and len(calls) == 2
        async with rt.db.reader() as s:
            grant = await s.scalar(select(SandboxGrant))
        assert grant.status == "ended" and grant.gateway_restored_at is not None


async def test_tips_wait_out_slack_do_not_disturb(make_runtime, fake_slack) -> None:  # type: ignore[no-untyped-def]
    rt = await make_runtime(slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=f"{fake_slack.base_url}/api/")
    attach_deliverers(rt)
    uid = fake_slack.user_id(TOMAS)
    now = int(rt.now().timestamp())
    fake_slack.dnd[uid] = {"dnd_enabled": True, "next_dnd_start_ts": now - 600,
                           "next_dnd_end_ts": now + 1800}
    async with rt.db.reader() as s:
        tomas = await person_by_email(s, TOMAS)
    async with rt.db.session() as s:
        await enqueue(s, rt, kind="nudge", target_type="person", target_id=tomas.id,
                      reply=simple("a tip"), key="dnd-test")
        await enqueue(s, rt, kind="approval_result", target_type="person", target_id=tomas.id,
                      reply=simple("not a tip"), key="dnd-other")
    stats = await drain(rt)
    assert stats.sent == 1 and stats.retried == 1  # only the tip waits
    async with rt.db.reader() as s:
        row = await s.scalar(select(OutboxMessage).where(OutboxMessage.kind == "nudge"))
    assert row.status == "pending" and row.attempts == 0  # waiting is not failing
    assert row.next_attempt_at >= rt.now() + timedelta(minutes=30)
    rt.clock.advance(minutes=32)
    fake_slack.dnd.clear()
    assert (await drain(rt)).sent == 1
    texts = [m["text"] for m in fake_slack.messages(fake_slack.dm_channel(TOMAS))]
    assert texts == ["not a tip", "a tip"]
