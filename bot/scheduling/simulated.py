"""Simulated time: running jobs "as if it were" a chosen moment without rewriting history.

A simulated run (`jobs run --at`, `jobs run-due --at`, `digest --at`, the playground's
*As if it were*) may only move forward from the last real run: the store's history is
written in time order, and a period that really ran is not run again "earlier".
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.runtime import Runtime
from bot.scheduling import claims
from bot.timeutil import as_utc


class Rewind(ValueError):
    """A simulated time before the last real run."""


def label(at: datetime, tz: str) -> str:
    """'Mon Dec 7 2026, 09:30 (America/New_York)'."""
    return as_utc(at).astimezone(ZoneInfo(tz)).strftime(f"%a %b %-d %Y, %H:%M ({tz})")


async def check_forward(rt: Runtime, at: datetime) -> None:
    """Refuse ``at`` if the jobs last ran for real after it."""
    last = await claims.last_real_run(rt.db)
    if last is not None and as_utc(at) < as_utc(last):
        raise Rewind(
            f"{label(at, rt.tz)} is before the jobs last ran for real "
            f"({label(last, rt.tz)}); simulated time can only start from there or later"
        )
