"""The ledger: sandbox grants across months, forecasts, freshness — against hand sums."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot import ledger
from bot.directory import person_by_email
from bot.store.tables import SandboxGrant, SandboxRequest
from tests.helpers.crafted import record, write

OMAR = "omar.haddad@acme.example"  # default cap $1,500


async def grant(rt, email: str, amount: int, start: str, days: int) -> None:  # type: ignore[no-untyped-def]
    starts = datetime.fromisoformat(start)
    async with rt.db.session() as s:
        person = await person_by_email(s, email)
        req = SandboxRequest(person_id=person.id, amount_micros=amount * 1_000_000,
                             duration_days=days, purpose="x y z", status="approved", stage=1,
                             stages=[1], current_approver_id=None, policy={},
                             period=starts.strftime("%Y-%m"), created_at=starts,
                             stage_started_at=starts)
        s.add(req)
        await s.flush()
        s.add(SandboxGrant(request_id=req.id, person_id=person.id,
                           amount_micros=amount * 1_000_000, period=req.period,
                           starts_at=starts, ends_at=starts + timedelta(days=days),
                           status="active", created_at=starts))


async def balance(rt, email: str = OMAR):  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        person = await person_by_email(s, email)
    assert person is not None
    return await ledger.balance(rt, person)


async def test_a_grant_adds_its_amount_once_across_months(rt) -> None:  # type: ignore[no-untyped-def]
    await grant(rt, OMAR, 500, "2026-10-20T14:00:00+00:00", 30)
    # October: $1,700 spent on a $1,500 cap, so $200 of the grant is used there.
    await write(rt, [record(rt, OMAR, date(2026, 10, 21), cost="1700.00", category="agentic",
                            tools=1),
                     record(rt, OMAR, date(2026, 11, 2), cost="100.00")])
    nov = await balance(rt)
    assert (nov.cap, nov.sandbox, nov.limit) == (1_500_000_000, 300_000_000, 1_800_000_000)
    assert [g.amount for g in nov.grants] == [500_000_000]
    rt.clock.set("2026-10-25T12:00:00+00:00")
    oct_ = await balance(rt)
    assert oct_.sandbox == 500_000_000  # the whole grant is available in its first month
    rt.clock.set("2026-12-02T12:00:00+00:00")
    assert (await balance(rt)).sandbox == 0  # ended before December: adds nothing


async def test_a_grant_starting_this_month_adds_everything(rt) -> None:  # type: ignore[no-untyped-def]
    await grant(rt, OMAR, 250, "2026-11-10T10:00:00+00:00", 30)
    nov = await balance(rt)
    assert nov.sandbox == 250_000_000 and nov.remaining == 1_750_000_000


async def test_forecast_at_the_trailing_pace(rt) -> None:  # type: ignore[no-untyped-def]
    # $40/day from Nov 1 to Nov 17; now Nov 18 15:00 UTC = 10:00 in New York.
    await write(rt, [record(rt, OMAR, date(2026, 11, d), cost="40.00") for d in range(1, 18)])
    bal = await balance(rt)
    assert bal.spent == 680_000_000 and bal.forecast is not None
    assert bal.forecast.pace_per_day == 40_000_000
    # The rest of today (14 of 24 hours) and Nov 19–30 (12 days) at $40/day.
    expected = 680_000_000 + 40_000_000 * (12 * 86400 + 14 * 3600) // 86400
    assert bal.forecast.month_end == expected and bal.forecast.cap_date is None
    young = await balance(rt, "rafael.costa@acme.example")
    assert young.forecast is None  # no history: "not enough data yet"


async def test_daily_buckets_keep_their_date_in_any_org_zone(make_runtime, base_config) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC

    from sqlalchemy import select

    from bot.store.tables import UsageRecord
    from bot.usage.record import RawUsage, record_key
    from bot.usage.sources.http import occurred
    from bot.usage.writer import UsageWriter
    from tests.conftest import with_overrides

    for zone in ("America/New_York", "Asia/Tokyo", "Europe/Berlin"):
        rt = await make_runtime(config=with_overrides(base_config, org={"timezone": zone}))
        start = datetime(2026, 11, 1, tzinfo=UTC)  # a provider's UTC day bucket
        await (await UsageWriter.create(rt)).write([RawUsage(
            key=record_key("t", zone), source="claude_code", occurred_at=occurred(start, "1d"),
            provider="anthropic", model="claude-sonnet-4-5", input_tokens=1, output_tokens=1,
            cost_micros=1, user=OMAR)])
        async with rt.db.reader() as s:
            days = (await s.scalars(select(UsageRecord.day).where(
                UsageRecord.source == "claude_code"))).all()
        assert days[-1] == date(2026, 11, 1), zone


async def test_one_person_and_a_batch_read_the_same_month(rt) -> None:  # type: ignore[no-untyped-def]
    """The card's statement and the batch's grouped reads agree on every shared figure,
    grants from an earlier month included."""
    rt.clock.set("2026-11-18T15:00:00+00:00")
    await write(rt, [record(rt, OMAR, date(2026, 10, 12), cost="1600.00", category="coding"),
                     record(rt, OMAR, date(2026, 11, 9), cost="410.00", category="chat"),
                     record(rt, OMAR, date(2026, 11, 16), cost="55.25", category="agentic"),
                     record(rt, OMAR, date(2026, 11, 17), cost="0", category="summarization")])
    await grant(rt, OMAR, 300, "2026-10-20T12:00:00+00:00", 40)
    card = await balance(rt)
    batch = (await ledger.balances(rt, [card.person]))[card.person.id]
    everyone = (await ledger.balances(rt))[card.person.id]
    for other in (batch, everyone):
        assert (other.spent, other.cap, other.sandbox, other.limit, other.low_value,
                other.agentic, other.forecast, other.grants, other.has_usage) == (
            card.spent, card.cap, card.sandbox, card.limit, card.low_value, card.agentic,
            card.forecast, card.grants, card.has_usage)
    assert card.sandbox == 300_000_000 - 100_000_000  # October used $100 of it


async def test_limits_weigh_an_enforced_vendor_limit_against_our_own(rt) -> None:  # type: ignore[no-untyped-def]
    """The seam for enforced vendor limits: a month carries every limit that applies and
    says which binds first (tokencoach's own, until a vendor's leaves less)."""
    from dataclasses import replace

    rt.clock.set("2026-11-18T15:00:00+00:00")
    await write(rt, [record(rt, OMAR, date(2026, 11, 9), cost="400.00")])
    bal = await balance(rt)
    own = bal.binding_limit
    assert (own.source, own.amount, own.spent, own.period) == (
        "tokencoach", 1_500_000_000, 400_000_000, "2026-11")
    vendor = ledger.Limit("claude_enterprise", 1_000_000_000, 900_000_000, "2026-11",
                          enforced=True)
    with_vendor = replace(bal, vendor_limits=(vendor,))
    assert with_vendor.limits == (own, vendor)
    assert with_vendor.binding_limit is vendor  # $100 left there, $1,100 here
    roomy = replace(vendor, amount=5_000_000_000)  # $4,100 left there
    assert replace(bal, vendor_limits=(roomy,)).binding_limit == own
