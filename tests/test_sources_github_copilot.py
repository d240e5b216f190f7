"""GitHub Copilot connector against a loopback fake of GitHub's billing usage report and
Copilot seat API (tests/fakes/copilot.py cites the spec). Expected money is computed here
from the served items and the documented rule (amount = quantity x pricePerUnit)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config.env import Env
from bot.runtime import Runtime
from bot.store.tables import Identity, Person, SourceState, UsageRecord
from bot.timeutil import as_utc
from bot.usage.pull import PullError, probe_source, pull_source
from bot.usage.sources import http
from tests.conftest import with_overrides
from tests.fakes.copilot import AI_CREDIT_EXAMPLE, FakeGitHub, usage_item
from tests.fakes.providers import stored_totals
from tests.helpers.server import serving

TOKEN = "ghp_test_token"
NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)
D16, D17 = date(2026, 11, 16), date(2026, 11, 17)
REPORT = "/organizations/acme/settings/billing/ai_credit/usage"
SEATS = "/orgs/acme/copilot/billing/seats"
PRIYA, SOFIA, TOMAS = ("priya.raman@acme.example", "sofia.alvarez@acme.example",
                       "tomas.novak@acme.example")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "DEFAULT_RETRY", http.RetryPolicy(
        attempts=3, backoff_base=0.01, backoff_cap=0.02))


def make_fake() -> FakeGitHub:
    fake = FakeGitHub(TOKEN)
    fake.seats = {"priya-r": None, "sofia-a": SOFIA, "tomas-n": None}
    fake.seats.update({f"filler-{n:03d}": None for n in range(100)})  # two seat pages
    credits = "Copilot AI Credits"
    fake.usage[(D16, "priya-r")] = [
        usage_item("Copilot", credits, "Claude Sonnet 4.6", "credits", "0.01",
                   "9498.6969165", "3956.1799545"),
        usage_item("Copilot", credits, "Coding Agent model", "credits", "0.01", "1200.5")]
    fake.usage[(D16, "sofia-a")] = [dict(AI_CREDIT_EXAMPLE)]  # the spec's own example
    fake.usage[(D17, "tomas-n")] = [
        usage_item("Copilot", credits, "GPT-5", "credits", "0.01", "700", "700")]  # free
    fake.usage[(D17, "priya-r")] = [
        usage_item("Copilot", credits, "GPT-5", "credits", "0.01", "333.333")]
    # Usage of someone whose seat is gone: in the org total only.
    fake.usage[(D17, "left-the-org")] = [
        usage_item("Copilot", credits, "GPT-5", "credits", "0.01", "50")]
    fake.usage[(date(2026, 11, 18), "priya-r")] = [  # today: the day is not over
        usage_item("Copilot", credits, "GPT-5", "credits", "0.01", "99999")]
    return fake


async def copilot_rt(make_runtime: Callable[..., Any], base_config: Any, db_url: str,
                     url: str, *, token: str = TOKEN, **source: Any) -> Runtime:
    cfg = with_overrides(base_config, sources={"github_copilot": {
        "base_url": url, "org": "acme", "backfill_days": 2,
        "mappings": {"users": {"priya-r": PRIYA, "tomas-n": TOMAS}}, **source}})
    rt: Runtime = await make_runtime(config=cfg, env=Env(
        database_url=db_url, source={"GITHUB_COPILOT_TOKEN": token}))
    return rt


def micros(dollars: Any) -> int:
    return int((Decimal(dollars) * 1_000_000).quantize(Decimal(1), ROUND_HALF_EVEN))


def net(items: list[dict[str, Any]]) -> int:
    # Documented: netAmount = netQuantity x pricePerUnit, in dollars.
    return sum(micros(Decimal(i["netQuantity"]) * Decimal(i["pricePerUnit"])) for i in items)


async def test_per_user_spend_from_the_billing_report_adds_up_to_the_org(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await copilot_rt(make_runtime, base_config, db_url, url)
        result = await pull_source(rt, "github_copilot")
        again = await pull_source(rt, "github_copilot")
        described = await probe_source(rt, "github_copilot")

    # Windows: whole UTC days since midnight two days ago, up to today's midnight.
    assert (result.since, result.until, result.windows) == (
        datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC), 2)
    days = [(d, login) for (d, login) in fake.usage if d in (D16, D17)]
    all_items = [i for key in days for i in fake.usage[key]]
    got = await stored_totals(rt)
    assert got["cost_micros"] == net(all_items)  # the org's bill for the two days, exact
    assert (again.stats.new, again.stats.replaced) == (0, 0)

    async with rt.db.reader() as s:
        per_person = dict((await s.execute(
            select(Person.email, func.sum(UsageRecord.cost_micros))
            .join(Person, Person.id == UsageRecord.person_id, isouter=True)
            .group_by(Person.email))).all())
        categories = dict((await s.execute(
            select(UsageRecord.model, UsageRecord.category)
            .where(UsageRecord.person_id.is_not(None)))).all())
        ident = await s.scalar(select(Person.email).join(
            Identity, Identity.person_id == Person.id).where(
            Identity.kind == "github_copilot:users", Identity.value == "sofia-a"))
        state = await s.get(SourceState, "github_copilot")
    priya = fake.usage[(D16, "priya-r")] + fake.usage[(D17, "priya-r")]
    assert int(per_person[PRIYA]) == net(priya)
    assert int(per_person[SOFIA]) == 1_000_000  # the spec's example: netAmount 1 -> $1.00
    assert int(per_person[TOMAS]) == 0  # all of it within the included allowance
    assert int(per_person[None]) == net(fake.usage[(D17, "left-the-org")])  # unattributed
    assert ident == SOFIA  # the seat's email, a discovered identity
    assert categories["Coding Agent model"] == "agentic"
    assert categories["GPT-5"] == categories["Claude Sonnet 4.6"] == "coding"
    assert as_utc(state.checkpoint) == datetime(2026, 11, 18, tzinfo=UTC)

    # One request per seat holder per day, asked for by login and day.
    asked = fake.calls(REPORT)
    assert {"year": ["2026"], "month": ["11"], "day": ["16"], "user": ["priya-r"]} in asked
    assert len([q for q in asked if "user" in q]) == 2 * 2 * 103  # two pulls of two days
    assert [q.get("page") for q in fake.calls(SEATS)] == [["1"], ["2"]] * 2  # once a pull
    headers = fake.requests[0][2]
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert "ai_credit usage report for acme answered" in described


async def test_gross_cost_premium_requests_and_a_restated_day(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    premium = "/organizations/acme/settings/billing/premium_request/usage"
    async with serving(fake.app()) as url:
        rt = await copilot_rt(make_runtime, base_config, db_url, url, cost="gross",
                              usage_report="premium_request")
        await pull_source(rt, "github_copilot")
        days = [k for k in fake.usage if k[0] in (D16, D17)]
        assert (await stored_totals(rt))["cost_micros"] == sum(
            micros(Decimal(i["grossQuantity"]) * Decimal(i["pricePerUnit"]))
            for k in days for i in fake.usage[k])
        # GitHub restates a day: one user's item grows; the rows are replaced, not added.
        fake.usage[(D17, "priya-r")] = [usage_item(
            "Copilot", "Copilot AI Credits", "GPT-5", "credits", "0.01", "400")]
        restated = await pull_source(rt, "github_copilot")
    assert fake.calls(premium) and not fake.calls(REPORT)
    assert restated.stats.replaced == 1 and restated.stats.new == 0
    assert (await stored_totals(rt))["cost_micros"] == sum(
        micros(Decimal(i["grossQuantity"]) * Decimal(i["pricePerUnit"]))
        for k in days for i in fake.usage[k])


async def test_429_then_success_and_a_bad_token(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    fake.fail(REPORT, 429, times=1, retry_after="0")
    fake.fail(REPORT, 502, times=1)
    async with serving(fake.app()) as url:
        rt = await copilot_rt(make_runtime, base_config, db_url, url)
        await pull_source(rt, "github_copilot")
        bad = await copilot_rt(make_runtime, base_config, db_url, url, token="ghp_wrong")
        with pytest.raises(PullError, match="answered 401 Unauthorized: check "
                                            "GITHUB_COPILOT_TOKEN"):
            await probe_source(bad, "github_copilot")
    items = [i for k in fake.usage if k[0] in (D16, D17) for i in fake.usage[k]]
    assert (await stored_totals(rt))["cost_micros"] == net(items)


async def test_a_failure_mid_day_keeps_that_window_out_entirely(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    fake.fail(REPORT, 500, times=None, when=lambda r: r.query.get("day") == "17"
              and r.query.get("user") == "tomas-n")
    async with serving(fake.app()) as url:
        rt = await copilot_rt(make_runtime, base_config, db_url, url)
        with pytest.raises(PullError, match="answered 500"):
            await pull_source(rt, "github_copilot")
        # The 16th is stored whole; nothing of the 17th.
        got = await stored_totals(rt)
        assert got["cost_micros"] == net([i for k in fake.usage if k[0] == D16
                                          for i in fake.usage[k]])
        fake.clear_faults()
        resumed = await pull_source(rt, "github_copilot")
    assert resumed.stats.new > 0
    items = [i for k in fake.usage if k[0] in (D16, D17) for i in fake.usage[k]]
    assert (await stored_totals(rt))["cost_micros"] == net(items)
