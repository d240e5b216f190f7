"""OpenAI connector against a loopback fake serving the documented Usage/Costs payloads.

Expected money is computed here from the fixture's own numbers and a price table owned by
this test (Decimal per record, rounded once to the micro-dollar), never by calling the
code under test.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config.env import Env
from bot.runtime import Runtime
from bot.store.tables import Identity, Person, ProviderCost, SourceState, UsageRecord
from bot.timeutil import as_utc
from bot.usage import pull as pull_module
from bot.usage.pull import PullError, probe_source, pull_source
from bot.usage.sources import http
from tests.conftest import with_overrides
from tests.fakes.providers import (
    OPENAI_EXAMPLE_RESULT,
    FakeOpenAI,
    openai_usage_row,
    stored_totals,
)
from tests.helpers.server import serving

KEY = "sk-admin-test"
NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)  # the FakeClock's default
SINCE = NOW - timedelta(days=2)  # backfill_days: 2, bucket 1h
USAGE = "/v1/organization/usage/completions"
COSTS = "/v1/organization/costs"

# This test's own price table (USD per 1M tokens), every billed dimension spelled out.
PRICES: dict[str, dict[str, Any]] = {
    "gpt-4o-mini-2024-07-18": {
        "input": "0.15", "cache_read": "0.075", "cache_write": "0.1875", "output": "0.60",
        "audio_input": "10.00", "audio_output": "20.00",
        "tiers": {"batch": "0.5", "priority": "1.7"}},
    "gpt-4o-2024-08-06": {
        "input": "2.50", "cache_read": "1.25", "output": "10.00", "image_input": "5.00",
        "image_cache_read": "2.50", "tiers": {"batch": "0.5", "flex": "0.5"}},
}
TIERS = [(False, "default"), (False, "default"), (True, "default"), (False, "priority"),
         (False, "flex"), (False, "scale")]  # "scale": no rate, priced at standard
PRIYA, SOFIA, TOMAS = ("priya.raman@acme.example", "sofia.alvarez@acme.example",
                       "tomas.novak@acme.example")
# (user_id, api_key_id, project_id, model) -> who the store should attribute it to.
COMBOS: dict[tuple[str | None, str | None, str | None, str], str | None] = {
    ("user-priya", "key_misc", "proj_core", "gpt-4o-mini-2024-07-18"): PRIYA,  # users map
    (None, "key_sofia", "proj_growth", "gpt-4o-2024-08-06"): SOFIA,  # discovered key owner
    ("user-sofia", "key_sofia", "proj_growth", "gpt-4o-mini-2024-07-18"): SOFIA,  # her id
    (None, "key_config", "proj_growth", "gpt-4o-mini-2024-07-18"): TOMAS,  # config wins
    (None, None, "proj_support", "gpt-4o-2024-08-06"): None,  # a team, not a person
    ("user-ghost", "key_ghost", "proj_unknown", "gpt-4o-mini-2024-07-18"): None,
    (None, "key_left", "proj_growth", "gpt-4o-mini-2024-07-18"): "ben.carter@acme.example",
}


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "DEFAULT_RETRY", http.RetryPolicy(
        attempts=4, backoff_base=0.01, backoff_cap=0.02))


def usage_rows(seed: int = 7) -> list[dict[str, Any]]:
    """Hourly rows from 3 h before the backfill to 1 h after `now` (outside rows must not
    be stored: before `since`, and the still-open 15:00 bucket). Each row's totals follow
    the spec: input_tokens = uncached (text + audio + image) + cached + cache writes."""
    rng = random.Random(seed)
    rows = []
    hour = SINCE - timedelta(hours=3)
    while hour <= NOW + timedelta(hours=1):
        for (user, key, project, model) in COMBOS:
            for batch, tier in dict.fromkeys(TIERS):
                if rng.random() >= (0.45 if (batch, tier) == (False, "default") else 0.08):
                    continue
                rows.append(openai_usage_row(
                    hour, user_id=user, api_key_id=key, project_id=project, model=model,
                    batch=batch, service_tier=tier,
                    uncached_text=rng.randint(50, 250_000),
                    cached_text=rng.choice([0, rng.randint(0, 90_000)]),
                    cache_write=rng.choice([0, 0, rng.randint(1, 5_000)]),
                    output_text=rng.randint(1, 30_000),
                    audio_in=rng.choice([0, 0, 0, rng.randint(1, 900)]),
                    cached_audio=rng.choice([0, 0, 0, rng.randint(1, 300)]),
                    image_in=rng.choice([0, 0, 0, rng.randint(1, 1_500)]),
                    cached_image=rng.choice([0, 0, 0, rng.randint(1, 700)]),
                    audio_out=rng.choice([0, 0, 0, rng.randint(1, 400)]),
                    image_out=rng.choice([0, 0, 0, 0, rng.randint(1, 300)]),
                    requests=rng.randint(1, 60)))
        hour += timedelta(hours=1)
    return rows


def rate(model: str, name: str, fallback: str) -> Decimal:
    return Decimal(PRICES[model].get(name, PRICES[model].get(fallback, "0")))


def expected_micros(row: dict[str, Any]) -> int:
    """The documented pricing rule, from the row's BREAKDOWN fields (text / audio / image
    counted once each), never from the code under test: every part at its own rate where
    this table has one, else the text rate of its kind; times the tier's multiplier."""
    m = row["model"]
    micro_dollars = (
        row["input_text_tokens"] * rate(m, "input", "input")
        + row["input_audio_tokens"] * rate(m, "audio_input", "input")
        + row["input_image_tokens"] * rate(m, "image_input", "input")
        + row["input_cached_text_tokens"] * rate(m, "cache_read", "input")
        + row["input_cached_audio_tokens"] * rate(m, "audio_cache_read", "cache_read")
        + row["input_cached_image_tokens"] * rate(m, "image_cache_read", "cache_read")
        + row["input_cache_write_tokens"] * rate(m, "cache_write", "input")
        + row["output_text_tokens"] * rate(m, "output", "output")
        + row["output_audio_tokens"] * rate(m, "audio_output", "output")
        + row["output_image_tokens"] * rate(m, "image_output", "output"))
    tier = "batch" if row.get("batch") else row.get("service_tier")
    factor = Decimal(PRICES[m]["tiers"].get(tier, "1"))
    return int((micro_dollars * factor).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def expected(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "records": len(rows),
        "cost_micros": sum(expected_micros(r) for r in rows),
        "input_tokens": sum(r["input_text_tokens"] + r["input_audio_tokens"]
                            + r["input_image_tokens"] for r in rows),
        "output_tokens": sum(r["output_text_tokens"] + r["output_audio_tokens"]
                             + r["output_image_tokens"] for r in rows),
        "cache_read_tokens": sum(r["input_cached_text_tokens"] + r["input_cached_audio_tokens"]
                                 + r["input_cached_image_tokens"] for r in rows),
        "cache_write_tokens": sum(r["input_cache_write_tokens"] for r in rows),
        "requests": sum(r["num_model_requests"] for r in rows),
    }


def cost_rows() -> list[dict[str, Any]]:
    rows = []
    for n, day in enumerate((SINCE.date(), (SINCE + timedelta(days=1)).date(), NOW.date())):
        for project in ("proj_core", "proj_growth"):
            # amount.value is documented as a number; live responses have sent strings.
            rows.append({"day": day, "project_id": project, "line_item": "gpt-4o-mini, input",
                         "value": Decimal(f"{n + 1}.123456789")})
            rows.append({"day": day, "project_id": project, "line_item": "gpt-4o, output",
                         "value": f"{n + 2}.5"})
    return rows


def in_window(rows: list[dict[str, Any]], start: datetime, end: datetime
              ) -> list[dict[str, Any]]:
    return [r for r in rows if start <= r["start"] < end]


def billed_micros(rows: list[dict[str, Any]]) -> int:
    """Each billed row is stored rounded (half-even) to the micro-dollar."""
    return sum(int((Decimal(str(r["value"])) * 1_000_000).quantize(
        Decimal(1), rounding=ROUND_HALF_EVEN)) for r in rows)


def cents(micros: int) -> Decimal:
    return (Decimal(micros) / 1_000_000).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def make_fake() -> FakeOpenAI:
    fake = FakeOpenAI(KEY)
    fake.usage = usage_rows()
    fake.costs = cost_rows()
    fake.add_project("proj_core", [("key_misc", None, None)])  # a service account: no email
    fake.add_project("proj_growth", [("key_sofia", SOFIA, "user-sofia"),
                                     ("key_config", "ben.carter@acme.example", "user-ben"),
                                     ("key_left", "ben.carter@acme.example", "user-ben")],
                     inactive=("key_left",))  # listed only with owner_project_access=any
    fake.add_project("proj_old", [("key_old", "grace.kim@acme.example", "user-grace")],
                     status="archived")
    fake.add_project("proj_unknown", [("key_ghost", "ghost@elsewhere.example", "user-gh")])
    return fake


async def openai_rt(make_runtime: Callable[..., Any], base_config: Any, db_url: str,
                    url: str, *, key: str | None = KEY, **source: Any) -> Runtime:
    cfg = with_overrides(
        base_config,
        sources={"openai": {
            "base_url": url, "bucket_width": "1h", "backfill_days": 2,
            "repull_window": "48h", "mappings": {
                "users": {"user-priya": PRIYA}, "api_keys": {"key_config": TOMAS},
                "projects": {"proj_support": "team:support"}},
            **source}},
        pricing={"use_defaults": False, "models": [
            {"model": m, "provider": "openai", **rates} for m, rates in PRICES.items()]},
    )
    env = Env(database_url=db_url, source={"OPENAI_ADMIN_KEY": key} if key else {})
    rt: Runtime = await make_runtime(config=cfg, env=env)
    return rt


async def state(rt: Runtime) -> SourceState | None:
    async with rt.db.reader() as s:
        return await s.get(SourceState, "openai")


async def test_backfill_stores_exact_totals_attribution_and_costs(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url)
        seen: list[tuple[int, int]] = []
        result = await pull_source(rt, "openai", progress=lambda d, t: seen.append((d, t)))

    rows = in_window(fake.usage, SINCE, NOW)
    want = expected(rows)
    assert len(rows) > 60 and want["cost_micros"] > 0
    got = await stored_totals(rt)
    assert got == want  # exact to the micro-dollar, tokens and requests too
    assert cents(got["cost_micros"]) == cents(want["cost_micros"])
    assert (result.stats.read, result.stats.new, result.stats.replaced) == (len(rows),
                                                                          len(rows), 0)
    assert result.since == SINCE and result.until == NOW and result.windows == 3
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert "2026-11-16 15:00 → 2026-11-18 15:00 UTC" in result.window_text()

    # Every documented query parameter was sent; buckets were paged (5 per page).
    first = fake.calls(USAGE)[0]
    assert sorted(first["group_by"]) == ["api_key_id", "batch", "model", "project_id",
                                         "service_tier", "user_id"]
    assert first["bucket_width"] == ["1h"] and first["start_time"] == [str(int(
        SINCE.timestamp()))]
    assert len(fake.calls(USAGE)) == 2 + 5 + 3  # 9 h, 24 h and 15 h of buckets

    st = await state(rt)
    assert st is not None and as_utc(st.checkpoint) == NOW and st.last_error is None
    newest = max(r["start"] for r in rows)
    assert as_utc(st.data_as_of) == newest + timedelta(hours=1)

    # Attribution: mapped users, discovered API-key owners and user ids, config first.
    by_person: dict[str | None, int] = defaultdict(int)
    for r in rows:
        by_person[COMBOS[(r["user_id"], r["api_key_id"], r["project_id"], r["model"])]] += (
            expected_micros(r))
    async with rt.db.reader() as s:
        stored = dict((await s.execute(
            select(Person.email, func.sum(UsageRecord.cost_micros))
            .join(Person, Person.id == UsageRecord.person_id, isouter=True)
            .group_by(Person.email))).all())
        idents = {(k, v): (o, e) for k, v, o, e in await s.execute(
            select(Identity.kind, Identity.value, Identity.origin, Person.email)
            .join(Person, Person.id == Identity.person_id, isouter=True)
            .where(Identity.kind.like("openai:%")))}
        ghost = await s.scalar(select(func.count()).where(
            UsageRecord.identity == "user:user-ghost"))
        costs = (await s.execute(select(func.count(), func.sum(ProviderCost.amount_micros))
                                 .where(ProviderCost.source == "openai"))).one()
    assert {k: int(v) for k, v in stored.items()} == dict(by_person)
    unattributed = [r for r in rows if COMBOS[(r["user_id"], r["api_key_id"],
                                               r["project_id"], r["model"])] is None]
    assert result.stats.unattributed == len(unattributed) > 0
    assert ghost == sum(1 for r in rows if r["user_id"] == "user-ghost") > 0
    assert idents[("openai:api_keys", "key_sofia")] == ("discovered", SOFIA)
    assert idents[("openai:users", "user-sofia")] == ("discovered", SOFIA)
    assert idents[("openai:api_keys", "key_config")] == ("config", TOMAS)  # not Ben
    assert idents[("openai:api_keys", "key_old")] == ("discovered", "grace.kim@acme.example")
    assert ("openai:api_keys", "key_ghost") not in idents  # nobody has that email
    assert ("openai:api_keys", "key_misc") not in idents  # service account
    # owner_project_access=any: a key whose owner lost project access is still listed.
    assert idents[("openai:api_keys", "key_left")] == ("discovered", "ben.carter@acme.example")
    assert all(q.get("owner_project_access") == ["any"]
               for p, q, _ in fake.requests if p.endswith("/api_keys"))
    # The "scale" tier has no rate in this table: priced at standard and said so.
    assert any(n.startswith("priced with a fallback rate") and "scale tier at standard rates"
               in n for n in result.notes)

    # Costs: every day the windows touched, in dollars, numbers and strings alike.
    assert costs[0] == len(fake.costs)
    assert int(costs[1]) == billed_micros(fake.costs)
    # Reconciled on the one UTC day wholly inside the pull (the 17th): priced vs billed.
    billed = billed_micros([c for c in fake.costs if c["day"] == date(2026, 11, 17)])
    priced = sum(expected_micros(r) for r in rows if r["start"].date() == date(2026, 11, 17))
    note = next(n for n in result.notes if n.startswith("reconciliation"))
    assert note.startswith("reconciliation 2026-11-17 → 2026-11-17 (UTC days): ")
    assert f"billed ${cents(billed):,}, priced usage ${cents(priced):,}" in note


async def test_second_pull_of_the_same_window_changes_nothing(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url)
        first = await pull_source(rt, "openai")
        before = await stored_totals(rt)
        again = await pull_source(rt, "openai")  # checkpoint - 48 h: the same window
    assert again.since == first.since and again.until == first.until
    assert again.stats.new == 0 and again.stats.replaced == 0
    assert again.stats.unchanged == again.stats.read == first.stats.new
    assert await stored_totals(rt) == before
    async with rt.db.reader() as s:
        assert await s.scalar(select(func.count()).select_from(ProviderCost)) == len(
            fake.costs)


async def test_restated_bucket_replaces_and_totals_follow(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url)
        await pull_source(rt, "openai")
        rows = in_window(fake.usage, SINCE, NOW)
        restated = rows[len(rows) // 2]
        restated["output_tokens"] += 12_345  # the provider restates one bucket's row
        restated["output_text_tokens"] += 12_345  # (the total includes its breakdown)
        restated["num_model_requests"] += 3
        fake.costs[0]["value"] = Decimal("9.99")  # and a billed amount
        result = await pull_source(rt, "openai")
    assert (result.stats.new, result.stats.replaced) == (0, 1)
    assert result.stats.unchanged == len(rows) - 1
    assert await stored_totals(rt) == expected(rows)  # usage_daily checked inside too
    async with rt.db.reader() as s:
        total = await s.scalar(select(func.sum(ProviderCost.amount_micros)))
    assert int(total) == billed_micros(fake.costs)


async def test_500_mid_backfill_keeps_the_failed_window_out_and_resumes(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    day2 = str(int(datetime(2026, 11, 17, tzinfo=UTC).timestamp()))
    # The second window fails on its SECOND page: its first page was already fetched.
    fake.fail(USAGE, 500, times=None, when=lambda r: r.query.get("start_time") == day2
              and "page" in r.query)
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url)
        with pytest.raises(PullError) as err:
            await pull_source(rt, "openai")
        message = str(err.value)
        assert message.startswith(f"openai: {USAGE} answered 500")
        assert "gave up after 4 attempts" in message
        first_window = in_window(fake.usage, SINCE, datetime(2026, 11, 17, tzinfo=UTC))
        assert await stored_totals(rt) == expected(first_window)  # nothing of window 2
        st = await state(rt)
        assert as_utc(st.checkpoint) == datetime(2026, 11, 17, tzinfo=UTC)
        assert st.last_error == message and st.last_error_at is not None

        fake.clear_faults()
        resumed = await pull_source(rt, "openai")  # from the checkpoint minus 48 h
    assert resumed.since == datetime(2026, 11, 15, tzinfo=UTC)
    assert await stored_totals(rt) == expected(in_window(fake.usage, resumed.since, NOW))
    st = await state(rt)
    assert as_utc(st.checkpoint) == NOW and st.last_error is None


async def test_429_honours_retry_after_then_succeeds(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    fault = fake.fail(USAGE, 429, times=1, retry_after="1")
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url, fetch_key_owners=False,
                             reconcile_costs=False, backfill_days=1)
        started = time.monotonic()
        result = await pull_source(rt, "openai")
        waited = time.monotonic() - started
    assert fault.hits == 1 and waited >= 1.0  # the 0.01 s backoff would not take a second
    assert result.stats.new == len(in_window(fake.usage, NOW - timedelta(days=1), NOW))


async def test_wrong_or_missing_key_is_a_clear_error_and_writes_nothing(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url, key="sk-wrong-key-123")
        with pytest.raises(PullError) as err:
            await pull_source(rt, "openai")
        with pytest.raises(PullError) as probe_err:
            await probe_source(rt, "openai")
        assert len(fake.requests) == 1 + 1 + 1  # discovery, usage, probe: 401s not retried
    message = str(err.value)
    assert "openai:" in message and "answered 401 Unauthorized" in message
    assert "check OPENAI_ADMIN_KEY" in message and "Incorrect API key" in message
    assert "sk-wrong-key-123" not in message and "key-123" not in message  # never echoed
    assert "401" in str(probe_err.value)
    assert (await stored_totals(rt))["records"] == 0

    rt2 = await openai_rt(make_runtime, base_config, db_url, "http://127.0.0.1:9", key=None)
    with pytest.raises(PullError, match="set the environment variable OPENAI_ADMIN_KEY"):
        await pull_source(rt2, "openai")


@pytest.mark.parametrize("breakage", ["truncated", "schema"])
async def test_bad_json_or_schema_names_source_and_endpoint_and_writes_nothing(
        make_runtime, base_config, db_url, breakage: str) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    if breakage == "truncated":
        fake.truncate(USAGE)
    else:
        fake.break_schema(USAGE)
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url)
        with pytest.raises(PullError) as err:
            await pull_source(rt, "openai")
    message = str(err.value)
    assert message.startswith(f"openai: {USAGE} answered ")
    if breakage == "truncated":
        assert "invalid JSON" in message and "truncated" in message
    else:
        assert "unexpected shape" in message and "response.data" in message
    assert (await stored_totals(rt))["records"] == 0
    st = await state(rt)
    assert st.checkpoint is None and st.last_error == message


async def test_a_server_that_pages_forever_is_stopped_at_max_pages(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    fake.page_forever(USAGE)
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url, max_pages=6)
        with pytest.raises(PullError, match=r"still had more pages after 6 pages.*max_pages"):
            await pull_source(rt, "openai")
    assert len(fake.calls(USAGE)) == 6
    assert (await stored_totals(rt))["records"] == 0


async def test_daily_buckets_and_explicit_window(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url, bucket_width="1d",
                             fetch_key_owners=False)
        result = await pull_source(rt, "openai", since=SINCE, until=NOW + timedelta(days=3))
    # 1d buckets: since and until floor to midnight; the future is clamped to today.
    day0, day2 = datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC)
    assert (result.since, result.until, result.windows) == (day0, day2, 2)
    rows = in_window(fake.usage, day0, day2)
    # The fake aggregates the hourly rows per day and group; the sums must survive.
    got = await stored_totals(rt)
    want = expected(rows)
    assert {k: got[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                "requests")} == {k: want[k] for k in ("input_tokens",
                                                                      "output_tokens",
                                                                      "cache_read_tokens",
                                                                      "requests")}
    assert got["records"] == len({(r["start"].date(), r["user_id"], r["api_key_id"],
                                   r["project_id"], r["model"], r["batch"],
                                   r["service_tier"]) for r in rows})


