"""Anthropic connector: the Usage and Cost Analytics API (default) and the legacy
Messages usage / cost reports, and the Claude Code report, against a loopback fake serving
the documented payloads. Money is checked against this test's own price table with every
billed dimension: 1-hour cache writes, web searches, the batch tier, the long-context band."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config.env import Env
from bot.runtime import Runtime
from bot.store.tables import Person, ProviderCost, SourceState, UsageRecord
from bot.timeutil import as_utc
from bot.usage.pull import PullError, probe_source, pull_source
from bot.usage.sources import anthropic, http
from tests.conftest import with_overrides
from tests.fakes.providers import FakeAnthropic, claude_code_record, stored_totals
from tests.helpers.server import serving

KEY = "sk-ant-admin-test"
NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)
SINCE = NOW - timedelta(days=2)
DAY2 = datetime(2026, 11, 17, tzinfo=UTC)
MESSAGES = "/v1/organizations/usage_report/messages"
CLAUDE_CODE = "/v1/organizations/usage_report/claude_code"
COSTS = "/v1/organizations/cost_report"
SONNET, HAIKU = "claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"
ANALYTICS = "/v1/organizations/analytics/usage"
ANALYTICS_COST = "/v1/organizations/analytics/cost"
# This test's own prices, USD per 1M tokens (web search: USD per 1,000 searches).
PRICES: dict[str, dict[str, Any]] = {
    SONNET: {"input": "3.00", "cache_read": "0.30", "cache_write": "3.75",
             "cache_write_1h": "6.00", "output": "15.00", "web_search_per_1k": "10.00",
             "tiers": {"batch": "0.5"},
             "long_context": {"input": "6.00", "output": "22.50", "cache_read": "0.60",
                              "cache_write": "7.50", "cache_write_1h": "12.00"}},
    HAIKU: {"input": "0.80", "cache_read": "0.08", "cache_write": "1.00", "output": "4.00",
            "tiers": {"batch": "0.5"}},  # no 1-hour, web search or priority rate
}
LENA, KENJI, PRIYA = ("lena.fischer@acme.example", "kenji.watanabe@acme.example",
                      "priya.raman@acme.example")


def user(email: str, uid: str) -> dict[str, Any]:
    return {"type": "user_actor", "user_id": uid, "email_address": email, "name": uid,
            "deleted": False}


# Service accounts are tagged "svac_..." (the actor_ids[] filter's documentation).
ROBOT = {"type": "service_account_actor", "service_account_id": "svac_ci"}
KEY_ACTOR = {"type": "api_actor", "api_key_id": "apikey_ci"}  # usage of the key itself
# (actor, api_key_id, workspace_id, model, product): each legacy group (key, workspace,
# model) has one actor, so both APIs see the same rows and round the same way.
COMBOS = [
    (user(LENA, "user_lena"), "apikey_lena", "wrkspc_core", SONNET, "api"),  # key mapped
    (user(LENA, "user_lena"), "apikey_lena", "wrkspc_core", HAIKU, "claude_code"),
    (user(KENJI, "user_kenji"), "apikey_growth", "wrkspc_growth", SONNET, "api"),
    (ROBOT, "apikey_unknown", None, HAIKU, "api"),  # nobody: unattributed
    (user(PRIYA, "user_priya"), None, None, SONNET, "api"),  # Console: no key
    (KEY_ACTOR, "apikey_ci", "wrkspc_core", SONNET, "api"),
]
TIERS = [("standard", "0-200k"), ("batch", "0-200k"), ("standard", "200k-1M"),
         ("priority", "0-200k")]
@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "DEFAULT_RETRY", http.RetryPolicy(
        attempts=3, backoff_base=0.01, backoff_cap=0.02))


def usage_rows(since: datetime = SINCE, now: datetime = NOW) -> list[dict[str, Any]]:
    rng = random.Random(11)
    rows = []
    hour = since - timedelta(hours=2)
    while hour <= now:
        for actor, key, workspace, model, product in COMBOS:
            for tier, window in TIERS:
                if window != "0-200k" and model != SONNET:
                    continue  # the long-context band is a Sonnet one
                if rng.random() >= (0.4 if (tier, window) == TIERS[0] else 0.1):
                    continue
                rows.append({
                    "start": hour, "actor": actor, "api_key_id": key,
                    "workspace_id": workspace, "model": model, "product": product,
                    "service_tier": tier, "context_window": window,
                    "uncached_input_tokens": rng.randint(10, 90_000),
                    "output_tokens": rng.randint(1, 20_000),
                    "cache_read_input_tokens": rng.choice([0, rng.randint(1, 400_000)]),
                    "cache_1h": rng.choice([0, 0, rng.randint(1, 5_000)]),
                    "cache_5m": rng.choice([0, rng.randint(1, 50_000)]),
                    "web_search_requests": rng.choice([0, 0, 3, 17]),
                    "requests": rng.randint(1, 40),
                })
        hour += timedelta(hours=1)
    return rows


def claude_code_rows() -> list[dict[str, Any]]:
    kenji = {"type": "user_actor", "email_address": KENJI}
    priya = {"type": "user_actor", "email_address": PRIYA}
    stranger = {"type": "user_actor", "email_address": "contractor@elsewhere.example"}
    return [
        # The 15th is outside the window: never fetched.
        claude_code_record("2026-11-15", kenji, "subscription", [(SONNET, 9, 9, 9, 9, 999)]),
        # The documented example writes the date as RFC 3339; the text says YYYY-MM-DD.
        claude_code_record("2026-11-16T00:00:00Z", kenji, "subscription",
                           [(SONNET, 45230, 12450, 8790, 2340, 186),
                            (HAIKU, 23100, 5680, 3420, 890, 42)]),
        claude_code_record("2026-11-16", priya, "api", [(SONNET, 500, 50, 0, 0, 7)]),
        claude_code_record("2026-11-16", stranger, "subscription",
                           [(HAIKU, 1000, 100, 0, 0, Decimal("12.5"))]),
        claude_code_record("2026-11-17", priya, "subscription", [(SONNET, 300, 30, 3, 3, 11)],
                           terminal="iTerm.app"),
        # Two rows with the same key (same actor, day, terminal, model) are added up.
        claude_code_record("2026-11-17", priya, "subscription", [(SONNET, 700, 70, 7, 7, 25)],
                           terminal="iTerm.app"),
        claude_code_record("2026-11-17", kenji, "api", [(HAIKU, 1, 1, 1, 1, 1)]),
        claude_code_record("2026-11-18", kenji, "subscription", [(SONNET, 10, 20, 30, 40, 3)]),
        {**claude_code_record("2026-11-18", {"type": "api_actor", "api_key_name": "ci-bot"},
                              "api", [(SONNET, 1, 1, 1, 1, 1)])},
    ]


def cost_rows() -> list[dict[str, Any]]:
    rows = []
    for n, day in enumerate((SINCE.date(), DAY2.date(), NOW.date())):
        for workspace in ("wrkspc_core", None):
            for tier in ("standard", "batch"):  # same description, two tiers: no collision
                rows.append({"day": day, "workspace_id": workspace,
                             "description": "Claude Sonnet 4 Usage - Input Tokens",
                             "cost_type": "tokens", "model": SONNET, "service_tier": tier,
                             "context_window": "0-200k",
                             "token_type": "uncached_input_tokens",
                             "amount": f"{123 + n}.78912"})
            rows.append({"day": day, "workspace_id": workspace, "description": "Web Search",
                         "cost_type": "web_search", "model": None, "service_tier": None,
                         "context_window": None, "token_type": None, "amount": "1000"})
    return rows


def usage_micros(row: dict[str, Any]) -> int:
    """The documented pricing rule with this test's rates: each token kind at its rate (the
    long-context band's where it has one), 1-hour writes at their own rate (else the
    5-minute one), the tier multiplier on every token amount, web searches per 1,000."""
    table = PRICES[row["model"]]
    band = table.get("long_context") if row["context_window"] != "0-200k" else None

    def rate(name: str, fallback: str) -> Decimal:
        return Decimal((band or {}).get(name) or table.get(name) or table[fallback])

    tokens = (row["uncached_input_tokens"] * rate("input", "input")
              + row["cache_read_input_tokens"] * rate("cache_read", "cache_read")
              + row["cache_5m"] * rate("cache_write", "cache_write")
              + row["cache_1h"] * rate("cache_write_1h", "cache_write")
              + row["output_tokens"] * rate("output", "output"))  # $/1M = micro-$/token
    factor = Decimal(table["tiers"].get(row["service_tier"], "1"))
    searches = row["web_search_requests"] * Decimal(table.get("web_search_per_1k", "0")) * 1000
    return int((tokens * factor + searches).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def expected_claude_code(rows: list[dict[str, Any]], days: set[str]) -> dict[str, Any]:
    kept = [r for r in rows if r["date"][:10] in days and r["customer_type"] == "subscription"]
    models = [m for r in kept for m in r["model_breakdown"]]
    keys = {(r["date"][:10], r["actor"].get("email_address"), r["terminal_type"], m["model"])
            for r in kept for m in r["model_breakdown"]}
    skipped = sum(len(r["model_breakdown"]) for r in rows
                  if r["date"][:10] in days and r["customer_type"] != "subscription")
    return {
        "records": len(keys),
        # estimated_cost.amount is in cents: 186 -> $1.86 -> 1,860,000 micro-dollars
        "cost_micros": sum(int(Decimal(m["estimated_cost"]["amount"]) * 10_000)
                           for m in models),
        "input_tokens": sum(m["tokens"]["input"] for m in models),
        "output_tokens": sum(m["tokens"]["output"] for m in models),
        "cache_read_tokens": sum(m["tokens"]["cache_read"] for m in models),
        "cache_write_tokens": sum(m["tokens"]["cache_creation"] for m in models),
        "requests": 0,
        "skipped": skipped,
    }


def expected(usage: list[dict[str, Any]], code: list[dict[str, Any]], start: datetime,
             end: datetime, api: str = "analytics") -> dict[str, int]:
    rows = [r for r in usage if start <= r["start"] < end]
    days = set()
    day = start.date()
    while datetime.combine(day, datetime.min.time(), UTC) < end:
        days.add(day.isoformat())
        day += timedelta(days=1)
    cc = expected_claude_code(code, days)
    return {
        "records": len(rows) + cc["records"],
        "cost_micros": sum(usage_micros(r) for r in rows) + cc["cost_micros"],
        "input_tokens": sum(r["uncached_input_tokens"] for r in rows) + cc["input_tokens"],
        "output_tokens": sum(r["output_tokens"] for r in rows) + cc["output_tokens"],
        "cache_read_tokens": sum(r["cache_read_input_tokens"] for r in rows)
        + cc["cache_read_tokens"],
        "cache_write_tokens": sum(r["cache_1h"] + r["cache_5m"] for r in rows)
        + cc["cache_write_tokens"],
        # The legacy Messages report has no request counts; the analytics API has them.
        "requests": sum(r["requests"] for r in rows) if api == "analytics" else 0,
    }


def make_fake(since: datetime = SINCE, now: datetime = NOW) -> FakeAnthropic:
    fake = FakeAnthropic(KEY)
    fake.usage = usage_rows(since, now)
    fake.claude_code = claude_code_rows()
    fake.costs = cost_rows()
    fake.analytics_costs = [
        {"day": r["day"], "workspace_id": r["workspace_id"], "model": r["model"],
         "cost_type": r["cost_type"], "token_type": r["token_type"], "amount": r["amount"]}
        for r in cost_rows()]
    return fake


async def anthropic_rt(make_runtime: Callable[..., Any], base_config: Any, db_url: str,
                       url: str, *, key: str = KEY, api: str = "legacy",
                       **source: Any) -> Runtime:
    cfg = with_overrides(
        base_config,
        sources={"anthropic": {
            "base_url": url, "bucket_width": "1h", "backfill_days": 2, "api": api,
            "mappings": {"api_keys": {"apikey_lena": LENA},
                         "workspaces": {"wrkspc_growth": "team:growth"}},
            **source}},
        pricing={"use_defaults": False, "models": [
            {"model": m, "provider": "anthropic", **rates} for m, rates in PRICES.items()]},
    )
    rt: Runtime = await make_runtime(config=cfg, env=Env(
        database_url=db_url, source={"ANTHROPIC_ADMIN_KEY": key}))
    return rt


def cost_micros(rows: list[dict[str, Any]]) -> int:
    """The cost report's amounts are decimal strings in CENTS: "123.78912" = $1.2378912."""
    return sum(int((Decimal(r["amount"]) * 10_000).quantize(Decimal(1), ROUND_HALF_EVEN))
               for r in rows)


