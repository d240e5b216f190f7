"""Working hours in a person's time zone: tips wait for them instead of pinging at 3 am."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.models import NudgesConfig
from bot.directory import PersonView
from bot.outbox import enqueue
from bot.reply import Reply
from bot.runtime import Runtime
from bot.store.tables import Person

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


async def enqueue_in_working_hours(
    s: AsyncSession, rt: Runtime, person: Person | PersonView, *, kind: str, reply: Reply,
    key: str,
) -> None:
    """Queue a personal message to go out at the next working moment in their zone."""
    when = next_working_moment(rt.now(), person.timezone or rt.tz, rt.config.nudges)
    await enqueue(
        s,
        rt,
        kind=kind,
        target_type="person",
        target_id=person.id,
        reply=reply,
        key=key,
        deliver_after=when,
    )