async def test_probe_is_one_cheap_request(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url)
        text = await probe_source(rt, "openai")
    assert "OPENAI_ADMIN_KEY accepted" in text
    assert [p for p, _, _ in fake.requests] == [USAGE]
    assert fake.calls(USAGE)[0]["limit"] == ["1"]


def test_floor_and_day_windows() -> None:
    at = datetime(2026, 11, 16, 15, 37, 12, tzinfo=UTC)
    assert pull_module.floor_to(at, timedelta(hours=1)) == datetime(2026, 11, 16, 15,
                                                                    tzinfo=UTC)
    assert pull_module.floor_to(at, timedelta(days=1)) == datetime(2026, 11, 16, tzinfo=UTC)
    windows = pull_module.day_windows(datetime(2026, 11, 16, 15, tzinfo=UTC),
                                      datetime(2026, 11, 18, 3, tzinfo=UTC))
    assert [(a.day, a.hour, b.day, b.hour) for a, b in windows] == [
        (16, 15, 17, 0), (17, 0, 18, 0), (18, 0, 18, 3)]


async def test_the_documented_example_is_counted_once_and_priced_per_dimension(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    """The spec's own UsageCompletionsResult example, served verbatim. input_tokens (5000)
    already includes cached (1800), cache-write (200), audio and image tokens; output_tokens
    (1000) already includes audio and image output. Nothing is added twice."""
    fake = FakeOpenAI(KEY)
    hour = NOW - timedelta(hours=5)
    fake.usage = [{"start": hour, "verbatim": OPENAI_EXAMPLE_RESULT}]
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url, fetch_key_owners=False,
                             reconcile_costs=False, backfill_days=1)
        result = await pull_source(rt, "openai")
    got = await stored_totals(rt)
    # gpt-4o-mini at this table: text 0.15 / cached 0.075 / write 0.1875 / out 0.60,
    # audio in 10.00 / audio out 20.00; no image rates (image falls back to text) and no
    # cached-audio rate (falls back to cached text). USD per 1M = micro-dollars per token.
    want_micros = (2500 * Decimal("0.15") + 300 * Decimal("10.00") + 200 * Decimal("0.15")
                   + 1500 * Decimal("0.075") + 100 * Decimal("0.075") + 200 * Decimal("0.075")
                   + 200 * Decimal("0.1875")
                   + 800 * Decimal("0.60") + 100 * Decimal("20.00") + 100 * Decimal("0.60"))
    assert got == {"records": 1, "input_tokens": 3000, "cache_read_tokens": 1800,
                   "cache_write_tokens": 200, "output_tokens": 1000, "requests": 5,
                   "cost_micros": int(want_micros.quantize(Decimal(1), ROUND_HALF_EVEN))}
    assert cents(got["cost_micros"]) == Decimal("0.01")  # $0.005566 rounds to a cent
    note = next(n for n in result.notes if n.startswith("priced with a fallback rate"))
    assert "image input at the text rate" in note and "cached audio at the text rate" in note


async def test_a_row_the_provider_stops_reporting_is_removed_with_its_rollup(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await openai_rt(make_runtime, base_config, db_url, url, reconcile_costs=False)
        await pull_source(rt, "openai")
        rows = in_window(fake.usage, SINCE, NOW)
        gone = rows[len(rows) // 3]
        fake.usage.remove(gone)  # restated away (e.g. regrouped by the provider)
        result = await pull_source(rt, "openai")
    assert result.stats.removed == 1
    assert await stored_totals(rt) == expected(in_window(fake.usage, SINCE, NOW))
    assert any("1 stored row(s) removed" in n for n in result.notes)
