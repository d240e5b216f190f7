"""Working hours in a person's time zone: tips wait for them instead of pinging at 3 am."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config.models import NudgesConfig

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def next_working_moment(at: datetime, tz: str, cfg: NudgesConfig) -> datetime:
    """``at`` itself if it is within working hours there, else the next start of them."""
    zone = ZoneInfo(tz)
    local = at.astimezone(zone)
    workdays = {DAYS.index(d) for d in cfg.working_days} or set(range(7))
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        if day.weekday() not in workdays:
            continue
        start = datetime.combine(day, cfg.working_hours_start, tzinfo=zone)
        end = datetime.combine(day, cfg.working_hours_end, tzinfo=zone)
        if offset == 0 and start <= local < end:
            return at
        if local < start:
            return start.astimezone(at.tzinfo)
    return at  # no working days configured at all: don't hold messages forever
