"""Per-person category shares over a trailing window, for many people in one query."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import AppConfig
from bot.money import pct
from bot.store.tables import UsageDaily


@dataclass
class Shares:
    """One person's trailing window (``spend``) and the window before it (``prev``)."""

    spend: int = 0
    prev: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    prev_by_category: dict[str, int] = field(default_factory=dict)

    def _share(self, cats: list[str], prev: bool = False) -> int:
        data, total = (self.prev_by_category, self.prev) if prev else (self.by_category, self.spend)
        return pct(sum(v for c, v in data.items() if c in cats), total)

    def low_value(self, cfg: AppConfig) -> int:
        return self._share(cfg.categories.low_value)

    def agentic(self, cfg: AppConfig) -> int:
        return self._share(cfg.categories.agentic)

    def agentic_change(self, cfg: AppConfig) -> int:
        """Percentage points since the previous window (0 when there was none)."""
        if not self.prev:
            return 0
        return self.agentic(cfg) - self._share(cfg.categories.agentic, prev=True)

    def basis_points(self, cats: list[str]) -> int:
        total = self.spend
        return (
            0
            if total <= 0
            else (sum(v for c, v in self.by_category.items() if c in cats) * 10_000 + total // 2)
            // total
        )


async def trailing(
    s: AsyncSession, *, end: date, days: int, person_ids: list[int] | None = None
) -> dict[int, Shares]:
    """Spend by category per person for (end - days, end] and the window before it."""
    start = end - timedelta(days=days)
    prev_start = start - timedelta(days=days)
    recent = case((UsageDaily.day > start, 1), else_=0).label("recent")
    q = (
        select(UsageDaily.person_id, recent, UsageDaily.category, func.sum(UsageDaily.cost_micros))
        .where(UsageDaily.person_id != 0, UsageDaily.day > prev_start, UsageDaily.day <= end)
        .group_by(UsageDaily.person_id, recent, UsageDaily.category)
    )
    if person_ids is not None:
        q = q.where(UsageDaily.person_id.in_(person_ids))
    out: dict[int, Shares] = defaultdict(Shares)
    for pid, is_recent, category, cost in await s.execute(q):
        sh = out[pid]
        cost = int(cost or 0)
        if is_recent:
            sh.spend += cost
            sh.by_category[category] = sh.by_category.get(category, 0) + cost
        else:
            sh.prev += cost
            sh.prev_by_category[category] = sh.prev_by_category.get(category, 0) + cost
    return dict(out)
