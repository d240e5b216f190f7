"""Did the tips work? Agentic share of nudged vs holdout people, before and after.

For every sweep decision at least one window old, compare the agentic share recorded at
the sweep with the share over the window that followed — for the nudged and for the
holdout cohort. The difference between the two changes is the measured effect.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import AppConfig
from bot.nudges.shares import trailing
from bot.store.tables import Nudge
from bot.timeutil import local_day

MIN_PEOPLE = 20  # below this per cohort the comparison is reported as too small


@dataclass(frozen=True)
class Cohort:
    people: int
    before_bp: int  # mean agentic share at the sweep, basis points
    after_bp: int  # mean agentic share over the following window

    @property
    def change_pts(self) -> float:
        return (self.after_bp - self.before_bp) / 100


@dataclass(frozen=True)
class Effect:
    nudged: Cohort
    holdout: Cohort

    @property
    def effect_pts(self) -> float:
        return self.nudged.change_pts - self.holdout.change_pts

    @property
    def conclusive(self) -> bool:
        return self.nudged.people >= MIN_PEOPLE and self.holdout.people >= MIN_PEOPLE

    def sentence(self) -> str:
        n, h = self.nudged, self.holdout
        text = (
            f"Nudged people ({n.people}): agentic share {n.before_bp / 100:.0f}% → "
            f"{n.after_bp / 100:.0f}% ({n.change_pts:+.1f} pts); holdout ({h.people}): "
            f"{h.before_bp / 100:.0f}% → {h.after_bp / 100:.0f}% ({h.change_pts:+.1f} pts). "
            f"Effect of the tips: {self.effect_pts:+.1f} pts."
        )
        if not self.conclusive:
            text += f" (Fewer than {MIN_PEOPLE} people per group: too early to conclude.)"
        return text


async def holdout_effect(
    s: AsyncSession, config: AppConfig, now: datetime, tz: str
) -> Effect | None:
    window = config.nudges.window_days
    rows = (
        await s.execute(
            select(Nudge.person_id, Nudge.cohort, Nudge.agentic_share_bp, Nudge.created_at).where(
                Nudge.created_at <= now - timedelta(days=window)
            )
        )
    ).all()
    if not rows:
        return None
    by_day: dict[date, list[tuple[int, str, int]]] = defaultdict(list)
    for pid, cohort, before, created in rows:
        by_day[local_day(created, tz)].append((pid, cohort, before))
    sums: dict[str, list[int]] = {"nudged": [0, 0, 0], "holdout": [0, 0, 0]}
    for day, items in by_day.items():
        after = await trailing(
            s,
            end=day + timedelta(days=window),
            days=window,
            person_ids=[pid for pid, _, _ in items],
        )
        for pid, cohort, before in items:
            share = after.get(pid)
            acc = sums[cohort]
            acc[0] += 1
            acc[1] += before
            acc[2] += share.basis_points(config.categories.agentic) if share else 0

    def mean(name: str) -> Cohort:
        n, before, after = sums[name]
        return Cohort(n, before // n if n else 0, after // n if n else 0)

    return Effect(mean("nudged"), mean("holdout"))


async def why_not_measured(s: AsyncSession, config: AppConfig, now: datetime, tz: str) -> str:
    """Why there is no effect to report yet, in one sentence."""
    window = config.nudges.window_days
    first = await s.scalar(select(func.min(Nudge.created_at)))
    if first is None:
        return (
            "Effect of the tips: not measurable yet — no sweep has decided on anyone so far. "
            f"It compares tipped people with the holdout group over the {window} days after "
            "a sweep."
        )
    ready = local_day(first, tz) + timedelta(days=window)
    return (
        f"Effect of the tips: not measurable yet — the first sweep was on "
        f"{local_day(first, tz):%b %-d}, and the effect needs the {window} days after it "
        f"(from {ready:%b %-d})."
    )
