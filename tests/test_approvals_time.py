"""Approval timers driven by `tokencoach jobs run-due --at`, and racing replicas."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.store.tables import AuditEntry, OutboxMessage, SandboxGrant, SandboxRequest
from bot.timeutil import utcnow
from tests.helpers.approvals import buttons, card_in, latest_in, text_of
from tests.helpers.cli import tokencoach
from tests.helpers.processes import clean_env, serve_process
from tests.helpers.slack import SECRET, TOKEN, SlackClient

TOMAS = "tomas.novak@acme.example"
PRIYA = "priya.raman@acme.example"
JORDAN = "jordan.blake@acme.example"


def slack_env(bot) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": f"{bot.fake.base_url}/api/"}


async def run_due(bot, at) -> str:  # type: ignore[no-untyped-def]
    result = await asyncio.to_thread(tokencoach, "jobs", "run-due", "--at", at.isoformat(),
                                     database_url=bot.rt.env.database_url, env=slack_env(bot))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
async def test_reminder_then_escalation_then_expiry(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await bot.client.command(bot.uid(TOMAS), "sandbox 250 Build an agent that triages bugs")
    await bot.deliver()
    start = bot.rt.now()

    out = await run_due(bot, start + timedelta(hours=12))
    assert "reminded': 0" in out
    out = await run_due(bot, start + timedelta(hours=25))
    assert "reminded': 1" in out
    reminder = latest_in(bot.fake, PRIYA)
    assert "waiting for you" in text_of(reminder) and set(buttons(reminder)) == {"Approve", "Deny"}
    out = await run_due(bot, start + timedelta(hours=25, minutes=20))
    assert "reminded': 0" in out  # once per stage, whatever the number of runs

    out = await run_due(bot, start + timedelta(hours=49))
    assert "escalated': 1" in out
    assert "Escalated" in text_of(card_in(bot.fake, PRIYA, 1))
    assert buttons(card_in(bot.fake, PRIYA, 1)) == {}
    jordan_card = copy.deepcopy(card_in(bot.fake, JORDAN, 1))
    assert "Escalated to you" in text_of(jordan_card)

    out = await run_due(bot, start + timedelta(days=7, minutes=10))
    assert "expired': 1" in out
    assert "Expired" in text_of(card_in(bot.fake, JORDAN, 1))
    assert "expired" in text_of(latest_in(bot.fake, TOMAS)).lower()
    async with bot.rt.db.reader() as s:
        req = await s.scalar(select(SandboxRequest))
        actions = list((await s.scalars(select(AuditEntry.action))).all())
    assert req.status == "expired"
    assert [a for a in actions if a.startswith("sandbox.")] == [
        "sandbox.requested", "sandbox.reminded", "sandbox.escalated", "sandbox.expired"]
    # Jordan's stale button does nothing now.
    payload = bot.client.block_action(bot.uid(JORDAN), buttons(jordan_card)["Approve"]["action_id"],
                                      buttons(jordan_card)["Approve"]["value"],
                                      channel=bot.fake.dm_channel(JORDAN),
                                      message_ts=jordan_card["ts"])
    await bot.client.interact(payload)
    async with bot.rt.db.reader() as s:
        assert await s.scalar(select(func.count()).select_from(SandboxGrant)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_twenty_concurrent_clicks_on_two_replicas(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    bot.rt.clock.set(utcnow())  # the server processes run on real time
    await bot.client.command(bot.uid(TOMAS), "sandbox 400 Build an agent that triages bugs")
    await bot.deliver()
    card = card_in(bot.fake, PRIYA, 1)
    approve = buttons(card)["Approve"]
    env = clean_env(DATABASE_URL=bot.rt.env.database_url, **slack_env(bot))
    async with serve_process(env, "--no-scheduler") as (a, _), \
            serve_process(env, "--no-scheduler") as (b, _), aiohttp.ClientSession() as http:
        clients = [SlackClient(http, a, bot.fake.base_url), SlackClient(http, b, bot.fake.base_url)]

        async def one(i: int) -> int:
            client = clients[i % 2]
            payload = client.block_action(bot.uid(PRIYA), approve["action_id"], approve["value"],
                                          channel=bot.fake.dm_channel(PRIYA),
                                          message_ts=card["ts"])
            status, _ = await client.interact(payload)
            return status

        statuses = await asyncio.gather(*(one(i) for i in range(20)))
    assert statuses == [200] * 20
    bot.rt.clock.set(utcnow())  # catch up with what the replicas wrote
    await bot.deliver()
    async with bot.rt.db.reader() as s:
        grants = await s.scalar(select(func.count()).select_from(SandboxGrant))
        results = await s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "approval_result"))
        granted = await s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "sandbox.granted"))
    assert (grants, results, granted) == (1, 1, 1)
    notices = [m for m in bot.fake.messages(bot.fake.dm_channel(TOMAS))
               if "was approved" in m.get("text", "")]
    assert len(notices) == 1


async def test_a_pending_request_is_rerouted_in_one_call(slack_bot) -> None:  # type: ignore[no-untyped-def]
    """flow.reroute, as for an approver who leaves: their card changes in place, the new
    approver gets the card, the requester's confirmation says who decides now, audited;
    a second call for the same stage changes nothing."""
    from bot.approvals import flow
    from bot.directory import person_by_email

    bot = slack_bot
    await bot.client.command(bot.uid(TOMAS), "sandbox 250 Build an agent that triages bugs")
    await bot.deliver()
    async with bot.rt.db.reader() as s:
        req = await s.get(SandboxRequest, 1)
        jordan = await person_by_email(s, JORDAN)
    assert req is not None and jordan is not None
    note = "Re-routed to you: {previous} left the directory."
    assert await flow.reroute(bot.rt, req, jordan.id, status="reassigned", note=note)
    assert not await flow.reroute(bot.rt, req, jordan.id, status="reassigned", note=note)
    await bot.deliver()
    priya_card = card_in(bot.fake, PRIYA, 1)
    assert "Re-routed" in text_of(priya_card) and buttons(priya_card) == {}
    jordan_card = card_in(bot.fake, JORDAN, 1)
    assert "left the directory" in text_of(jordan_card)
    assert set(buttons(jordan_card)) == {"Approve", "Deny"}
    assert "Waiting for *Jordan Blake*" in str(latest_in(bot.fake, TOMAS)["blocks"])
    async with bot.rt.db.reader() as s:
        fresh = await s.get(SandboxRequest, 1)
        audits = (await s.scalars(select(AuditEntry).where(
            AuditEntry.action == "sandbox.reassigned"))).all()
    assert fresh is not None and fresh.current_approver_id == jordan.id
    assert fresh.status == "pending" and fresh.escalated_at is None
    assert [a.detail for a in audits] == [{"from": req.current_approver_id, "to": jordan.id}]
