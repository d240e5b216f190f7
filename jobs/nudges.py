"""The weekly nudge sweep: one personal tip to people whose trailing spend is mostly
routine work — above a minimum spend, not opted out, outside the cooldown, and not in the
holdout (a stable random share kept un-nudged so the effect can be measured).

Each decision is a row in ``nudges`` (unique per person and sweep), written with its
outbox message in one transaction; delivery waits for working hours in the person's zone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.directory import PersonView
from bot.money import to_micros
from bot.nudges import messages
from bot.nudges.quiet import enqueue_in_working_hours
from bot.nudges.shares import trailing
from bot.runtime import Runtime
from bot.scheduling.registry import JobSpec, Occurrence, cron_due, register
from bot.store.tables import Nudge, Person
from bot.timeutil import local_day
from bot.tips import dominant, level_for, pick_tutorial, tutorials_had


async def run(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    cfg = rt.config
    n = cfg.nudges
    counts = {
        "nudged": 0,
        "holdout": 0,
        "below_threshold": 0,
        "near_zero": 0,
        "opted_out": 0,
        "cooling_down": 0,
        "no_tutorial": 0,
    }
    if not n.enabled:
        return {"skipped": "nudges are disabled"}
    now = rt.now()
    today = local_day(now, rt.tz)
    async with rt.db.reader() as s:
        shares = await trailing(s, end=today, days=n.window_days)
        people = {
            p.id: p
            for p in (
                await s.scalars(select(Person).where(Person.active, Person.id.in_(list(shares))))
            ).all()
        }
        # Weekly sweeps land on the boundary day of a 14-day cooldown; a few seconds of
        # scheduling jitter must not decide it, so the boundary day counts as outside.
        cutoff = now - timedelta(days=n.cooldown_days) + timedelta(hours=12)
        cooling = set(
            (await s.scalars(select(Nudge.person_id).where(Nudge.created_at > cutoff))).all()
        )
    minimum = to_micros(n.min_spend_usd)
    threshold = int(n.low_value_threshold * 100)
    for pid, sh in shares.items():
        person = people.get(pid)
        if person is None:
            continue
        if sh.spend < minimum:
            counts["near_zero"] += 1
            continue
        low = sh.low_value(cfg)
        if low < threshold:
            counts["below_threshold"] += 1
            continue
        if not person.tips_enabled:
            counts["opted_out"] += 1
            continue
        if pid in cooling:
            counts["cooling_down"] += 1
            continue
        category = dominant(list(sh.by_category.items()), cfg.categories.low_value) or "chat"
        holdout = messages.in_holdout(pid, today, float(n.holdout_share))
        counts["holdout" if holdout else "nudged"] += await _decide(
            rt, person, occ.period, sh, category, low, holdout, counts
        )
    return counts


async def _decide(
    rt: Runtime,
    person: Person,
    period: str,
    sh: Any,
    category: str,
    low: int,
    holdout: bool,
    counts: dict[str, int],
) -> int:
    cfg = rt.config
    async with rt.db.session() as s:
        if await s.scalar(
            select(Nudge.id).where(Nudge.person_id == person.id, Nudge.period == period)
        ):
            return 0  # already decided in this sweep (a rerun after a crash)
        tutorial = None
        if not holdout:
            tutorial = pick_tutorial(
                cfg, category, level_for(sh.agentic(cfg)), await tutorials_had(s, person.id)
            )
            if tutorial is None:
                counts["no_tutorial"] += 1
                return 0
        variant = messages.variant_for(person.id, period)
        nudge = Nudge(
            person_id=person.id,
            period=period,
            cohort="holdout" if holdout else "nudged",
            tutorial_id=tutorial.id if tutorial else None,
            category=category,
            low_value_share_bp=sh.basis_points(cfg.categories.low_value),
            agentic_share_bp=sh.basis_points(cfg.categories.agentic),
            spend_micros=sh.spend,
            variant=variant,
            created_at=rt.now(),
        )
        s.add(nudge)
        await s.flush()
        if tutorial is not None:
            reply = messages.tip(
                first=PersonView.of(person).first_name,
                category=category,
                low_share=low,
                spend=sh.spend,
                tutorial=tutorial,
                nudge_id=nudge.id,
                variant=variant,
                sandbox=cfg.sandbox.enabled,
            )
            await enqueue_in_working_hours(
                s, rt, person, kind="nudge", reply=reply, key=f"nudge:{person.id}:{period}"
            )
    return 1


register(
    JobSpec(
        name="nudges",
        description="Weekly sweep: one personal agentic-workflow tip to routine-heavy users",
        func=run,
        due=cron_due(lambda rt: rt.config.schedules.nudge_sweep, lookback=timedelta(days=3)),
        lease=timedelta(minutes=30),
    )
)
