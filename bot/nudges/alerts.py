"""Threshold alerts: 50 / 80 / 100% of the month's limit on actual spend, and 100% on
forecast. Each crossing is alerted once per month — the primary key of threshold_alerts
decides, so restatements, restarts and replicas can't produce an alert storm.

The figures are everyone's month from the ledger's batch read (``bot.ledger.balances``),
so an alert says what the person's `/tokens` card says.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot import ledger
from bot.ledger import Balance
from bot.nudges import messages
from bot.nudges.quiet import enqueue_in_working_hours
from bot.runtime import Runtime
from bot.store.results import affected
from bot.store.tables import ThresholdAlert
from bot.tips import CATEGORY_WORDS, dominant, level_for, pick_tutorial


async def sweep(rt: Runtime) -> dict[str, Any]:
    """Alert everyone whose month crossed a threshold they were not yet alerted for."""
    a = rt.config.nudges.alerts
    if not a.enabled:
        return {"skipped": "alerts are disabled"}
    months = await ledger.balances(rt)
    if not months:
        return {"actual": 0, "forecast": 0}
    period = next(iter(months.values())).month
    async with rt.db.reader() as s:
        sent = {(pid, basis, t) for pid, basis, t in await s.execute(
            select(ThresholdAlert.person_id, ThresholdAlert.basis, ThresholdAlert.threshold)
            .where(ThresholdAlert.period == period.key))}
    counts = {"actual": 0, "forecast": 0}
    for _pid, bal in sorted(months.items()):
        due = _due(rt, bal, sent)
        if due is not None and await _alert(rt, bal, *due):
            counts[due[0]] += 1
    return counts


def _due(rt: Runtime, bal: Balance, sent: set[tuple[int, str, int]]
         ) -> tuple[str, list[int]] | None:
    """(basis, thresholds to mark) for a new crossing, else None."""
    a = rt.config.nudges.alerts
    pid, spent, limit = bal.person.id, bal.spent, bal.limit
    if not bal.has_usage or limit <= 0:
        return None
    new = [t for t in a.thresholds if spent * 100 >= t * limit and (pid, "actual", t) not in sent]
    if new:
        return "actual", new
    fc = bal.forecast
    if (a.forecast and spent < limit and (pid, "forecast", 100) not in sent
            and fc is not None and fc.month_end >= limit):
        return "forecast", [100]
    return None


async def _alert(rt: Runtime, bal: Balance, basis: str, thresholds: list[int]) -> bool:
    cfg = rt.config
    person, period = bal.person, bal.month.key
    # The person's card (a batch sums the shares but has no spend by category): which
    # routine work their tip is about.
    card = await ledger.balance(rt, person)
    async with rt.db.session() as s:
        won = 0
        for t in thresholds:
            won += affected(
                await s.execute(
                    rt.db.insert(ThresholdAlert)
                    .values(person_id=person.id, period=period, basis=basis, threshold=t,
                            sent_at=rt.now())
                    .on_conflict_do_nothing()
                )
            )
        if won == 0:
            return False  # another replica got there first
        category = dominant(card.by_category, cfg.categories.low_value)
        tutorial = pick_tutorial(cfg, category, level_for(0), set()) if category else None
        threshold = max(thresholds)
        reply = messages.alert(
            basis=basis,
            threshold=threshold,
            spent=bal.spent,
            limit=bal.limit,
            month=f"{bal.month.first:%B}",
            cap_day=bal.forecast.cap_date if basis == "forecast" and bal.forecast else None,
            low_share=bal.low_value_share,
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