async def test_backfill_messages_costs_and_claude_code_match_the_fixture(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    """The legacy Usage and Cost API (sources.anthropic.api: legacy)."""
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await anthropic_rt(make_runtime, base_config, db_url, url)
        result = await pull_source(rt, "anthropic")

    want = expected(fake.usage, fake.claude_code, SINCE, NOW, "legacy")
    assert await stored_totals(rt) == want
    assert result.windows == 3 and result.stats.new == want["records"]
    assert not fake.calls(ANALYTICS)

    # Headers and parameters as documented: bracketed group_by[], RFC 3339 times.
    first = fake.calls(MESSAGES)[0]
    assert sorted(first["group_by[]"]) == ["api_key_id", "context_window", "model",
                                           "service_tier", "workspace_id"]
    assert first["starting_at"] == ["2026-11-16T15:00:00Z"]
    assert first["ending_at"] == ["2026-11-17T00:00:00Z"]
    assert [q["starting_at"] for q in fake.calls(CLAUDE_CODE) if "page" not in q] == [
        ["2026-11-16"], ["2026-11-17"], ["2026-11-18"]]
    assert any("page" in q for q in fake.calls(CLAUDE_CODE))  # 2 records a page: paged
    headers = fake.requests[0][2]
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"

    async with rt.db.reader() as s:
        cc = (await s.execute(select(
            func.count(), func.sum(UsageRecord.cost_micros), func.min(UsageRecord.category),
            func.max(UsageRecord.category)).where(UsageRecord.source == "claude_code"))).one()
        kenji = await s.scalar(
            select(func.sum(UsageRecord.cost_micros)).join(
                Person, Person.id == UsageRecord.person_id)
            .where(Person.email == KENJI, UsageRecord.source == "claude_code"))
        lena = await s.scalar(
            select(func.count()).select_from(UsageRecord).join(
                Person, Person.id == UsageRecord.person_id).where(Person.email == LENA))
        stranger = await s.scalar(select(func.count()).where(
            UsageRecord.identity == "user:contractor@elsewhere.example"))
        costs = (await s.execute(select(func.count(), func.sum(ProviderCost.amount_micros))
                                 .where(ProviderCost.source == "anthropic"))).one()
        cc_state = await s.get(SourceState, "claude_code")
        state = await s.get(SourceState, "anthropic")
    days = {"2026-11-16", "2026-11-17", "2026-11-18"}
    cc_want = expected_claude_code(fake.claude_code, days)
    assert cc[0] == cc_want["records"] == 5 and int(cc[1]) == cc_want["cost_micros"]
    assert cc[2] == cc[3] == "agentic"  # Claude Code is agentic by definition
    assert int(kenji) == (186 + 42 + 3) * 10_000  # cents -> micro-dollars
    assert lena == sum(1 for r in fake.usage if SINCE <= r["start"] < NOW
                       and r["api_key_id"] == "apikey_lena")
    # HAIKU has no priority rate in this table: priced at standard rates, and said so.
    note = next(n for n in result.notes if n.startswith("priced with a fallback rate"))
    assert "priority tier at standard rates" in note
    assert stranger == 1  # unattributed, stored and counted
    # Only subscription rows were kept; API-billed ones are in the Messages report.
    note = next(n for n in result.notes if "Claude Code" in n)
    assert note.startswith(f"{cc_want['skipped']} Claude Code row(s) skipped: api-billed")
    assert costs[0] == len(fake.costs) and int(costs[1]) == cost_micros(fake.costs)
    assert as_utc(state.checkpoint) == NOW and as_utc(cc_state.data_as_of) == NOW
    assert "reconciliation 2026-11-17 → 2026-11-17" in " ".join(result.notes)


async def test_repull_is_unchanged_and_a_restated_bucket_replaces(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await anthropic_rt(make_runtime, base_config, db_url, url)
        first = await pull_source(rt, "anthropic")
        again = await pull_source(rt, "anthropic")
        assert (again.stats.new, again.stats.replaced) == (0, 0)
        assert again.stats.unchanged == first.stats.new

        inside = [r for r in fake.usage if SINCE <= r["start"] < NOW]
        inside[3]["output_tokens"] += 999  # a Messages bucket restated
        fake.claude_code[4]["model_breakdown"][0]["estimated_cost"]["amount"] = 15
        restated = await pull_source(rt, "anthropic")
    assert (restated.stats.new, restated.stats.replaced) == (0, 2)
    assert await stored_totals(rt) == expected(fake.usage, fake.claude_code, SINCE, NOW,
                                               "legacy")


async def test_failure_in_the_claude_code_report_rolls_back_the_whole_window(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    fake.fail(CLAUDE_CODE, 503, times=None,
              when=lambda r: r.query.get("starting_at") == "2026-11-17")
    async with serving(fake.app()) as url:
        rt = await anthropic_rt(make_runtime, base_config, db_url, url)
        with pytest.raises(PullError, match=f"anthropic: {CLAUDE_CODE} answered 503"):
            await pull_source(rt, "anthropic")
        # Window 2's Messages usage was fetched fine, but nothing of it was written.
        assert await stored_totals(rt) == expected(fake.usage, fake.claude_code, SINCE, DAY2,
                                                   "legacy")
        fake.clear_faults()
        fake.fail(MESSAGES, 529, times=2)  # "overloaded" twice, then fine
        resumed = await pull_source(rt, "anthropic")
    assert resumed.since == DAY2 - timedelta(hours=48)
    assert await stored_totals(rt) == expected(fake.usage, fake.claude_code, resumed.since,
                                               NOW, "legacy")


async def test_wrong_key_and_missing_version_header(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await anthropic_rt(make_runtime, base_config, db_url, url, key="sk-ant-nope")
        with pytest.raises(PullError) as err:
            await pull_source(rt, "anthropic")
        good = await anthropic_rt(make_runtime, base_config, db_url, url)
        described = await probe_source(good, "anthropic")
    message = str(err.value)
    assert message == (f"anthropic: {MESSAGES} answered 401 Unauthorized: check "
                       "ANTHROPIC_ADMIN_KEY (invalid x-api-key)")
    assert "ANTHROPIC_ADMIN_KEY accepted" in described
    assert (await stored_totals(rt))["records"] == 0


@pytest.mark.parametrize("breakage", ["truncated", "schema"])
async def test_bad_cost_report_fails_the_window_cleanly(
        make_runtime, base_config, db_url, breakage: str) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    (fake.truncate if breakage == "truncated" else fake.break_schema)(COSTS)
    async with serving(fake.app()) as url:
        rt = await anthropic_rt(make_runtime, base_config, db_url, url)
        with pytest.raises(PullError, match=f"^anthropic: {COSTS} answered "):
            await pull_source(rt, "anthropic")
    assert (await stored_totals(rt))["records"] == 0


async def test_claude_code_off_and_costs_off(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await anthropic_rt(make_runtime, base_config, db_url, url, claude_code=False,
                                reconcile_costs=False, bucket_width="1d")
        result = await pull_source(rt, "anthropic")
    assert not fake.calls(CLAUDE_CODE) and not fake.calls(COSTS)
    assert result.windows == 2  # 1d buckets: the 16th and the 17th
    got = await stored_totals(rt)
    rows = [r for r in fake.usage if datetime(2026, 11, 16, tzinfo=UTC) <= r["start"]
            < datetime(2026, 11, 18, tzinfo=UTC)]
    assert got["output_tokens"] == sum(r["output_tokens"] for r in rows)
    assert got["cache_write_tokens"] == sum(r["cache_1h"] + r["cache_5m"] for r in rows)


async def test_analytics_api_attributes_by_actor_email_and_prices_every_dimension(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    """The default: the Usage and Cost Analytics API, grouped by actor."""
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await anthropic_rt(make_runtime, base_config, db_url, url, api="analytics",
                                mappings={})  # no key mapping: the actor's email attributes
        result = await pull_source(rt, "anthropic")
        described = await probe_source(rt, "anthropic")

    want = expected(fake.usage, fake.claude_code, SINCE, NOW, "analytics")
    assert await stored_totals(rt) == want
    assert not fake.calls(MESSAGES) and not fake.calls(COSTS)
    first = fake.calls(ANALYTICS)[0]
    assert sorted(first["group_by[]"]) == ["actor", "api_key_id", "context_window", "model",
                                           "product", "service_tier", "workspace_id"]
    assert first["time_bucket_width"] == ["1h"]
    assert first["starting_at"] == ["2026-11-16T15:00:00Z"]
    assert any("page" in q for q in fake.calls(ANALYTICS))  # 25 rows a page: paged
    beta = {p: h.get("anthropic-beta") for p, _, h in fake.requests}
    assert beta[ANALYTICS] == beta[ANALYTICS_COST] == "analytics-usage-cost-2026-08-24"
    assert beta[CLAUDE_CODE] is None  # the beta header only where it belongs
    assert "api: analytics" in described and "Usage and Cost Analytics API" in described

    inside = [r for r in fake.usage if SINCE <= r["start"] < NOW]
    by_email: dict[str | None, int] = {}
    for r in inside:
        email = r["actor"].get("email_address")
        by_email[email] = by_email.get(email, 0) + usage_micros(r)
    async with rt.db.reader() as s:
        stored = dict((await s.execute(
            select(Person.email, func.sum(UsageRecord.cost_micros))
            .join(Person, Person.id == UsageRecord.person_id, isouter=True)
            .where(UsageRecord.source == "anthropic").group_by(Person.email))).all())
        robot = await s.scalar(select(func.count()).where(
            UsageRecord.identity == "user:svac_ci"))
        by_key = await s.scalar(select(func.count()).where(
            UsageRecord.identity == "api_key:apikey_ci"))
        agentic = await s.scalar(select(func.count()).where(
            UsageRecord.source == "anthropic", UsageRecord.category == "agentic"))
        costs = (await s.execute(select(func.count(), func.sum(ProviderCost.amount_micros))
                                 .where(ProviderCost.source == "anthropic"))).one()
    assert {k: int(v) for k, v in stored.items()} == by_email  # cent-exact, per person
    assert robot == sum(1 for r in inside if r["actor"] is ROBOT) > 0  # kept, unattributed
    assert by_key == sum(1 for r in inside if r["actor"] is KEY_ACTOR) > 0  # by its key
    assert agentic == sum(1 for r in inside if r["product"] == "claude_code") > 0
    assert int(costs[1]) == cost_micros(fake.analytics_costs)
    assert "reconciliation 2026-11-17 → 2026-11-17" in " ".join(result.notes)


async def test_switching_to_the_analytics_api_replaces_the_legacy_rows_of_a_window(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    """The two APIs key rows differently; re-pulling a window with the other one must not
    count it twice: the window's answer replaces what the other API stored."""
    fake = make_fake()
    async with serving(fake.app()) as url:
        legacy = await anthropic_rt(make_runtime, base_config, db_url, url)
        await pull_source(legacy, "anthropic")
        rt = await anthropic_rt(make_runtime, base_config, db_url, url, api="analytics")
        switched = await pull_source(rt, "anthropic")  # checkpoint - 48 h: the same window
    assert switched.stats.removed == switched.stats.new > 0
    assert await stored_totals(rt) == expected(fake.usage, fake.claude_code, SINCE, NOW,
                                               "analytics")


async def test_windows_before_the_analytics_api_has_data_are_read_from_the_legacy_api(
        make_runtime, base_config, db_url, clock) -> None:  # type: ignore[no-untyped-def]
    """starting_at "must be ... no earlier than 2026-01-01T00:00:00Z": a backfill across
    New Year reads 30 and 31 December from the legacy reports, 1 January from analytics."""
    now = datetime(2026, 1, 1, 15, tzinfo=UTC)
    clock.set(now)
    fake = make_fake(now - timedelta(days=2), now)
    async with serving(fake.app()) as url:
        rt = await anthropic_rt(make_runtime, base_config, db_url, url, api="analytics",
                                claude_code=False)
        result = await pull_source(rt, "anthropic")
    assert result.windows == 3
    assert {q["starting_at"][0][:10] for q in fake.calls(MESSAGES)} == {
        "2025-12-30", "2025-12-31"}
    assert {q["starting_at"][0][:10] for q in fake.calls(ANALYTICS)} == {"2026-01-01"}
    assert {q["starting_at"][0][:10] for q in fake.calls(COSTS)} == {"2025-12-30",
                                                                    "2025-12-31"}
    assert {q["starting_at"][0][:10] for q in fake.calls(ANALYTICS_COST)} == {"2026-01-01"}
    inside = [r for r in fake.usage if now - timedelta(days=2) <= r["start"] < now]
    want = expected(fake.usage, [], now - timedelta(days=2), now)
    # Request counts only exist in the analytics rows (1 January).
    want["requests"] = sum(r["requests"] for r in inside
                           if r["start"] >= datetime(2026, 1, 1, tzinfo=UTC))
    assert await stored_totals(rt) == want


def test_actor_kinds_and_the_documented_payload_types() -> None:
    """The four documented actor kinds; a federated identity (no tagged ID) is kept and
    attributed by its key. Amounts are documented as decimal strings of cents; a page
    without has_more is followed while next_page is set."""
    def row(actor: dict[str, Any]) -> Any:
        return anthropic._analytics_row({
            "starting_at": "2026-09-03T00:00:00Z", "ending_at": "2026-09-04T00:00:00Z",
            "group": {"actor": actor, "api_key_id": "apikey_1", "model": SONNET},
            "usage": {"uncached_input_tokens": 5, "output_tokens": 1, "requests": None}},
            "row", "1d")[1][0]

    assert row(user(LENA, "user_lena")).user == LENA
    nameless = row({"type": "user_actor", "user_id": "user_x", "email_address": None,
                    "name": None, "deleted": True})
    assert (nameless.user, nameless.user_kind) == ("user_x", "anthropic:users")
    assert row(ROBOT).user == "svac_ci"
    assert (row(KEY_ACTOR).user, row(KEY_ACTOR).api_key) == (None, "apikey_1")
    federated = row({"type": "federated_actor"})
    assert (federated.user, federated.api_key, federated.requests) == (None, "apikey_1", 0)
    with pytest.raises(http.PayloadError, match=r"actor\.type"):
        row({"email_address": LENA})

    cost = {"starting_at": "2026-09-03T00:00:00Z", "group": {},
            "cost": {"amount": "123.45", "currency": "USD"}}
    assert anthropic._analytics_cost_row(cost, "c")[0][1] == Decimal("123.45")
    with pytest.raises(http.PayloadError, match="decimal string of cents"):
        anthropic._analytics_cost_row({**cost, "cost": {"amount": 123.45}}, "c")

    page = anthropic._analytics_cost_page({"data": [cost], "next_page": "page_2"})
    assert (page.more, page.cursor) == (True, "page_2")
    last = anthropic._analytics_cost_page({"data": [cost], "next_page": None})
    assert not last.more
