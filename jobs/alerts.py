"""Threshold alerts: 50 / 80 / 100% of the month's limit on actual spend, and 100% on
forecast. Each crossing is alerted once per month — the primary key of threshold_alerts
decides, so restatements, restarts and replicas can't produce an alert storm."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bot.directory import resolve_cap
from bot.ledger import FORECAST_WINDOW_DAYS, forecast, grants_by_person, sandbox_allowance
from bot.money import pct, to_micros
from bot.nudges import messages
from bot.nudges.quiet import enqueue_in_working_hours
from bot.runtime import Runtime
from bot.scheduling.registry import JobSpec, Occurrence, cron_due, register
from bot.store.results import affected
from bot.store.tables import Person, Team, ThresholdAlert, UsageDaily
from bot.timeutil import local_day, month_of
from bot.tips import CATEGORY_WORDS, dominant, level_for, pick_tutorial


async def run(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    cfg = rt.config
    a = cfg.nudges.alerts
    if not a.enabled:
        return {"skipped": "alerts are disabled"}
    now = rt.now()
    today = local_day(now, rt.tz)
    month = month_of(today)
    window_start = today - timedelta(days=FORECAST_WINDOW_DAYS)
    spent: dict[int, int] = defaultdict(int)
    window: dict[int, int] = defaultdict(int)
    low: dict[int, int] = defaultdict(int)
    by_cat: dict[int, dict[str, int]] = defaultdict(dict)
    async with rt.db.reader() as s:
        rows = await s.execute(
            select(UsageDaily.person_id, UsageDaily.category, func.sum(UsageDaily.cost_micros))
            .where(
                UsageDaily.person_id != 0, UsageDaily.day >= month.first, UsageDaily.day <= today
            )
            .group_by(UsageDaily.person_id, UsageDaily.category)
        )
        for pid, category, cost in rows:
            cost = int(cost or 0)
            spent[pid] += cost
            by_cat[pid][category] = by_cat[pid].get(category, 0) + cost
            if category in cfg.categories.low_value:
                low[pid] += cost
        # The pace window excludes today (a partial day), as the balance card does.
        window_rows = await s.execute(
            select(UsageDaily.person_id, func.sum(UsageDaily.cost_micros))
            .where(
                UsageDaily.person_id != 0, UsageDaily.day >= window_start, UsageDaily.day < today
            )
            .group_by(UsageDaily.person_id)
        )
        window.update({pid: int(c or 0) for pid, c in window_rows})
        first_days = dict(
            (
                await s.execute(
                    select(UsageDaily.person_id, func.min(UsageDaily.day))
                    .where(UsageDaily.person_id != 0, UsageDaily.day >= today - timedelta(days=60))
                    .group_by(UsageDaily.person_id)
                )
            ).all()
        )
        people = {
            p.id: p
            for p in (
                await s.scalars(select(Person).where(Person.active, Person.id.in_(list(spent))))
            ).all()
        }
        team_caps = dict((await s.execute(select(Team.id, Team.cap_micros))).all())
        grants = await grants_by_person(s, month, now, rt.tz)
        sent = {
            (r.person_id, r.basis, r.threshold)
            for r in (
                await s.execute(
                    select(
                        ThresholdAlert.person_id, ThresholdAlert.basis, ThresholdAlert.threshold
                    ).where(ThresholdAlert.period == month.key)
                )
            ).all()
        }
    default_cap = to_micros(cfg.policy.default_cap_usd)
    counts = {"actual": 0, "forecast": 0}
    for pid, total in spent.items():
        person = people.get(pid)
        if person is None:
            continue
        team_cap = team_caps.get(person.team_id) if person.team_id else None
        cap = resolve_cap(person.cap_micros, team_cap, default_cap)
        limit = cap
        if pid in grants:
            async with rt.db.reader() as s:
                limit += await sandbox_allowance(s, pid, cap, grants[pid], month, rt.tz)
        if limit <= 0:
            continue
        crossed = [t for t in a.thresholds if total * 100 >= t * limit]
        new = [t for t in crossed if (pid, "actual", t) not in sent]
        basis, threshold, cap_day = None, 0, None
        if new:
            basis, threshold = "actual", max(new)
        elif a.forecast and total < limit and (pid, "forecast", 100) not in sent:
            fc = forecast(
                spent=total,
                limit=limit,
                window_spend=window.get(pid, 0),
                first_day=first_days.get(pid),
                today=today,
                now=now,
                month=month,
                tz=rt.tz,
            )
            if fc is not None and fc.month_end >= limit:
                basis, threshold, cap_day = "forecast", 100, fc.cap_date
        if basis is None:
            continue
        rows_to_mark = [(basis, t) for t in (new if basis == "actual" else [100])]
        if await _alert(
            rt,
            person,
            month.key,
            rows_to_mark,
            basis=basis,
            threshold=threshold,
            spent=total,
            limit=limit,
            month_name=f"{month.first:%B}",
            cap_day=cap_day,
            low=pct(low.get(pid, 0), total),
            by_cat=by_cat.get(pid, {}),
        ):
            counts[basis] += 1
    return counts


async def _alert(
    rt: Runtime,
    person: Person,
    period: str,
    marks: list[tuple[str, int]],
    *,
    basis: str,
    threshold: int,
    spent: int,
    limit: int,
    month_name: str,
    cap_day: Any,
    low: int,
    by_cat: dict[str, int],
) -> bool:
    cfg = rt.config
    async with rt.db.session() as s:
        won = 0
        for b, t in marks:
            won += affected(
                await s.execute(
                    rt.db.insert(ThresholdAlert)
                    .values(
                        person_id=person.id, period=period, basis=b, threshold=t, sent_at=rt.now()
                    )
                    .on_conflict_do_nothing()
                )
            )
        if won == 0:
            return False  # another replica got there first
        category = dominant(list(by_cat.items()), cfg.categories.low_value)
        tutorial = pick_tutorial(cfg, category, level_for(0), set()) if category else None
        reply = messages.alert(
            basis=basis,
            threshold=threshold,
            spent=spent,
            limit=limit,
            month=month_name,
            cap_day=cap_day,
            low_share=low,
            low_words=CATEGORY_WORDS.get(category or "") if category else None,
            tutorial=tutorial,
            sandbox=cfg.sandbox.enabled,
        )
        await enqueue_in_working_hours(
            s,
            rt,
            person,
            kind="threshold_alert",
            reply=reply,
            key=f"alert:{person.id}:{period}:{basis}:{threshold}",
        )
    return True


register(
    JobSpec(
        name="alerts",
        description="Threshold alerts at 50/80/100% of the monthly limit, and 100% on forecast",
        func=run,
        due=cron_due(lambda rt: rt.config.schedules.threshold_alerts, lookback=timedelta(hours=2)),
        lease=timedelta(minutes=10),
    )
)
