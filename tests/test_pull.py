"""Orchestration: scheduled pull jobs, `tokencoach check` / `ingest`, and HTTP edge cases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.checks import run_checks
from bot.config.env import Env
from bot.runtime import Runtime
from bot.scheduling.registry import all_jobs
from bot.scheduling.runner import run_job
from bot.store.tables import JobClaim, SourceState
from bot.timeutil import as_utc
from bot.usage.pull import PullError, pull_source
from bot.usage.sources import http
from tests.conftest import REPO, with_overrides
from tests.fakes.copilot import FakeGitHub, usage_item
from tests.fakes.cursor import FakeCursor
from tests.fakes.providers import (
    FakeAnthropic,
    FakeLiteLLM,
    FakeOpenAI,
    openai_usage_row,
    stored_totals,
)
from tests.helpers.cli import tokencoach
from tests.helpers.server import free_port, serving

KEY = "sk-admin-test"
NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)
USAGE = "/v1/organization/usage/completions"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "DEFAULT_RETRY", http.RetryPolicy(
        attempts=3, backoff_base=0.01, backoff_cap=0.02))


def small_fake() -> FakeOpenAI:
    fake = FakeOpenAI(KEY)
    for hours_ago in range(1, 24, 3):  # all within the 1-day backfill
        fake.usage.append(openai_usage_row(
            NOW - timedelta(hours=hours_ago), user_id="user-x", api_key_id="key_x",
            project_id="proj_x", model="gpt-4o-mini", batch=False, service_tier="default",
            uncached_text=1000 * hours_ago - 10, cached_text=10, cache_write=0,
            output_text=7 * hours_ago, requests=2))
    return fake


def openai_config(base_config: Any, url: str, **extra: Any) -> Any:
    return with_overrides(base_config, sources={"openai": {
        "base_url": url, "backfill_days": 1, "schedule": "20 * * * *",
        "fetch_key_owners": False, **extra}})


async def openai_rt(make_runtime: Callable[..., Any], base_config: Any, db_url: str,
                    url: str, key: str = KEY, **extra: Any) -> Runtime:
    rt: Runtime = await make_runtime(config=openai_config(base_config, url, **extra),
                                     env=Env(database_url=db_url,
                                             source={"OPENAI_ADMIN_KEY": key}))
    return rt


def test_one_job_per_source_with_a_long_lease() -> None:
    jobs = all_jobs()
    for name in ("openai", "anthropic", "litellm", "github-copilot", "cursor"):
        spec = jobs[f"pull-{name}"]
        assert spec.lease >= timedelta(hours=1) and "ingest" in spec.tags
    assert not any(j.startswith("pull-") and "_" in j for j in jobs)


async def test_check_reaches_every_source_with_one_request_each(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fakes = {"openai": small_fake(), "anthropic": FakeAnthropic("sk-ant-admin-test"),
             "litellm": FakeLiteLLM("sk-litellm-master"),
             "github_copilot": FakeGitHub("ghp_test_token"), "cursor": FakeCursor("key_c")}
    fakes["litellm"].has_v2 = False  # an older proxy: said so, still one request
    async with contextlib.AsyncExitStack() as stack:
        urls = {n: await stack.enter_async_context(serving(f.app())) for n, f in fakes.items()}
        cfg = with_overrides(base_config, sources={
            "openai": {"base_url": urls["openai"]},
            "anthropic": {"base_url": urls["anthropic"]},  # api: analytics by default
            "litellm": {"base_url": urls["litellm"]},
            "github_copilot": {"base_url": urls["github_copilot"], "org": "acme"},
            "cursor": {"base_url": urls["cursor"]}})
        rt = await make_runtime(config=cfg, env=Env(database_url=db_url, source={
            "OPENAI_ADMIN_KEY": KEY, "ANTHROPIC_ADMIN_KEY": "sk-ant-admin-test",
            "LITELLM_MASTER_KEY": "sk-litellm-master", "GITHUB_COPILOT_TOKEN": "ghp_test_token",
            "CURSOR_ADMIN_KEY": "key_c"}))
        results = {r.name: r for r in await run_checks(rt)}
    for name, fake in fakes.items():
        assert results[name].status == "ok", results[name]
        assert len(fake.requests) == 1, (name, fake.requests)
    assert "api: analytics" in results["anthropic"].detail  # which Anthropic API is used
    assert "legacy unpaginated /spend/logs will be used" in results["litellm"].detail


async def test_pull_job_runs_on_its_cron_once_per_period(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = small_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url)
        at = NOW + timedelta(minutes=25)  # the 15:20 fire of "20 * * * *"
        [outcome] = await run_job(rt, "pull-openai", at)
        assert outcome.ran and outcome.ok, outcome.error
        assert outcome.period == "2026-11-18T10:20"  # org time zone: New York
        assert outcome.result is not None and outcome.result["new"] == len(fake.usage)
        assert "window" in outcome.result and isinstance(outcome.result["notes"], list)
        [again] = await run_job(rt, "pull-openai", at)
        assert not again.ran  # that period is done
        [later] = await run_job(rt, "pull-openai", at + timedelta(hours=1))
        assert later.ran and later.ok and later.result["unchanged"] == len(fake.usage)
        # Sources that are not configured are never due.
        assert await run_job(rt, "pull-anthropic", at) == []
        assert await run_job(rt, "pull-litellm", at) == []
    async with rt.db.reader() as s:
        claim = await s.scalar(select(JobClaim).where(JobClaim.job == "pull-openai",
                                                      JobClaim.period == outcome.period))
    assert claim.status == "done" and claim.result["new"] == len(fake.usage)
    assert (await stored_totals(rt))["records"] == len(fake.usage)


async def test_failed_pull_job_records_the_error_for_freshness_reports(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = small_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url, key="sk-revoked-0000")
        [outcome] = await run_job(rt, "pull-openai", NOW + timedelta(minutes=25))
    assert outcome.ran and not outcome.ok
    assert "PullError" in outcome.error and "401" in outcome.error
    async with rt.db.reader() as s:
        state = await s.get(SourceState, "openai")
        claim = await s.scalar(select(JobClaim).where(JobClaim.job == "pull-openai"))
    assert state.checkpoint is None and state.last_success_at is None
    assert state.last_error.startswith(f"openai: {USAGE} answered 401 Unauthorized")
    assert as_utc(state.last_error_at) == NOW + timedelta(minutes=25)
    assert claim.status == "failed" and "sk-revoked-0000" not in claim.error


async def test_check_probes_each_configured_source(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = small_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url)
        results = {r.name: r for r in await run_checks(rt)}
        bad = await openai_rt(make_runtime, base_config, db_url, url, key="sk-bad-key-0")
        bad_results = {r.name: r for r in await run_checks(bad)}
    assert results["openai"].status == "ok" and "accepted" in results["openai"].detail
    assert bad_results["openai"].status == "fail" and "401" in bad_results["openai"].detail
    assert len(fake.requests) == 2  # one cheap request per probe


async def test_window_defaults_and_nothing_to_do(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = small_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url, repull_window="3h")
        first = await pull_source(rt, "openai")
        assert (first.since, first.until) == (NOW - timedelta(days=1), NOW)
        second = await pull_source(rt, "openai")  # from the checkpoint minus repull_window
        assert (second.since, second.until) == (NOW - timedelta(hours=3), NOW)
        rt.clock.advance(minutes=30)  # type: ignore[attr-defined]
        idle = await pull_source(rt, "openai", since=NOW)  # 15:00 -> 15:30: no full hour
    assert idle.windows == 0 and idle.notes == [
        "nothing to pull: the window holds no complete bucket yet"]


async def test_unknown_disabled_and_unconfigured_sources(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    rt = await make_runtime()
    with pytest.raises(PullError, match="not configured"):
        await pull_source(rt, "anthropic")
    with pytest.raises(PullError, match="unknown source"):
        await pull_source(rt, "bard")
    off = await openai_rt(make_runtime, base_config, db_url, "http://127.0.0.1:9",
                          enabled=False)
    with pytest.raises(PullError, match="disabled"):
        await pull_source(off, "openai")


async def test_unreachable_server_backs_off_then_names_the_problem(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    rt = await openai_rt(make_runtime, base_config, db_url, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PullError) as err:
        await pull_source(rt, "openai")
    assert str(err.value).startswith(f"openai: {USAGE} could not be reached (ConnectError")
    assert "gave up after 3 attempts" in str(err.value)


async def test_retry_after_as_an_http_date_and_too_long_a_wait() -> None:
    fake = small_fake()
    fake.fail(USAGE, 429, times=1, retry_after=format_datetime(datetime.now(UTC),
                                                               usegmt=True))
    async with serving(fake.app()) as url:
        client = http.SourceClient("openai", url, {"Authorization": f"Bearer {KEY}"})
        async with client:
            body = await client.get_json(USAGE, [("start_time", int(NOW.timestamp()))])
            assert body["object"] == "page"
            fake.fail(USAGE, 429, times=1, retry_after="86400")
            with pytest.raises(PullError, match="asks to wait 86400 s"):
                await client.get_json(USAGE, [("start_time", int(NOW.timestamp()))])


async def test_cli_ingest_pulls_through_the_real_command(
        db_url: str, base_config: Any, tmp_path: Path) -> None:
    fake = small_fake()
    async with serving(fake.app()) as url:
        data = yaml.safe_load((REPO / "app.yaml").read_text())
        data["sources"]["openai"] = {"base_url": url, "fetch_key_owners": False}
        config = tmp_path / "app.yaml"
        config.write_text(yaml.safe_dump(data))
        window = ("--since", "2026-11-17T09:00Z", "--until", "2026-11-18T15:00Z")
        # The fake answers on this event loop, so the CLI runs in a worker thread.
        done = await asyncio.to_thread(
            tokencoach, "ingest", "openai", *window, database_url=db_url, config=config,
            env={"OPENAI_ADMIN_KEY": KEY})
        again = await asyncio.to_thread(
            tokencoach, "ingest", "openai", *window, database_url=db_url, config=config,
            env={"OPENAI_ADMIN_KEY": KEY})
        bad = await asyncio.to_thread(
            tokencoach, "ingest", "openai", *window, database_url=db_url, config=config,
            env={"OPENAI_ADMIN_KEY": "sk-typo-1234"})
    assert done.returncode == 0, done.stderr
    assert "2026-11-17 09:00 → 2026-11-18 15:00 UTC" in done.stdout
    assert "reconciliation" not in done.stdout or "billed" in done.stdout
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert bad.returncode == 1 and "answered 401 Unauthorized" in bad.stderr
    assert "sk-typo-1234" not in bad.stderr + bad.stdout and "Traceback" not in bad.stderr


async def test_cli_ingest_names_the_new_sources_as_typed(
        db_url: str, base_config: Any, tmp_path: Path) -> None:
    fake = FakeGitHub("ghp_test_token")
    fake.seats = {"priya-r": "priya.raman@acme.example"}
    fake.usage[(datetime(2026, 11, 17).date(), "priya-r")] = [
        usage_item("Copilot", "Copilot AI Credits", "GPT-5", "credits", "0.01", "1234")]
    async with serving(fake.app()) as url:
        data = yaml.safe_load((REPO / "app.yaml").read_text())
        data["sources"]["github_copilot"] = {"base_url": url, "org": "acme"}
        config = tmp_path / "app.yaml"
        config.write_text(yaml.safe_dump(data))
        window = ("--since", "2026-11-17", "--until", "2026-11-18")
        done = await asyncio.to_thread(
            tokencoach, "ingest", "github-copilot", *window, database_url=db_url,
            config=config, env={"GITHUB_COPILOT_TOKEN": "ghp_test_token"})
        unknown = await asyncio.to_thread(
            tokencoach, "ingest", "copilot", database_url=db_url, config=config)
    assert done.returncode == 0, done.stderr
    assert "github_copilot: 2026-11-17 00:00 → 2026-11-18 00:00 UTC" in done.stdout
    assert unknown.returncode == 2 and "github-copilot" in unknown.stderr
