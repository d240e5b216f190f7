"""LiteLLM connector: raw spend logs and the daily activity breakdown, against a loopback
fake shaped like the proxy's own endpoints."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from sqlalchemy import select

from bot.config.env import Env
from bot.runtime import Runtime
from bot.store.tables import Person, SourceState, UsageRecord
from bot.timeutil import as_utc
from bot.usage.pull import PullError, probe_source, pull_source
from bot.usage.sources import http
from tests.conftest import with_overrides
from tests.fakes.providers import FakeLiteLLM, Num, stored_totals
from tests.helpers.server import serving

KEY = "sk-litellm-master"
NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)
SINCE = NOW - timedelta(days=2)
PRIYA, TOMAS, SOFIA = ("priya.raman@acme.example", "tomas.novak@acme.example",
                       "sofia.alvarez@acme.example")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "DEFAULT_RETRY", http.RetryPolicy(
        attempts=3, backoff_base=0.01, backoff_cap=0.02))


def row(request_id: str, start: str, spend: Any, *, prompt: int = 1000,
        completion: int = 100, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    """A LiteLLM_SpendLogs row as the proxy returns it (documented columns)."""
    return {
        "request_id": request_id, "call_type": "acompletion",
        "api_key": "fe6b0cab4ff5a5a8df823196cc8a450" + request_id[-4:], "spend": spend,
        "total_tokens": prompt + completion, "prompt_tokens": prompt,
        "completion_tokens": completion, "startTime": start, "endTime": start,
        "model": model, "model_group": model, "custom_llm_provider": "openai",
        "api_base": "https://api.openai.com/v1/", "user": None, "metadata": {},
        "cache_hit": "False", "cache_key": "Cache OFF", "request_tags": [],
        "team_id": None, "end_user": None, "requester_ip_address": "",
        "status": "success", **extra,
    }


def spend_rows() -> list[dict[str, Any]]:
    return [
        row("req-0001", "2026-11-16T14:59:59Z", Num("0.5")),  # before `since`: not stored
        row("req-0002", "2026-11-16T15:30:00.123000Z", Num("2e-06"), user=PRIYA),
        row("req-0003", "2026-11-16T23:59:59.999999+00:00", Decimal("0.0123456789"),
            user="u-123"),  # mapped internal user -> Tomas
        row("req-0004", "2026-11-17T00:00:00Z", Num("1.5E-3"), user="default_user",
            end_user=SOFIA),  # the app named the employee as end user
        row("req-0005", "2026-11-17T08:00:00", Decimal("0.0000005"),  # naive: UTC
            team_id="team-support-uuid", request_tags=["analytics", "jobID:214590dsff09fds"]),
        row("req-0006", "2026-11-17T09:00:00Z", Decimal("0.0000035"), user="u-ghost",
            prompt=50_000, completion=80,
            metadata={"usage_object": {"prompt_tokens": 50_000, "completion_tokens": 80,
                                       "cache_read_input_tokens": 30_000,
                                       "cache_creation_input_tokens": 5_000}}),
        row("req-0007", "2026-11-17T10:00:00Z", Decimal("0.25"), user=PRIYA,
            model="claude-sonnet-4-20250514", custom_llm_provider="anthropic",
            metadata={"mcp_tool_call_metadata": {"name": "search"}}),
        row("req-0008", "2026-11-18T14:59:00Z", Num("0"), user=PRIYA, status="failure",
            prompt=0, completion=0),
        row("req-0009", "2026-11-18T15:00:00Z", Num("9"), user=PRIYA),  # open hour: not yet
    ]


def micros(spend: Any) -> int:
    return int((Decimal(str(spend)) * 1_000_000).quantize(Decimal(1), ROUND_HALF_EVEN))


def spend_expected(rows: list[dict[str, Any]]) -> dict[str, int]:
    def cache(r: dict[str, Any], name: str) -> int:
        return int(r["metadata"].get("usage_object", {}).get(name, 0))

    return {
        "records": len(rows),
        "cost_micros": sum(micros(r["spend"]) for r in rows),
        "input_tokens": sum(r["prompt_tokens"] - cache(r, "cache_read_input_tokens")
                            - cache(r, "cache_creation_input_tokens") for r in rows),
        "output_tokens": sum(r["completion_tokens"] for r in rows),
        "cache_read_tokens": sum(cache(r, "cache_read_input_tokens") for r in rows),
        "cache_write_tokens": sum(cache(r, "cache_creation_input_tokens") for r in rows),
        "requests": len(rows),
    }


def inside(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["request_id"] not in ("req-0001", "req-0009")]


async def litellm_rt(make_runtime: Callable[..., Any], base_config: Any, db_url: str,
                     url: str, *, key: str = KEY, **source: Any) -> Runtime:
    cfg = with_overrides(base_config, sources={"litellm": {
        "base_url": url, "backfill_days": 2,
        "mappings": {"users": {"u-123": TOMAS}, "teams": {"team-support-uuid": "team:support"}},
        **source}})
    rt: Runtime = await make_runtime(config=cfg, env=Env(
        database_url=db_url, source={"LITELLM_MASTER_KEY": key}))
    return rt


async def test_spend_logs_rows_land_once_with_the_proxys_own_cost(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = FakeLiteLLM(KEY)
    fake.spend_logs = spend_rows()
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url)
        result = await pull_source(rt, "litellm")
        again = await pull_source(rt, "litellm")

    want = spend_expected(inside(fake.spend_logs))
    assert await stored_totals(rt) == want
    assert result.stats.new == 7 and result.windows == 3
    assert (again.stats.new, again.stats.replaced, again.stats.unchanged) == (0, 0, 7)
    calls = fake.calls("/spend/logs")
    assert calls[0] == {"start_date": ["2026-11-16"], "end_date": ["2026-11-17"],
                        "summarize": ["false"]}
    assert calls[2]["end_date"] == ["2026-11-19"]  # the partial last day, filtered here

    async with rt.db.reader() as s:
        rows = {r.record_key: r for r in (await s.scalars(select(UsageRecord))).all()}
        emails = dict((await s.execute(select(Person.id, Person.email))).all())
        state = await s.get(SourceState, "litellm")
    by_cost = {r.cost_micros: r for r in rows.values()}
    assert emails[by_cost[2].person_id] == PRIYA  # 2e-06 dollars
    assert emails[by_cost[12346].person_id] == TOMAS  # 0.0123456789 -> half-even micros
    assert emails[by_cost[1500].person_id] == SOFIA
    analytics = next(r for r in rows.values() if r.team_id and r.person_id is None)
    assert analytics.category == "analysis"  # app.yaml rule on the request tag
    assert by_cost[250_000].category == "agentic" and by_cost[250_000].tool_calls == 1
    assert by_cost[250_000].provider == "anthropic"
    ghost = by_cost[4]  # 0.0000035 dollars: 3.5 micro-dollars, half-even
    assert ghost.identity == "user:u-ghost" and ghost.person_id is None
    assert (ghost.input_tokens, ghost.cache_read_tokens, ghost.cache_write_tokens) == (
        15_000, 30_000, 5_000)
    assert result.stats.unattributed == 2  # the team-only row and the unknown user
    assert as_utc(state.checkpoint) == NOW
    assert as_utc(state.data_as_of) == datetime(2026, 11, 18, 14, 59, tzinfo=UTC)


async def test_an_old_proxy_that_only_summarizes_gets_a_clear_hint(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = FakeLiteLLM(KEY)
    fake.spend_logs = spend_rows()
    fake.legacy_summary = True
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url)
        with pytest.raises(PullError, match="mode: daily_activity"):
            await pull_source(rt, "litellm")
    assert (await stored_totals(rt))["records"] == 0


async def test_wrong_key_truncated_and_5xx(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = FakeLiteLLM(KEY)
    fake.spend_logs = spend_rows()
    async with serving(fake.app()) as url:
        wrong = await litellm_rt(make_runtime, base_config, db_url, url, key="sk-nope-999")
        with pytest.raises(PullError, match=r"^litellm: /spend/logs answered 401 .*"
                                            r"check LITELLM_MASTER_KEY"):
            await pull_source(wrong, "litellm")
        rt = await litellm_rt(make_runtime, base_config, db_url, url)
        fake.truncate("/spend/logs")
        with pytest.raises(PullError, match="invalid JSON"):
            await pull_source(rt, "litellm")
        fake.fail("/spend/logs", 502, times=2)  # retried, then fine
        result = await pull_source(rt, "litellm")
        assert "(spend_logs)" in await probe_source(rt, "litellm")
    assert fake.calls("/spend/logs")[-1] == {"request_id": ["tokencoach-probe"]}  # cheap
    assert result.stats.new == 7
    assert await stored_totals(rt) == spend_expected(inside(fake.spend_logs))


def daily_rows() -> list[dict[str, Any]]:
    rows = []
    for n, day in enumerate(date(2026, 11, d) for d in (15, 16, 17, 18)):
        for user in ("u-1", "u-2"):
            for model in ("gpt-4o-mini", "claude-sonnet-4-20250514"):
                rows.append({
                    "date": day, "user_id": user, "api_key": "hashed" + user, "model": model,
                    "spend": Decimal(f"0.{n + 1}23456789"), "prompt_tokens": 1000 * (n + 1),
                    "completion_tokens": 100 + n, "cache_read_input_tokens": 10 * n,
                    "cache_creation_input_tokens": n, "api_requests": 3 + n,
                })
    return rows


@pytest.mark.parametrize("nested", [True, False], ids=["nested", "flat"])
async def test_daily_activity_merges_pages_by_date_and_model(
        make_runtime, base_config, db_url, nested: bool) -> None:  # type: ignore[no-untyped-def]
    fake = FakeLiteLLM(KEY)
    fake.daily = daily_rows()
    fake.nested = nested
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url, mode="daily_activity")
        result = await pull_source(rt, "litellm")
        again = await pull_source(rt, "litellm")
        assert "daily_activity" in await probe_source(rt, "litellm")

    # Whole days only: the 16th (since floors to midnight) and the 17th; today is open.
    assert (result.since, result.until) == (datetime(2026, 11, 16, tzinfo=UTC),
                                            datetime(2026, 11, 18, tzinfo=UTC))
    groups: dict[tuple[date, str], list[dict[str, Any]]] = defaultdict(list)
    for r in fake.daily:
        if date(2026, 11, 16) <= r["date"] <= date(2026, 11, 17):
            groups[(r["date"], r["model"])].append(r)
    members = [r for g in groups.values() for r in g]
    assert await stored_totals(rt) == {
        "records": len(groups),
        # one record per (day, model): its spend is summed first, then rounded once
        "cost_micros": sum(micros(sum(r["spend"] for r in g)) for g in groups.values()),
        "input_tokens": sum(r["prompt_tokens"] - r["cache_read_input_tokens"]
                            - r["cache_creation_input_tokens"] for r in members),
        "output_tokens": sum(r["completion_tokens"] for r in members),
        "cache_read_tokens": sum(r["cache_read_input_tokens"] for r in members),
        "cache_write_tokens": sum(r["cache_creation_input_tokens"] for r in members),
        "requests": sum(r["api_requests"] for r in members),
    }
    pages = [q for q in fake.calls("/user/daily/activity") if q.get("page_size") != ["1"]]
    assert len(pages) >= 4 and pages[1]["page"] == ["2"]  # 4 rows a day, 3 a page
    assert again.stats.unchanged == len(groups) and again.stats.new == 0


async def test_daily_activity_that_pages_forever_stops(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = FakeLiteLLM(KEY)
    fake.page_forever("/user/daily/activity")
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url, mode="daily_activity",
                              max_pages=4)
        with pytest.raises(PullError, match="more pages after 4 pages"):
            await pull_source(rt, "litellm")
    assert len(fake.calls("/user/daily/activity")) == 4
