"""LiteLLM connector: raw spend logs (paginated /spend/logs/v2, or the legacy unpaginated
/spend/logs on an older proxy) and the daily activity breakdown, against a loopback fake
shaped like the proxy's own endpoints (see tests/fakes/providers.py for the source files)."""

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
from bot.usage.sources import http, litellm
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
        # The schema has no email column: the key owner's email is in the metadata.
        row("req-0010", "2026-11-16T18:00:00Z", Decimal("0.000042"), user="u-sofia",
            metadata={"user_api_key_user_email": SOFIA, "user_api_key_alias": "sofia-dev"}),
        row("req-0011", "2026-11-17T12:00:00Z", Decimal("0.000777"), user="u-lucas"),
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


USERS = [{"user_id": "u-lucas", "user_email": "lucas.martin@acme.example"},
         {"user_id": "u-nomail", "user_email": None}]


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
    fake.users = USERS
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url)
        result = await pull_source(rt, "litellm")
        again = await pull_source(rt, "litellm")
        described = await probe_source(rt, "litellm")

    want = spend_expected(inside(fake.spend_logs))
    assert await stored_totals(rt) == want
    assert result.stats.new == 9 and result.windows == 3
    assert (again.stats.new, again.stats.replaced, again.stats.unchanged) == (0, 0, 9)
    assert not fake.calls("/spend/logs")  # never the unpaginated endpoint on this proxy
    calls = fake.calls("/spend/logs/v2")
    assert calls[0] == {"start_date": ["2026-11-16 15:00:00"],
                        "end_date": ["2026-11-17 00:00:00"], "page_size": ["1000"],
                        "sort_by": ["startTime"], "sort_order": ["asc"], "page": ["1"]}
    assert "paginated /spend/logs/v2" in described

    async with rt.db.reader() as s:
        rows = {r.record_key: r for r in (await s.scalars(select(UsageRecord))).all()}
        emails = dict((await s.execute(select(Person.id, Person.email))).all())
        state = await s.get(SourceState, "litellm")
    by_cost = {r.cost_micros: r for r in rows.values()}
    assert emails[by_cost[2].person_id] == PRIYA  # 2e-06 dollars
    assert emails[by_cost[12346].person_id] == TOMAS  # 0.0123456789 -> half-even micros
    assert emails[by_cost[1500].person_id] == SOFIA
    assert emails[by_cost[42].person_id] == SOFIA  # metadata.user_api_key_user_email
    # u-lucas's email came from the proxy's own user list (/user/list), not from the row.
    assert emails[by_cost[777].person_id] == "lucas.martin@acme.example"
    assert any("matched to people by email" in n for n in result.notes)
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


