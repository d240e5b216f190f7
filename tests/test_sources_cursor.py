"""Cursor connector against a loopback fake of the Cursor Admin API (tests/fakes/cursor.py
cites the page). Expected money is computed here from the served events: totalCents is
cents, so a token-based event costs totalCents / 100 dollars; an event without tokenUsage
(included in the plan) costs nothing extra."""

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
from bot.store.tables import Person, SourceState, UsageRecord
from bot.timeutil import as_utc
from bot.usage.pull import PullError, probe_source, pull_source
from bot.usage.sources import cursor, http
from tests.conftest import with_overrides
from tests.fakes.cursor import DOC_EVENTS, FakeCursor
from tests.fakes.providers import stored_totals
from tests.helpers.server import serving

KEY = "key_" + "c" * 64
NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)
SINCE = NOW - timedelta(days=2)
EVENTS = "/teams/filtered-usage-events"
PRIYA, KENJI = "priya.raman@acme.example", "kenji.watanabe@acme.example"
MODELS = ["claude-4-sonnet", "gpt-5", "claude-4-opus", "cursor-small"]


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "DEFAULT_RETRY", http.RetryPolicy(
        attempts=3, backoff_base=0.01, backoff_cap=0.02))
    monkeypatch.setattr(cursor, "PAGE_SIZE", 7)  # several pages per window


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def events(seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    at = SINCE - timedelta(hours=3)
    while at < NOW + timedelta(hours=1):
        who = rng.choice([PRIYA, KENJI, "contractor@elsewhere.example", None])
        token_based = rng.random() < 0.7
        event: dict[str, Any] = {
            "timestamp": str(ms(at)), "model": rng.choice(MODELS),
            "kind": "Usage-based" if token_based else "Included in Business",
            "maxMode": rng.random() < 0.2, "requestsCosts": rng.choice([1, 1.4, 5]),
            "isTokenBasedCall": token_based, "isFreeBugbot": False, "userEmail": who}
        if token_based:
            event["tokenUsage"] = {
                "inputTokens": rng.randint(1, 9000), "outputTokens": rng.randint(1, 3000),
                "cacheWriteTokens": rng.choice([0, rng.randint(1, 20_000)]),
                "cacheReadTokens": rng.choice([0, rng.randint(1, 90_000)]),
                "totalCents": Decimal(rng.randint(1, 9_000_000)) / 100_000}
        out.append(event)
        at += timedelta(minutes=rng.randint(7, 41), milliseconds=rng.randint(0, 999))
    # The documented example's events, moved into the window (fields otherwise as shown),
    # and a second event identical to the first: two requests, added, never collapsed.
    base = ms(NOW - timedelta(hours=5))
    for i, doc in enumerate(DOC_EVENTS):
        out.append({**doc, "timestamp": str(base + i * 1000), "userEmail": PRIYA})
    out.append({**out[-1]})
    return out


def daily(events_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Priya worked mostly in Agent mode on the 17th; everyone else mostly chatted."""
    rows = []
    for day in (16, 17, 18):
        stamp = ms(datetime(2026, 11, day, tzinfo=UTC))
        for email in (PRIYA, KENJI):
            agent = 30 if (email, day) == (PRIYA, 17) else 2
            rows.append({"date": stamp, "isActive": True, "totalLinesAdded": 10,
                         "totalLinesDeleted": 1, "acceptedLinesAdded": 5,
                         "acceptedLinesDeleted": 0, "totalApplies": 3, "totalAccepts": 2,
                         "totalRejects": 1, "totalTabsShown": 9, "totalTabsAccepted": 4,
                         "composerRequests": 3, "chatRequests": 12, "agentRequests": agent,
                         "cmdkUsages": 4, "subscriptionIncludedReqs": 10, "apiKeyReqs": 0,
                         "usageBasedReqs": 5, "bugbotUsages": 0, "mostUsedModel": "gpt-5",
                         "clientVersion": "1.7.0", "email": email})
    return rows


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC)


def inside(events_: list[dict[str, Any]], start: datetime, end: datetime
           ) -> list[dict[str, Any]]:
    return [e for e in events_ if start <= at(e) < end]


def micros(event: dict[str, Any]) -> int:
    cents = Decimal((event.get("tokenUsage") or {}).get("totalCents", 0))
    return int((cents * 10_000).quantize(Decimal(1), ROUND_HALF_EVEN))  # 1 cent = 10^4 µ$


def expected(events_: list[dict[str, Any]]) -> dict[str, int]:
    usage = [e.get("tokenUsage") or {} for e in events_]
    keys = {(e["timestamp"], e["userEmail"], e["model"], e["kind"], e["maxMode"],
             tuple(sorted((e.get("tokenUsage") or {}).items()))) for e in events_}
    return {
        "records": len(keys),
        "cost_micros": sum(micros(e) for e in events_),
        "input_tokens": sum(u.get("inputTokens", 0) for u in usage),
        "output_tokens": sum(u.get("outputTokens", 0) for u in usage),
        "cache_read_tokens": sum(u.get("cacheReadTokens", 0) for u in usage),
        "cache_write_tokens": sum(u.get("cacheWriteTokens", 0) for u in usage),
        "requests": len(events_),
    }


def make_fake() -> FakeCursor:
    fake = FakeCursor(KEY)
    fake.members = [{"name": "Priya", "email": PRIYA, "role": "member"},
                    {"name": "Kenji", "email": KENJI, "role": "owner"}]
    fake.events = events()
    fake.daily = daily(fake.events)
    return fake


async def cursor_rt(make_runtime: Callable[..., Any], base_config: Any, db_url: str,
                    url: str, *, key: str = KEY, **source: Any) -> Runtime:
    cfg = with_overrides(base_config, sources={"cursor": {
        "base_url": url, "backfill_days": 2, **source}})
    rt: Runtime = await make_runtime(config=cfg, env=Env(
        database_url=db_url, source={"CURSOR_ADMIN_KEY": key}))
    return rt


async def test_events_land_once_by_member_email_with_cursors_own_cost(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await cursor_rt(make_runtime, base_config, db_url, url)
        result = await pull_source(rt, "cursor")
        again = await pull_source(rt, "cursor")
        described = await probe_source(rt, "cursor")

    rows = inside(fake.events, SINCE, NOW)
    want = expected(rows)
    assert await stored_totals(rt) == want
    assert result.stats.new == want["records"] and result.windows == 3
    assert (again.stats.new, again.stats.replaced) == (0, 0)
    assert want["records"] == len(rows) - 1  # the twin events: one record, 2 requests
    assert "2 team member(s)" in described

    async with rt.db.reader() as s:
        per_person = dict((await s.execute(
            select(Person.email, func.sum(UsageRecord.cost_micros))
            .join(Person, Person.id == UsageRecord.person_id, isouter=True)
            .group_by(Person.email))).all())
        by_day_cat = set((await s.execute(
            select(Person.email, UsageRecord.day, UsageRecord.category)
            .join(Person, Person.id == UsageRecord.person_id))).all())
        state = await s.get(SourceState, "cursor")
    for email in (PRIYA, KENJI):
        assert int(per_person[email]) == sum(micros(e) for e in rows if e["userEmail"] == email)
    assert int(per_person[None]) == sum(micros(e) for e in rows if e["userEmail"] not in
                                        (PRIYA, KENJI))
    # The org day is America/New_York; Priya's Agent-mode UTC day (the 17th) is agentic.
    cats = {c for email, _, c in by_day_cat if email == PRIYA}
    assert "agentic" in cats and "coding" in cats
    assert {c for email, _, c in by_day_cat if email == KENJI} == {"coding"}
    assert as_utc(state.checkpoint) == NOW

    first = [(q, b) for p, q, b in fake.requests if p == EVENTS][:1]
    assert first  # the events endpoint is POSTed with epoch-ms bounds
    assert fake.requests[0][2]["Authorization"].startswith("Basic ")


async def test_an_event_arriving_mid_read_fails_the_window_then_reads_clean(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    """Pages are numbered and newest first, and events have no id: an event that arrives
    between two page reads shifts the pages. The count no longer matches, so the window is
    refused (nothing stored) and read again on the next run."""
    fake = make_fake()
    late = {**fake.events[5], "timestamp": str(ms(SINCE + timedelta(hours=5, seconds=3))),
            "userEmail": KENJI}

    def arrive(page: int) -> None:
        if page == 2 and late not in fake.events:
            fake.events.append(late)

    fake.before_events_page = arrive
    async with serving(fake.app()) as url:
        rt = await cursor_rt(make_runtime, base_config, db_url, url)
        with pytest.raises(PullError, match=r"changed its event count|moved between pages"):
            await pull_source(rt, "cursor")
        assert (await stored_totals(rt))["records"] == 0  # the first window: nothing of it
        fake.before_events_page = None
        await pull_source(rt, "cursor")
    assert await stored_totals(rt) == expected(inside(fake.events, SINCE, NOW))


async def test_a_restated_event_replaces_and_bad_key_is_clear(
        make_runtime, base_config, db_url) -> None:  # type: ignore[no-untyped-def]
    fake = make_fake()
    async with serving(fake.app()) as url:
        rt = await cursor_rt(make_runtime, base_config, db_url, url)
        await pull_source(rt, "cursor")
        target = next(e for e in inside(fake.events, SINCE, NOW) if e.get("tokenUsage")
                      and e["userEmail"] == KENJI)
        target["tokenUsage"] = {**target["tokenUsage"], "totalCents": Decimal("123.456")}
        restated = await pull_source(rt, "cursor")
        bad = await cursor_rt(make_runtime, base_config, db_url, url, key="key_wrong")
        with pytest.raises(PullError, match="401 Unauthorized: check CURSOR_ADMIN_KEY"):
            await probe_source(bad, "cursor")
    assert restated.stats.replaced == 1
    assert await stored_totals(rt) == expected(inside(fake.events, SINCE, NOW))
