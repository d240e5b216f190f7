"""Limits that bind (vendor layer): Claude Enterprise spend limits and increase requests,
grant overrides written and restored through the durable vendor-op queue, drift repair,
dry-run, outages and two senders; every test on SQLite and PostgreSQL against a loopback
fake built from the official docs (tests/fakes/claude_enterprise.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.approvals import flow
from bot.config.env import Env
from bot.directory import person_by_email, person_by_id
from bot.enforcement import claude, grants, ops, requests, sync
from bot.enforcement.http import VendorError, VendorHTTP
from bot.enforcement.views import enforced_limits_for
from bot.runtime import Runtime
from bot.scheduling.runner import run_job
from bot.store.tables import (
    AuditEntry,
    EnforcedLimit,
    OutboxMessage,
    SandboxGrant,
    UsageRecord,
    VendorOp,
    VendorOverride,
)
from tests.conftest import with_overrides
from tests.fakes.claude_enterprise import FakeClaudeEnterprise, cents
from tests.helpers.server import serving

TOMAS, PRIYA, KENJI = "tomas.novak@acme.example", "priya.raman@acme.example", \
    "kenji.watanabe@acme.example"
DANA = "dana.okafor@acme.example"  # the demo org's admin
LIMITS = "/v1/organizations/spend_limits"


@pytest.fixture
async def fake() -> AsyncIterator[FakeClaudeEnterprise]:
    ce = FakeClaudeEnterprise(tier_amounts={"enterprise_standard": "150000"},
                              group_amounts={"grp_ml": "300000"}, org_amount="100000",
                              page_size_cap=2)
    ce.add_member("user_01TOMAS", "Tomas.Novak@ACME.example", "Tomás Novák", spend="31402.5")
    ce.add_member("user_01PRIYA", PRIYA, "Priya Raman", rbac_group="grp_ml", spend="120050.125")
    ce.add_member("user_01KENJI", KENJI, "Kenji Watanabe", spend="0")
    ce.add_member("user_01GUEST", "guest@elsewhere.example", "A Guest", seat_tier="basic")
    ce.console_set("user_01KENJI", "200000")  # Kenji has his own override of $2,000
    async with serving(ce.app()) as base:
        ce.base_url = base  # type: ignore[attr-defined]
        yield ce


async def make_rt(make_runtime: Any, base_config: Any, db_url: str, ce: FakeClaudeEnterprise,
                  *, key: str = "sk-ant-admin-rw", **claude_cfg: Any) -> Runtime:
    cfg = with_overrides(base_config, enforcement={"claude_enterprise": {
        "enabled": True, "base_url": ce.base_url, "key_env": "CE_KEY",  # type: ignore[attr-defined]
        **claude_cfg}})
    return await make_runtime(config=cfg, env=Env(database_url=db_url, source={"CE_KEY": key}))  # type: ignore[no-any-return]


@pytest.fixture
async def crt(make_runtime, base_config, db_url, fake) -> Runtime:  # type: ignore[no-untyped-def]
    return await make_rt(make_runtime, base_config, db_url, fake)


async def grant_for(rt: Runtime, email: str, amount: str, days: str = "10") -> SandboxGrant:
    """A real sandbox grant: requested by ``email``, approved by their manager."""
    async with rt.db.reader() as s:
        person = await person_by_email(s, email)
        assert person is not None and person.manager_id is not None
        approver = await person_by_id(s, person.manager_id)
    assert approver is not None
    req = await flow.create(rt, person, amount=amount, purpose="Build an eval agent here",
                            duration=days)
    await flow.decide(rt, approver, f"{req.id}:1", approve=True)
    async with rt.db.reader() as s:
        grant = await s.scalar(select(SandboxGrant).where(SandboxGrant.request_id == req.id))
    assert grant is not None
    return grant


async def audit_rows(rt: Runtime, action: str) -> list[AuditEntry]:
    async with rt.db.reader() as s:
        return list((await s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                     .order_by(AuditEntry.id))).all())


async def test_sync_stores_every_members_limit_spend_and_pending_requests(crt, fake) -> None:  # type: ignore[no-untyped-def]
    rid = fake.file_request("user_01TOMAS")
    counts = await sync.sync_claude(crt)
    # Two members a page: the four members took two pages, each cursor passed back as is.
    pages = [q for m, p, q, _ in fake.calls if p == f"{LIMITS}/effective"]
    assert len(pages) == 2 and "page" not in pages[0] and pages[1]["page"][0].startswith("page_")
    assert counts["members"] == 4 and counts["mapped"] == 3 and counts["unmapped"] == 1
    assert counts["requests_pending"] == 1
    async with crt.db.reader() as s:
        tomas = await person_by_email(s, TOMAS)
        priya = await person_by_email(s, PRIYA)
        kenji = await person_by_email(s, KENJI)
        assert tomas and priya and kenji
        views = await enforced_limits_for(s, [tomas.id, priya.id, kenji.id])
        pending = await requests.pending_increase_requests(s)
    t, p, k = views[tomas.id][0], views[priya.id][0], views[kenji.id][0]
    # Minor units to micro-dollars, exactly: "31402.5" cents is $314.025 (shown half-even).
    assert (t.amount_micros, t.spent_micros) == (cents("150000"), 314_025_000)
    assert (t.inherited_from, t.source_detail, t.period) == ("seat_tier", "enterprise_standard",
                                                             "monthly")
    assert p.spent_micros == 1_200_501_250 and p.inherited_from == "rbac_group"
    assert (k.amount_micros, k.inherited_from) == (cents("200000"), "user")
    assert t.label() == ("Claude Enterprise limit $1,500 / month · $314.02 used · "
                         "set by your seat tier")
    assert t.as_json() == {"vendor": "claude_enterprise", "amount_usd": "1500.00",
                           "period": "monthly", "spent_usd": "314.02",
                           "inherited_from": "seat_tier", "as_of": t.as_json()["as_of"]}
    assert [(r.request_id, r.person_id, r.status, r.current_amount_micros,
             r.current_spent_micros) for r in pending] == [
        (rid, tomas.id, "pending", cents("150000"), 314_025_000)]
    # The request is decided in the console: the next sync reads it and records who.
    fake.console_decide(rid, approve=False, by=fake.members[1])
    fake.members.pop()  # the guest left: their row goes
    await sync.sync_claude(crt)
    async with crt.db.reader() as s:
        assert await requests.pending_increase_requests(s) == []
        row = await requests.increase_request(s, rid)
        assert row is not None and (row.status, row.resolved_by) == ("denied", PRIYA)
        assert await s.scalar(select(func.count()).select_from(EnforcedLimit)) == 3


async def test_a_grant_raises_the_inherited_limit_and_its_end_deletes_the_override(  # type: ignore[no-untyped-def]
        crt, fake) -> None:
    await sync.sync_claude(crt)
    grant = await grant_for(crt, TOMAS, "250.50")
    await run_job(crt, "approvals")
    # $1,500 inherited from the seat tier + $250.50 = 175050 cents, as a per-user override.
    assert fake.writes() == [("POST", LIMITS, {"scope": {"type": "user",
                                                         "user_id": "user_01TOMAS"},
                                               "amount": "175050", "period": "monthly"})]
    assert fake.effective_amount("user_01TOMAS") == "175050"
    ours = fake.overrides[("user_01TOMAS", "monthly")]["id"]
    async with crt.db.reader() as s:
        tomas = await person_by_email(s, TOMAS)
        assert tomas
        view = (await enforced_limits_for(s, [tomas.id]))[tomas.id][0]
        assert (view.amount_micros, view.inherited_from) == (cents("175050"), "user")
    writes = await audit_rows(crt, "enforcement.write")
    assert len(writes) == 1 and writes[0].actor == "scheduler"
    assert writes[0].subject == f"sandbox_grant:{grant.id}"
    assert writes[0].detail["body"]["amount"] == "175050"  # type: ignore[index]
    assert writes[0].detail["before"]["source"] == "seat_tier"  # type: ignore[index]
    crt.clock.advance(days=11)  # the grant ends
    await run_job(crt, "approvals")
    assert fake.writes()[1:] == [("DELETE", f"{LIMITS}/{ours}", None)]
    assert fake.effective_amount("user_01TOMAS") == "150000"  # inherited again
    assert not fake.overrides.get(("user_01TOMAS", "monthly"))
    async with crt.db.reader() as s:
        ov = await s.scalar(select(VendorOverride))
        assert ov is not None and ov.state == "restored" and ov.baseline_kind == "inherited"
    crt.clock.advance(minutes=10)
    await run_job(crt, "approvals")
    assert len(fake.writes()) == 2  # nothing more to do


async def test_the_end_restores_the_members_own_previous_override(crt, fake) -> None:  # type: ignore[no-untyped-def]
    await sync.sync_claude(crt)
    first = await grant_for(crt, KENJI, "300")
    second = await grant_for(crt, KENJI, "100", days="20")
    async with crt.db.session() as s:  # the approvals domain's hook (part B calls this)
        for g in (first, second):
            await grants.apply_grant(s, crt, g, actor="priya.raman@acme.example")
    await ops.drain(crt)
    # $2,000 (his own override) + $300 + $100, whichever op ran first.
    assert fake.effective_amount("user_01KENJI") == "240000"
    assert [b["amount"] for m, _, b in fake.writes()] == ["240000"]
    crt.clock.advance(days=11)  # the first grant ends; the second still runs
    await run_job(crt, "approvals")
    assert fake.effective_amount("user_01KENJI") == "210000"
    crt.clock.advance(days=10)
    await run_job(crt, "approvals")
    # Back to his own $2,000 override (a POST: his row, not a DELETE).
    assert fake.writes()[-1] == ("POST", LIMITS, {"scope": {"type": "user",
                                                            "user_id": "user_01KENJI"},
                                                  "amount": "200000", "period": "monthly"})
    assert fake.effective_amount("user_01KENJI") == "200000"
    restores = [r for r in await audit_rows(crt, "enforcement.write")
                if r.detail and r.detail.get("before", {}).get("amount") == "210000"]
    assert len(restores) == 1 and restores[0].actor == "scheduler"


class Crash(BaseException):
    """The process dies: nothing after this point runs (not caught by the op runner)."""


async def crash_after_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ops._succeed

    async def die(rt: Runtime, op: VendorOp, outcome: ops.Outcome) -> None:
        monkeypatch.setattr(ops, "_succeed", real)
        raise Crash

    monkeypatch.setattr(ops, "_succeed", die)


async def test_a_crash_between_the_vendor_write_and_its_record_raises_exactly_once(  # type: ignore[no-untyped-def]
        crt, fake, monkeypatch) -> None:
    await sync.sync_claude(crt)
    grant = await grant_for(crt, TOMAS, "200")
    async with crt.db.session() as s:
        await grants.apply_grant(s, crt, grant, actor="priya.raman@acme.example")
    await crash_after_the_call(monkeypatch)
    with pytest.raises(Crash):
        await ops.run_due(crt)
    assert fake.effective_amount("user_01TOMAS") == "170000"  # the vendor has it...
    async with crt.db.reader() as s:
        op = await s.scalar(select(VendorOp))
        assert op is not None and op.status == "running" and op.result is None  # ...we don't
    assert (await ops.run_due(crt)).handled == 0  # its lease still holds
    crt.clock.advance(minutes=3)  # the lease runs out: another sender takes it over
    assert (await ops.run_due(crt)).done == 1
    assert fake.effective_amount("user_01TOMAS") == "170000"  # no double raise
    assert len([w for w in fake.writes() if w[0] == "POST"]) == 1
    writes = await audit_rows(crt, "enforcement.write")
    assert len(writes) == 1 and writes[0].detail["already_applied"] is True  # type: ignore[index]
    assert writes[0].actor == "priya.raman@acme.example"
    # The same at the end: the DELETE goes through, the record dies, the rerun finds it done.
    async with crt.db.session() as s:
        await s.execute(SandboxGrant.__table__.update().where(SandboxGrant.id == grant.id)
                        .values(status="ended"))
        g = await s.get(SandboxGrant, grant.id)
        assert g is not None
        await grants.restore_after_grant(s, crt, g, actor="scheduler")
    await crash_after_the_call(monkeypatch)
    with pytest.raises(Crash):
        await ops.run_due(crt)
    crt.clock.advance(minutes=3)
    assert (await ops.run_due(crt)).done == 1
    assert [w[0] for w in fake.writes()] == ["POST", "DELETE"]
    assert fake.effective_amount("user_01TOMAS") == "150000"
    async with crt.db.reader() as s:
        ov = await s.scalar(select(VendorOverride))
        assert ov is not None and ov.state == "restored"


async def test_a_vendor_outage_is_retried_then_admins_are_told_and_nothing_is_lost(  # type: ignore[no-untyped-def]
        crt, fake) -> None:
    await sync.sync_claude(crt)
    async with crt.db.reader() as s:
        usage_before = await s.scalar(select(func.count()).select_from(UsageRecord))
    fake.fail("POST", LIMITS, 429, times=1, retry_after="90")
    fake.fail("POST", LIMITS, 503, times=None)  # then down for good
    grant = await grant_for(crt, TOMAS, "200")
    await run_job(crt, "approvals")
    async with crt.db.reader() as s:
        op = await s.scalar(select(VendorOp))
        assert op is not None and op.status == "pending" and "429" in (op.last_error or "")
        # Retry-After: 90 wins over the first backoff (10 s).
        assert op.next_attempt_at >= crt.now() + timedelta(seconds=90)
    for _ in range(ops.MAX_ATTEMPTS + 2):
        crt.clock.advance(seconds=ops.MAX_BACKOFF + 1)
        await ops.run_due(crt)
    async with crt.db.reader() as s:
        op = await s.scalar(select(VendorOp))
        assert op is not None and op.status == "failed" and op.attempts == ops.MAX_ATTEMPTS
        assert "gave up after 10 attempts" in (op.last_error or "")
        alerts = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "admin_alert"))).all()
        dana = await person_by_email(s, DANA)
        g = await s.get(SandboxGrant, grant.id)
        assert g is not None and g.status == "active" and g.amount_micros == 200_000_000
        assert await s.scalar(select(func.count()).select_from(UsageRecord)) == usage_before
    assert alerts and {a.target_id for a in alerts} == {dana.id}  # type: ignore[union-attr]
    assert "Claude Enterprise limit change for tomas.novak" in alerts[0].payload["text"]
    assert len(await audit_rows(crt, "enforcement.write_failed")) == 1
    assert fake.effective_amount("user_01TOMAS") == "150000"
    # Fixed: the admin retries it (`tokencoach limits retry`) and it goes through.
    fake.faults.clear()
    assert await ops.retry(crt, op.id)
    assert (await ops.drain(crt)).done == 1
    assert fake.effective_amount("user_01TOMAS") == "170000"


async def test_a_rejected_write_fails_at_once_and_says_why(crt, fake) -> None:  # type: ignore[no-untyped-def]
    await sync.sync_claude(crt)
    fake.fail("POST", LIMITS, 400, times=None)
    await grant_for(crt, TOMAS, "200")
    await run_job(crt, "approvals")
    async with crt.db.reader() as s:
        op = await s.scalar(select(VendorOp))
    assert op is not None and op.status == "failed" and op.attempts == 1
    assert "400" in (op.last_error or "") and "invalid_request_error" not in (op.last_error or "")
    assert "injected 400" in (op.last_error or "") and "(request req_" in (op.last_error or "")


async def test_dry_run_audits_the_calls_it_would_make_and_makes_none(  # type: ignore[no-untyped-def]
        make_runtime, base_config, db_url, fake) -> None:
    rt = await make_rt(make_runtime, base_config, db_url, fake, dry_run=True)
    await sync.sync_claude(rt)
    rid = fake.file_request("user_01KENJI")
    await sync.sync_claude(rt)
    grant = await grant_for(rt, TOMAS, "99.99")
    await run_job(rt, "approvals")
    async with rt.db.session() as s:
        await requests.queue_approve_increase(s, rt, rid, 300_000_000, "monthly",
                                              actor="priya.raman@acme.example")
    await ops.drain(rt)
    assert fake.writes() == []
    assert fake.effective_amount("user_01TOMAS") == "150000"
    assert fake.requests[rid]["status"] == "pending"
    dry = await audit_rows(rt, "enforcement.dry_run")
    assert [(d.subject, d.detail["method"], d.detail["body"]) for d in dry] == [  # type: ignore[index]
        (f"sandbox_grant:{grant.id}", "POST", {"scope": {"type": "user",
                                                         "user_id": "user_01TOMAS"},
                                               "amount": "159999", "period": "monthly"}),
        (f"increase_request:{rid}", "POST", {"suppress_notification": False,
                                            "amount": "30000", "period": "monthly"})]
    assert await audit_rows(rt, "enforcement.write") == []
    async with rt.db.reader() as s:
        assert set((await s.scalars(select(VendorOp.status))).all()) == {"dry_run"}


async def test_reconciliation_repairs_a_limit_edited_in_the_console(crt, fake) -> None:  # type: ignore[no-untyped-def]
    await sync.sync_claude(crt)
    await grant_for(crt, TOMAS, "500")
    await run_job(crt, "approvals")
    assert fake.effective_amount("user_01TOMAS") == "200000"
    counts = await sync.sync_claude(crt)
    assert counts["drift"] == 0
    fake.console_set("user_01TOMAS", "120000")  # an admin lowers it in claude.ai
    crt.clock.advance(minutes=15)
    counts = await run_job(crt, "sync-limits")  # type: ignore[assignment]
    assert fake.effective_amount("user_01TOMAS") == "200000"  # repaired
    drift = await audit_rows(crt, "enforcement.drift_detected")
    assert len(drift) == 1 and drift[0].detail["found"]["amount_micros"] == cents("120000")  # type: ignore[index]
    repairs = await audit_rows(crt, "enforcement.write")
    assert repairs[-1].actor == "scheduler (reconcile)"
    assert repairs[-1].detail["before"]["amount"] == "120000"  # type: ignore[index]


async def test_native_requests_are_approved_and_denied_once_each(crt, fake) -> None:  # type: ignore[no-untyped-def]
    approve_me = fake.file_request("user_01TOMAS")
    deny_me = fake.file_request("user_01PRIYA")
    decided = fake.file_request("user_01KENJI")
    await sync.sync_claude(crt)
    fake.console_decide(decided, approve=True, by=fake.members[1], amount="260000")
    async with crt.db.session() as s:
        for _ in range(5):  # repeated clicks queue one decision
            await requests.queue_approve_increase(s, crt, approve_me, 180_000_000, "monthly",
                                                  actor="priya.raman@acme.example")
        await requests.queue_deny_increase(s, crt, deny_me, actor="jordan.blake@acme.example")
        await requests.queue_approve_increase(s, crt, deny_me, 1, None, actor="someone")
        await requests.queue_deny_increase(s, crt, decided, actor="priya.raman@acme.example")
    stats = await ops.drain(crt)
    assert (stats.done, stats.skipped) == (2, 1)
    approves = [(p, b) for m, p, b in fake.writes() if p.endswith("/approve")]
    assert approves == [(f"/v1/organizations/spend_limit_increase_requests/{approve_me}/approve",
                         {"amount": "18000", "suppress_notification": False,
                          "period": "monthly"})]
    assert [p for m, p, b in fake.writes() if p.endswith("/deny")] == [
        f"/v1/organizations/spend_limit_increase_requests/{deny_me}/deny"]
    assert fake.effective_amount("user_01TOMAS") == "18000"
    assert fake.requests[deny_me]["status"] == "denied"
    assert fake.requests[decided]["status"] == "approved"  # decided in the console: untouched
    async with crt.db.reader() as s:
        skipped = await requests.decision_op(s, decided)
        assert skipped is not None and skipped.status == "skipped"
        assert skipped.result == {"request_id": decided, "status": "approved",
                                  "resolved_by": PRIYA}
        row = await requests.increase_request(s, approve_me)
        assert row is not None and row.status == "approved"


async def test_two_senders_make_each_write_once(  # type: ignore[no-untyped-def]
        make_runtime, base_config, db_url, fake) -> None:
    people = [p.email for p in base_config.directory.people if p.manager][:12]
    for i, email in enumerate(people):
        if email not in (TOMAS, PRIYA, KENJI):
            fake.add_member(f"user_02{i:04d}", email, email.split("@")[0])
    rt_a = await make_rt(make_runtime, base_config, db_url, fake)
    rt_b = await make_rt(make_runtime, base_config, db_url, fake)
    await sync.sync_claude(rt_a)
    made = [await grant_for(rt_a, email, "100") for email in people]
    async with rt_a.db.session() as s:
        for g in made:
            await grants.apply_grant(s, rt_a, g, actor="test")
            await grants.apply_grant(s, rt_a, g, actor="test")  # a double click
    await asyncio.gather(ops.drain(rt_a), ops.drain(rt_b), ops.drain(rt_a), ops.drain(rt_b))
    posts = [b["scope"]["user_id"] for m, p, b in fake.writes() if m == "POST"]
    assert len(posts) == len(people) == len(set(posts))
    async with rt_a.db.reader() as s:
        assert set((await s.scalars(select(VendorOp.status))).all()) == {"done"}
        assert await s.scalar(select(func.count()).select_from(VendorOp)) == len(people)


async def test_errors_are_parsed_and_pagination_cursors_are_opaque(crt, fake) -> None:  # type: ignore[no-untyped-def]
    async with claude.client(crt) as http:
        with pytest.raises(VendorError) as caught:
            await http.call("GET", f"{LIMITS}/effective",
                            params=[("limit", 1), ("page", "page_eyJvIjogMSwgImYiOiAieCJ9")])
    err = caught.value
    assert (err.status, err.error_type, err.transient) == (400, "invalid_request_error", False)
    assert "cursor does not match current query parameters" in str(err)
    assert err.request_id and err.request_id.startswith("req_")
    ro = VendorHTTP(vendor="claude_enterprise", base_url=fake.base_url,
                    headers={"x-api-key": "sk-ant-admin-ro"}, key_env="CE_KEY")
    async with ro as http:
        with pytest.raises(VendorError) as caught:
            await http.call("POST", LIMITS, body={"scope": {"type": "user",
                                                            "user_id": "user_01TOMAS"},
                                                  "amount": "1"})
    assert caught.value.status == 403 and "check CE_KEY" in str(caught.value)
    assert "write:spend_limits" in str(caught.value)
    fake.fail("GET", f"{LIMITS}/effective", 529, times=2)
    async with claude.client(crt, attempts=3) as http:
        http.backoff_base = 0.01
        body = await http.call("GET", f"{LIMITS}/effective", params=[("limit", 1)])
    assert len(body["data"]) == 1


async def test_a_member_is_found_by_email_before_any_sync(crt, fake) -> None:  # type: ignore[no-untyped-def]
    await grant_for(crt, TOMAS, "10")  # no sync yet: the op looks the member up itself
    await run_job(crt, "approvals")
    assert fake.effective_amount("user_01TOMAS") == "151000"
    grant = await grant_for(crt, "aisha.bello@acme.example", "10")  # not a member
    async with crt.db.session() as s:
        await grants.apply_grant(s, crt, grant, actor="test")
    assert (await ops.drain(crt)).skipped == 1


async def test_an_approval_during_a_grant_becomes_the_limit_the_grant_restores(  # type: ignore[no-untyped-def]
        crt, fake) -> None:
    await sync.sync_claude(crt)
    await grant_for(crt, TOMAS, "200")
    await run_job(crt, "approvals")
    assert fake.effective_amount("user_01TOMAS") == "170000"
    # Tomas asks Claude for more; his manager approves $2,500 in chat.
    rid = fake.file_request("user_01TOMAS")
    crt.clock.advance(minutes=15)
    await run_job(crt, "sync-limits")
    async with crt.db.session() as s:
        await requests.queue_approve_increase(s, crt, rid, 2_500_000_000, "monthly",
                                              actor="priya.raman@acme.example")
    await ops.drain(crt)
    # The approval wrote $2,500; the grant's $200 goes back on top of it.
    assert [b.get("amount") for m, p, b in fake.writes()] == ["170000", "250000", "270000"]
    assert fake.effective_amount("user_01TOMAS") == "270000"
    crt.clock.advance(minutes=15)
    await run_job(crt, "sync-limits")
    assert await audit_rows(crt, "enforcement.drift_detected") == []
    changed = await audit_rows(crt, "enforcement.baseline_changed")
    assert [(c.actor, c.detail["after_micros"]) for c in changed] == [  # type: ignore[index]
        ("priya.raman@acme.example", 2_500_000_000)]
    # Another request, approved in the console this time at $3,000: adopted the same way.
    rid2 = fake.file_request("user_01TOMAS")
    crt.clock.advance(minutes=15)
    await run_job(crt, "sync-limits")
    fake.console_decide(rid2, approve=True, by=fake.members[1], amount="300000")
    crt.clock.advance(minutes=15)
    await run_job(crt, "sync-limits")
    assert fake.effective_amount("user_01TOMAS") == "320000"
    assert await audit_rows(crt, "enforcement.drift_detected") == []
    crt.clock.advance(days=11)  # the grant ends: back to the $3,000 he was approved
    await run_job(crt, "approvals")
    assert fake.effective_amount("user_01TOMAS") == "300000"
    assert fake.overrides[("user_01TOMAS", "monthly")]["amount"] == "300000"
