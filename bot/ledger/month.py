"""A person's month, as values: spent, limits, grants, mix, forecast, freshness.

Pure: ``bot.ledger.read`` fills these from the store (one statement for a card, a few
grouped ones for a batch); the card, alerts, digest lines, approvals, the CLI and the
admin views all read them. Money is integer micro-dollars throughout.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from bot.directory import PersonView
from bot.money import pct, to_cents_str
from bot.timeutil import Month, local_day, month_of, start_of_day

FORECAST_WINDOW_DAYS = 7
FORECAST_MIN_DAYS = 3
FIRST_DAY_LOOKBACK = 60  # days: how far back "when did this person start" looks


@dataclass(frozen=True)
class Forecast:
    pace_per_day: int  # micro-dollars per day over the trailing window
    month_end: int  # projected month-end spend
    cap_date: date | None  # the day the limit is reached, if within the month
    already_over: bool


@dataclass(frozen=True)
class Grant:
    id: int
    amount: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Limit:
    """A limit that applies to a person's spend, and how much of it is used.

    tokencoach's own (the monthly cap plus sandbox grants) is advisory. An enforced vendor
    limit (a Claude Enterprise member's spend limit, a LiteLLM user's ``max_budget``)
    blocks usage when reached; it may count another period and be known as of a time.
    """

    source: str  # "tokencoach", or the vendor that enforces it ("claude_enterprise", …)
    amount: int
    spent: int  # spent against it in its own period, as its source counts it
    period: str  # "2026-11" for the org month, or the vendor's own period
    as_of: datetime | None = None  # when its source last reported it; None: computed now
    enforced: bool = False

    @property
    def remaining(self) -> int:
        return self.amount - self.spent


def binding(limits: Iterable[Limit]) -> Limit:
    """The limit reached first: the least left (an enforced one wins a tie)."""
    return min(limits, key=lambda lim: (lim.remaining, not lim.enforced))


class Shares:
    """Shares of spend, in whole percent, for anything with spent, low_value and agentic."""

    spent: int
    low_value: int
    agentic: int

    @property
    def low_value_share(self) -> int:
        return pct(self.low_value, self.spent)

    @property
    def agentic_share(self) -> int:
        return pct(self.agentic, self.spent)


@dataclass
class Balance(Shares):
    """One person's month (``bot.ledger.read.balance`` / ``balances``)."""

    person: PersonView
    month: Month
    today: date
    spent: int
    cap: int
    sandbox: int
    grants: list[Grant]
    by_category: list[tuple[str, int]]  # a card's only, as by_model (a batch sums shares)
    by_model: list[tuple[str, int]]
    forecast: Forecast | None
    as_of: dict[str, datetime | None] = field(default_factory=dict)
    low_value: int = 0
    agentic: int = 0
    # Limits enforced elsewhere that apply this month (read from their vendors); the seam
    # for enforced vendor limits: ``limits`` and ``binding_limit`` already weigh them.
    vendor_limits: tuple[Limit, ...] = ()
    tutorials_had: frozenset[str] = frozenset()  # tutorials sent or opened (card reads)
    has_usage: bool = False  # any usage recorded this month (at $0 too)
    person_active: bool = True  # still in the directory

    @property
    def limit(self) -> int:
        return self.cap + self.sandbox

    @property
    def remaining(self) -> int:
        return self.limit - self.spent

    @property
    def limits(self) -> tuple[Limit, ...]:
        own = Limit("tokencoach", self.limit, self.spent, self.month.key)
        return (own, *self.vendor_limits)

    @property
    def binding_limit(self) -> Limit:
        return binding(self.limits)

    def to_json(self) -> dict[str, Any]:
        fc = self.forecast
        return {
            "person": self.person.email,
            "period": self.month.key,
            "spent_usd": to_cents_str(self.spent),
            "cap_usd": to_cents_str(self.cap),
            "sandbox_usd": to_cents_str(self.sandbox),
            "remaining_usd": to_cents_str(self.remaining),
            "by_category": {c: to_cents_str(v) for c, v in self.by_category},
            "by_model": {m: to_cents_str(v) for m, v in self.by_model},
            "low_value_share_pct": self.low_value_share,
            "agentic_share_pct": self.agentic_share,
            "forecast": None
            if fc is None
            else {
                "pace_per_day_usd": to_cents_str(fc.pace_per_day),
                "month_end_usd": to_cents_str(fc.month_end),
                "cap_date": fc.cap_date.isoformat() if fc.cap_date else None,
                "over_cap": fc.already_over,
            },
            "grants": [
                {"id": g.id, "amount_usd": to_cents_str(g.amount), "ends_at": g.ends_at.isoformat()}
                for g in self.grants
            ],
            "as_of": {k: (v.isoformat() if v else None) for k, v in self.as_of.items()},
        }


@dataclass(frozen=True)
class Period:
    """The dates a month read needs, in the org time zone, at ``now``."""

    now: datetime
    today: date
    month: Month
    start: date  # first day read: the month's first, or the pace window's if earlier
    window_start: date  # the pace window: [window_start, today), today still running
    first_from: date  # how far back the first day of usage is looked for
    month_from: datetime  # the month's bounds as instants (grants overlapping it)
    month_until: datetime

    @classmethod
    def at(cls, now: datetime, tz: str) -> Period:
        today = local_day(now, tz)
        month = month_of(today)
        window_start = today - timedelta(days=FORECAST_WINDOW_DAYS)
        return cls(now, today, month, min(month.first, window_start), window_start,
                   today - timedelta(days=FIRST_DAY_LOOKBACK), start_of_day(month.first, tz),
                   start_of_day(month.last + timedelta(days=1), tz))


