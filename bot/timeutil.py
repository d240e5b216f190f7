"""Periods in the org's (or a team's) time zone: months, weeks, days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_at(text: str, tz: str = "UTC") -> datetime:
    """Parse an ISO time given on the command line; a naive time is read in ``tz``."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


def parse_since(text: str, now: datetime, tz: str = "UTC") -> datetime:
    """A start time as people type it: `today`, `yesterday` (midnight in ``tz``), an age
    back from ``now`` (`12h`, `7d`, `2w`, `30m`), or an ISO date or time (see parse_at)."""
    from bot.config.types import parse_duration

    word = text.strip().lower()
    if word in ("today", "yesterday"):
        day = local_day(now, tz) - timedelta(days=1 if word == "yesterday" else 0)
        return start_of_day(day, tz)
    try:
        return as_utc(now) - parse_duration(word)
    except ValueError:
        return parse_at(text, tz)


def as_utc(value: datetime) -> datetime:
    """Aware UTC; SQLite hands back naive datetimes that were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def local_day(at: datetime, tz: str) -> date:
    return as_utc(at).astimezone(ZoneInfo(tz)).date()


def start_of_day(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


@dataclass(frozen=True)
class Month:
    first: date  # first day
    last: date  # last day (inclusive)

    @property
    def key(self) -> str:
        return self.first.strftime("%Y-%m")

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Month:
        return month_of(self.first - timedelta(days=1))


def month_of(day: date) -> Month:
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return Month(first, nxt - timedelta(days=1))


def month_at(at: datetime, tz: str) -> Month:
    return month_of(local_day(at, tz))


def iso_week_key(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"