async def test_a_busy_window_is_cut_until_each_part_fits_one_page(
        make_runtime, base_config, db_url, monkeypatch: pytest.MonkeyPatch
        ) -> None:  # type: ignore[no-untyped-def]
    """Offset pages over rows that share a startTime can skip or repeat rows (the fake,
    like PostgreSQL, returns ties in no set order). No page 2 is ever asked for: a range
    with more rows than a page is halved until every part fits one page."""
    monkeypatch.setattr(litellm, "V2_PAGE_SIZE", 4)
    fake = FakeLiteLLM(KEY)
    start = datetime(2026, 11, 17, 9, tzinfo=UTC)
    fake.spend_logs = [
        row(f"req-{n:04d}", (start + timedelta(seconds=37 * (n // 3))).isoformat(),
            Decimal(f"0.00{n + 1:04d}"), user=PRIYA)  # three rows share each second
        for n in range(60)]
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url, fetch_user_emails=False)
        result = await pull_source(rt, "litellm")
    assert await stored_totals(rt) == spend_expected(fake.spend_logs)
    assert result.stats.new == 60
    calls = fake.calls("/spend/logs/v2")
    assert all(q["page"] == ["1"] for q in calls) and len(calls) > 15


async def test_a_second_with_more_rows_than_a_page_is_paged_and_counted(
        make_runtime, base_config, db_url, monkeypatch: pytest.MonkeyPatch
        ) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(litellm, "V2_PAGE_SIZE", 4)
    fake = FakeLiteLLM(KEY)
    same = "2026-11-17T09:00:00.250000Z"
    fake.spend_logs = [row(f"req-{n:04d}", same, Decimal("0.001"), user=PRIYA)
                       for n in range(10)]
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url, fetch_user_emails=False)
        try:
            result = await pull_source(rt, "litellm")
        except PullError as exc:
            # Ties came back in another order on a later page: refused, nothing stored.
            assert "rows moved between pages" in str(exc)
            assert (await stored_totals(rt))["records"] == 0
        else:
            # Read completely: each row exactly once.
            assert result.stats.new == 10
            assert await stored_totals(rt) == spend_expected(fake.spend_logs)
    assert any(q["page"] == ["3"] for q in fake.calls("/spend/logs/v2"))


async def test_an_older_proxy_without_v2_uses_the_legacy_endpoint(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = FakeLiteLLM(KEY)
    fake.spend_logs = spend_rows()
    fake.has_v2 = False
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url, fetch_user_emails=False)
        result = await pull_source(rt, "litellm")
        described = await probe_source(rt, "litellm")
        fake.legacy_cap = 2  # a window beyond the proxy's row cap is refused, not cut
        fake.spend_logs[4]["spend"] = Decimal("0.5")
        with pytest.raises(PullError, match="truncated its answer"):
            await pull_source(rt, "litellm")
    assert result.stats.new == 9
    assert len(fake.calls("/spend/logs/v2")) == 1 + 1 + 1  # detected once per pull/probe
    calls = fake.calls("/spend/logs")
    assert calls[0] == {"start_date": ["2026-11-16"], "end_date": ["2026-11-17"],
                        "summarize": ["false"]}
    assert calls[2]["end_date"] == ["2026-11-19"]  # the partial last day, filtered here
    assert "legacy unpaginated /spend/logs will be used" in described
    assert await stored_totals(rt) == spend_expected(inside(spend_rows()))  # unchanged


async def test_an_old_proxy_that_only_summarizes_gets_a_clear_hint(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = FakeLiteLLM(KEY)
    fake.spend_logs = spend_rows()
    fake.legacy_summary = True
    fake.has_v2 = False
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url, fetch_user_emails=False)
        with pytest.raises(PullError, match="mode: daily_activity"):
            await pull_source(rt, "litellm")
    assert (await stored_totals(rt))["records"] == 0


async def test_wrong_key_truncated_and_5xx(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = FakeLiteLLM(KEY)
    fake.spend_logs = spend_rows()
    fake.users = USERS
    async with serving(fake.app()) as url:
        wrong = await litellm_rt(make_runtime, base_config, db_url, url, key="sk-nope-999")
        with pytest.raises(PullError, match=r"^litellm: /spend/logs/v2 answered 401 .*"
                                            r"check LITELLM_MASTER_KEY"):
            await pull_source(wrong, "litellm")
        rt = await litellm_rt(make_runtime, base_config, db_url, url)
        fake.truncate("/spend/logs/v2")
        with pytest.raises(PullError, match="invalid JSON"):
            await pull_source(rt, "litellm")
        fake.fail("/spend/logs/v2", 502, times=2)  # retried, then fine
        result = await pull_source(rt, "litellm")
    assert result.stats.new == 9
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


@pytest.mark.parametrize("aggregated", [True, False], ids=["aggregated", "paged"])
@pytest.mark.parametrize("nested", [True, False], ids=["nested", "flat"])
async def test_daily_activity_merges_pages_by_date_and_model(
        make_runtime, base_config, db_url, nested: bool, aggregated: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(litellm, "DAILY_PAGE_SIZE", 3)  # 4 rows a day: a day spans pages
    fake = FakeLiteLLM(KEY)
    fake.daily = daily_rows()
    fake.nested = nested
    fake.has_aggregated = aggregated
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
    if aggregated:  # one answer per window, no pages to stitch
        assert not pages and len(fake.calls("/user/daily/activity/aggregated")) == 4
    else:
        assert len(pages) >= 4 and pages[1]["page"] == ["2"]
    assert again.stats.unchanged == len(groups) and again.stats.new == 0


async def test_a_row_written_between_two_page_reads_is_read_once(
        make_runtime, base_config, db_url, monkeypatch: pytest.MonkeyPatch
        ) -> None:  # type: ignore[no-untyped-def]
    """Pages are offsets over (date desc, id asc) and a window asks for one date: a row
    written while the pages are read lands after the rows already read, so it is read
    once, on a later page; page 1 read again (the check for a proxy that orders otherwise)
    is unchanged."""
    monkeypatch.setattr(litellm, "DAILY_PAGE_SIZE", 3)
    fake = FakeLiteLLM(KEY)
    fake.daily = daily_rows()
    fake.has_aggregated = False
    late = {**fake.daily[-1], "date": date(2026, 11, 17), "user_id": "u-3",
            "spend": Decimal("5"), "api_requests": 1}

    def write_late(page: int) -> None:
        if page == 2 and late not in fake.daily:
            fake.daily.append(late)

    fake.before_daily_page = write_late
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url, mode="daily_activity")
        result = await pull_source(rt, "litellm", since=datetime(2026, 11, 17, tzinfo=UTC))
    rows = [r for r in fake.daily if r["date"] == date(2026, 11, 17)]
    assert late in rows and result.stats.new == 2
    got = await stored_totals(rt)
    assert got["requests"] == sum(r["api_requests"] for r in rows)  # nothing read twice
    assert got["cost_micros"] == sum(micros(sum(r["spend"] for r in rows if r["model"] == m))
                                     for m in {r["model"] for r in rows})
    assert [q["page"] for q in fake.calls("/user/daily/activity")] == [["1"], ["2"], ["1"]]


async def test_daily_activity_that_pages_forever_stops(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = FakeLiteLLM(KEY)
    fake.has_aggregated = False
    fake.page_forever("/user/daily/activity")
    async with serving(fake.app()) as url:
        rt = await litellm_rt(make_runtime, base_config, db_url, url, mode="daily_activity",
                              max_pages=4)
        with pytest.raises(PullError, match="more pages after 4 pages"):
            await pull_source(rt, "litellm")
    assert len(fake.calls("/user/daily/activity")) == 4