def forecast_window(first_day: date | None, today: date) -> tuple[date, int] | None:
    """The trailing window the pace is measured over: complete days only (today is still
    running), at most 7, and only with at least 3 days of history."""
    if first_day is None or (today - first_day).days < FORECAST_MIN_DAYS:
        return None
    start = max(today - timedelta(days=FORECAST_WINDOW_DAYS), first_day)
    days = (today - start).days
    return (start, days) if days > 0 else None


def forecast(
    *,
    spent: int,
    limit: int,
    window_spend: int,
    first_day: date | None,
    today: date,
    now: datetime,
    month: Month,
    tz: str,
) -> Forecast | None:
    """Linear forecast at the trailing pace; None with under 3 days of history.

    ``window_spend`` is the spend over ``forecast_window(first_day, today)``: as there is
    no usage before ``first_day``, that is the spend of the 7 days before today.
    """
    window = forecast_window(first_day, today)
    if window is None:
        return None
    pace = window_spend // window[1]
    day_seconds = 86400
    month_end = spent + pace * _left_of_month(now, today, month.last, tz) // day_seconds
    over = spent >= limit
    cap_date = None
    if not over and pace > 0 and month_end >= limit:
        seconds_to_cap = (limit - spent) * day_seconds // pace
        cap_date = local_day(now + timedelta(seconds=seconds_to_cap), tz)
        if cap_date > month.last:
            cap_date = None
    return Forecast(pace_per_day=pace, month_end=month_end, cap_date=cap_date, already_over=over)


@lru_cache(maxsize=64)
def _left_of_month(now: datetime, today: date, last: date, tz: str) -> int:
    """Seconds left in the month: the rest of today plus the days after it (the same
    for everyone in a batch: computed once)."""
    elapsed_today = int((now - start_of_day(today, tz)).total_seconds())
    return (last - today).days * 86400 + max(86400 - elapsed_today, 0)


def grants_start(grants: list[Grant], month: Month, tz: str) -> Month | None:
    """The month the earliest grant began in, if before ``month`` (then what the grants
    covered in earlier months is used up: ``allowance`` needs those months' spend)."""
    if not grants:
        return None
    first = month_of(local_day(min(g.starts_at for g in grants), tz))
    return first if first.first < month.first else None


def allowance(grants: list[Grant], cap: int, earlier: dict[str, int]) -> int:
    """What the grants add to this month's limit.

    A grant is extra headroom of its amount over its whole duration, not per month: what
    it already covered in earlier months (spend above the cap there, ``earlier`` being
    spend by month key since the first grant began) is used up. So a $500 grant spanning
    October and November adds $500 in all, as the pool was charged.
    """
    total = sum(g.amount for g in grants)
    used = sum(max(0, v - cap) for v in earlier.values())
    return max(0, total - used)


def ranked(totals: dict[str, int]) -> list[tuple[str, int]]:
    """Non-zero totals, largest first (ties by name, so every database agrees)."""
    if not totals:
        return []
    return sorted(((k, v) for k, v in totals.items() if v), key=lambda x: (-x[1], x[0]))


def assemble(
    *,
    person: PersonView,
    period: Period,
    tz: str,
    categories: Any,  # bot.config.models: names of the low-value and agentic categories
    cap: int,
    by_category: dict[str, int],
    by_model: dict[str, int],
    window_spend: int,
    first_day: date | None,
    grants: list[Grant],
    earlier: dict[str, int],
    as_of: dict[str, datetime | None],
    vendor_limits: tuple[Limit, ...] = (),
    tutorials_had: frozenset[str] = frozenset(),
    has_usage: bool = False,
    person_active: bool = True,
    totals: tuple[int, int, int] | None = None,
) -> Balance:
    """A Balance from the figures a read returned: the one place the rules combine.

    ``totals``: (spent, low-value, agentic) this month, when the read summed them itself
    (a batch); else they are summed from ``by_category``."""
    if totals is None:
        totals = (sum(by_category.values()),
                  sum(v for c, v in by_category.items() if c in categories.low_value),
                  sum(v for c, v in by_category.items() if c in categories.agentic))
    spent, low_value, agentic = totals
    sandbox = allowance(grants, cap, earlier) if grants else 0
    return Balance(
        person=person,
        month=period.month,
        today=period.today,
        spent=spent,
        cap=cap,
        sandbox=sandbox,
        grants=grants,
        by_category=ranked(by_category),
        by_model=ranked(by_model),
        forecast=forecast(
            spent=spent,
            limit=cap + sandbox,
            window_spend=window_spend,
            first_day=first_day,
            today=period.today,
            now=period.now,
            month=period.month,
            tz=tz,
        ),
        as_of=as_of,
        low_value=low_value,
        agentic=agentic,
        vendor_limits=vendor_limits,
        tutorials_had=tutorials_had,
        has_usage=has_usage,
        person_active=person_active,
    )
