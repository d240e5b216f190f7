"""LiteLLM budgets for everyone (enforcement.litellm), `tokencoach check` for both vendors,
the config keys, and the `limits` commands; on SQLite and PostgreSQL against loopback
fakes (tests/fakes/litellm_users.py, tests/fakes/claude_enterprise.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.checks import run_checks
from bot.config import ConfigError, load_config
from bot.config.env import Env
from bot.enforcement import ops, sync
from bot.runtime import Runtime
from bot.scheduling.runner import run_job
from bot.store.tables import AuditEntry, VendorOp
from tests.conftest import REPO, with_overrides
from tests.fakes.claude_enterprise import FakeClaudeEnterprise
from tests.fakes.litellm_users import FakeLiteLLMUsers
from tests.helpers.cli import tokencoach
from tests.helpers.server import serving
from tests.test_enforcement import grant_for

TOMAS, PRIYA, KENJI = "tomas.novak@acme.example", "priya.raman@acme.example", \
    "kenji.watanabe@acme.example"
MARCUS = "marcus.webb@acme.example"  # support team: an $800 cap


@pytest.fixture
async def proxy() -> AsyncIterator[FakeLiteLLMUsers]:
    fake = FakeLiteLLMUsers()
    fake.add_user(TOMAS, TOMAS, max_budget="1500")  # right amount, no reset period
    fake.add_user("u-priya", "Priya.Raman@acme.example", max_budget="100", spend="42.5")
    fake.add_user("u-marcus", MARCUS, max_budget="800.0", budget_duration="1mo")
    fake.add_user("svc-bot", None, max_budget=None)  # a service user nobody maps
    async with serving(fake.app()) as base:
        fake.base_url = base  # type: ignore[attr-defined]
        yield fake


async def litellm_rt(make_runtime: Any, base_config: Any, db_url: str,
                     proxy: FakeLiteLLMUsers, **cfg: Any) -> Runtime:
    config = with_overrides(base_config, enforcement={"litellm": {
        "enabled": True, "base_url": proxy.base_url, "key_env": "LITELLM_KEY",  # type: ignore[attr-defined]
        "push_caps": True, **cfg}})
    env = Env(database_url=db_url, source={"LITELLM_KEY": "sk-litellm-master"})
    return await make_runtime(config=config, env=env)  # type: ignore[no-any-return]


async def test_caps_are_pushed_raised_by_grants_restored_and_repaired(  # type: ignore[no-untyped-def]
        make_runtime, base_config, db_url, proxy) -> None:
    rt = await litellm_rt(make_runtime, base_config, db_url, proxy)
    outcome = (await run_job(rt, "litellm-budgets"))[0]
    assert outcome.ok and outcome.result is not None
    assert outcome.result["litellm_users"] == 4 and outcome.result["litellm_mapped"] == 3
    # Marcus already has his $800 a month; Tomas lacks the reset period; Priya the amount.
    assert sorted(proxy.updates) == sorted([
        '{"user_id": "u-priya", "max_budget": 1500.00, "budget_duration": "1mo"}',
        f'{{"user_id": "{TOMAS}", "max_budget": 1500.00, "budget_duration": "1mo"}}'])
    assert proxy.budget("u-priya") == Decimal("1500.00")
    # A grant raises Tomas, exactly, and its end puts him back.
    proxy.updates.clear()
    await grant_for(rt, TOMAS, "250.50", days="5")
    await run_job(rt, "approvals")
    assert proxy.updates == [
        f'{{"user_id": "{TOMAS}", "max_budget": 1750.50, "budget_duration": "1mo"}}']
    rt.clock.advance(days=6)
    await run_job(rt, "approvals")
    assert proxy.budget(TOMAS) == Decimal("1500.00")
    # Someone edits a budget in the proxy's UI: the next run repairs it, nobody else.
    proxy.users["u-marcus"]["max_budget"] = Decimal("5000")
    proxy.updates.clear()
    rt.clock.advance(hours=1)
    await run_job(rt, "litellm-budgets")
    assert proxy.updates == ['{"user_id": "u-marcus", "max_budget": 800.00, '
                             '"budget_duration": "1mo"}']
    async with rt.db.reader() as s:
        writes = (await s.scalars(select(AuditEntry).where(
            AuditEntry.action == "enforcement.write").order_by(AuditEntry.id))).all()
    assert writes[-1].actor == "scheduler (litellm budgets)"
    assert writes[-1].detail["before"] == {"max_budget": "5000.00"}  # type: ignore[index]
    assert writes[-1].detail["body"]["max_budget"] == "800.00"  # type: ignore[index]


async def test_litellm_dry_run_and_failures(make_runtime, base_config, db_url, proxy) -> None:  # type: ignore[no-untyped-def]
    rt = await litellm_rt(make_runtime, base_config, db_url, proxy, dry_run=True)
    await run_job(rt, "litellm-budgets")
    assert proxy.updates == []
    async with rt.db.reader() as s:
        dry = (await s.scalars(select(AuditEntry).where(
            AuditEntry.action == "enforcement.dry_run"))).all()
    assert sorted(d.detail["body"]["user_id"] for d in dry) == sorted([TOMAS, "u-priya"])  # type: ignore[index]
    live = await litellm_rt(make_runtime, base_config, db_url, proxy)
    proxy.fail_updates = 1
    await grant_for(live, MARCUS, "100")
    await run_job(live, "approvals")
    async with live.db.reader() as s:
        op = await s.scalar(select(VendorOp).where(VendorOp.subject.like("sandbox_grant:%")))
    assert op is not None and op.status == "pending" and "500" in (op.last_error or "")
    live.clock.advance(seconds=ops.BASE_BACKOFF + 1)
    assert (await ops.drain(live)).done == 1
    assert proxy.budget("u-marcus") == Decimal("900.00")


async def test_check_reads_each_vendor_once(  # type: ignore[no-untyped-def]
        make_runtime, base_config, db_url, proxy) -> None:
    ce = FakeClaudeEnterprise(tier_amounts={"enterprise_standard": "150000"})
    ce.add_member("user_01TOMAS", TOMAS, "Tomás Novák")
    async with serving(ce.app()) as base:
        cfg = with_overrides(base_config, enforcement={
            "claude_enterprise": {"enabled": True, "base_url": base, "key_env": "CE_KEY"},
            "litellm": {"enabled": True, "base_url": proxy.base_url,
                        "key_env": "LITELLM_KEY", "dry_run": True}})
        rt = await make_runtime(config=cfg, env=Env(database_url=db_url, source={
            "CE_KEY": "sk-ant-admin-ro", "LITELLM_KEY": "sk-litellm-master"}))
        results = {r.name: r for r in await run_checks(rt)}
        assert results["claude_enterprise"].status == "ok"
        assert "write:spend_limits" in results["claude_enterprise"].detail
        assert results["litellm_budgets"].status == "ok"
        assert "4 users" in results["litellm_budgets"].detail
        assert "dry run" in results["litellm_budgets"].detail
        assert len(ce.calls) == 1 and ce.calls[0][2] == {"limit": ["1"]}
        bad = await make_runtime(config=cfg, sync=False, env=Env(
            database_url=db_url, source={"CE_KEY": "wrong", "LITELLM_KEY": ""}))
        results = {r.name: r for r in await run_checks(bad)}
        assert results["claude_enterprise"].status == "fail"
        assert "401" in results["claude_enterprise"].detail
        assert "check CE_KEY" in results["claude_enterprise"].detail
        assert results["litellm_budgets"] == results["litellm_budgets"].__class__(
            "litellm_budgets", "fail", "LITELLM_KEY is not set")


def test_the_old_gateway_key_is_read_as_enforcement_litellm(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("sandbox:\n  enabled: true\n  gateway:\n    enabled: true\n"
                    "    base_url: http://proxy.internal:4000/\n")
    cfg = load_config(path)
    assert cfg.enforcement.litellm.enabled
    assert cfg.enforcement.litellm.base_url == "http://proxy.internal:4000"
    assert cfg.deprecations == [f"{path}:3: sandbox.gateway is deprecated: it is read as "
                                "enforcement.litellm (move it there; "
                                "enforcement.litellm.push_caps can also push every "
                                "person's cap)"]
    path.write_text("sandbox:\n  gateway: {enabled: true}\n"
                    "enforcement:\n  litellm: {enabled: true}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}:2: sandbox.gateway: deprecated, and "
                                 "enforcement.litellm is set too: keep only enforcement.litellm")
    path.write_text("enforcement:\n  claude_enterprise:\n    enabled: true\n"
                    "    base_url: api.anthropic.com\n    dryrun: true\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(i) for i in caught.value.issues] == [
        f"{path}:4: enforcement.claude_enterprise.base_url: base_url must start with "
        "http:// or https://",
        f"{path}:5: enforcement.claude_enterprise.dryrun: unknown key (check the spelling; "
        "see the README's config reference)"]


async def test_limits_sync_and_show_from_the_command_line(db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ce = FakeClaudeEnterprise(tier_amounts={"enterprise_standard": "150000"})
    ce.add_member("user_01TOMAS", "TOMAS.NOVAK@acme.example", "Tomás Novák", spend="120012.5")
    async with serving(ce.app()) as base:
        data = yaml.safe_load((REPO / "app.yaml").read_text())
        data["enforcement"]["claude_enterprise"].update(enabled=True, base_url=base,
                                                       key_env="CE_KEY")
        config = tmp_path / "app.yaml"
        config.write_text(yaml.safe_dump(data))
        env = {"CE_KEY": "sk-ant-admin-rw"}
        seeded = await asyncio.to_thread(tokencoach, "db", "upgrade", database_url=db_url,
                                         config=config, env=env)
        assert seeded.returncode == 0, seeded.stderr
        synced = await asyncio.to_thread(tokencoach, "limits", "sync", database_url=db_url,
                                         config=config, env=env)
        assert synced.returncode == 0, synced.stderr
        assert "'members': 1" in synced.stdout and "'mapped': 1" in synced.stdout
    shown = await asyncio.to_thread(tokencoach, "limits", "show", TOMAS, "--json",
                                    database_url=db_url, config=config)
    assert shown.returncode == 0, shown.stderr
    limits = json.loads(shown.stdout)["enforced_limits"]
    assert [{k: v for k, v in lim.items() if k != "as_of"} for lim in limits] == [
        {"vendor": "claude_enterprise", "amount_usd": "1500.00", "period": "monthly",
         "spent_usd": "1200.12", "inherited_from": "seat_tier"}]
    table = await asyncio.to_thread(tokencoach, "limits", "show", TOMAS, database_url=db_url,
                                    config=config)
    assert "$1,500" in table.stdout and "$299.88" in table.stdout and "seat_tier" in table.stdout
    nobody = await asyncio.to_thread(tokencoach, "limits", "show", "nobody@acme.example",
                                     database_url=db_url, config=config)
    assert nobody.returncode == 2 and "No person" in nobody.stderr


async def test_sync_keeps_the_last_rows_when_the_vendor_is_down(  # type: ignore[no-untyped-def]
        make_runtime, base_config, db_url) -> None:
    ce = FakeClaudeEnterprise(org_amount="100000")
    ce.add_member("user_01TOMAS", TOMAS, "Tomás Novák")
    async with serving(ce.app()) as base:
        cfg = with_overrides(base_config, enforcement={"claude_enterprise": {
            "enabled": True, "base_url": base, "key_env": "CE_KEY"}})
        rt = await make_runtime(config=cfg, env=Env(database_url=db_url,
                                                    source={"CE_KEY": "sk-ant-admin-rw"}))
        await sync.sync_claude(rt)
        ce.fail("GET", "/v1/organizations/spend_limits/effective", 503, times=None)
        rt.clock.advance(minutes=15)
        outcome = (await run_job(rt, "sync-limits"))[0]
        assert not outcome.ok and "503" in (outcome.error or "")
    from bot.directory import person_by_email
    from bot.enforcement.views import enforced_limits_for

    async with rt.db.reader() as s:
        tomas = await person_by_email(s, TOMAS)
        assert tomas is not None
        [kept] = (await enforced_limits_for(s, [tomas.id]))[tomas.id]
    assert kept.amount_micros == 1_000_000_000 and kept.as_of < rt.now()  # stale, and says so
