"""What a person's vendor-enforced limits look like, for `/tokens`, `balance --json` and
`limits show` (read from the last sync; ``as_of`` says how fresh)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.enforcement.ops import VENDOR_NAMES
from bot.money import fmt_usd, to_cents_str
from bot.store.tables import EnforcedLimit

# Where a limit comes from, as a person would say it ("set by your seat tier").
_SOURCES = {
    "user": "set for you",
    "seat_tier": "set by your seat tier",
    "rbac_group": "set by your group",
    "organization": "the organization's default",
    "organization_service": "set for the service",
}
_PERIODS = {"monthly": "month", "1mo": "month", "weekly": "week", "daily": "day"}


@dataclass(frozen=True)
class EnforcedLimitView:
    vendor: str
    amount_micros: int | None  # None: no limit applies
    period: str
    spent_micros: int
    inherited_from: str | None
    source_detail: str | None
    as_of: datetime

    @property
    def vendor_name(self) -> str:
        return VENDOR_NAMES.get(self.vendor, self.vendor)

    @property
    def remaining_micros(self) -> int | None:
        return None if self.amount_micros is None else self.amount_micros - self.spent_micros

    def label(self) -> str:
        """ "Claude Enterprise limit $1,500 / month · $1,212 used · set by your seat tier" """
        per = _PERIODS.get(self.period)
        amount = "no limit" if self.amount_micros is None else (
            f"limit {fmt_usd(self.amount_micros)}" + (f" / {per}" if per else ""))
        parts = [f"{self.vendor_name} {amount}", f"{fmt_usd(self.spent_micros)} used"]
        source = _SOURCES.get(self.inherited_from or "")
        if source and self.vendor != "litellm":
            parts.append(source)
        return " · ".join(parts)

    def as_json(self) -> dict[str, Any]:
        """The `balance --json` shape: exact decimal strings in dollars."""
        return {
            "vendor": self.vendor,
            "amount_usd": None if self.amount_micros is None else to_cents_str(
                self.amount_micros),
            "period": self.period,
            "spent_usd": to_cents_str(self.spent_micros),
            "inherited_from": self.inherited_from,
            "as_of": self.as_of.isoformat(timespec="seconds"),
        }


async def enforced_limits_for(
    s: AsyncSession, person_ids: set[int] | list[int]
) -> dict[int, list[EnforcedLimitView]]:
    """Each person's enforced limits (vendor, then period), empty for unknown people."""
    out: dict[int, list[EnforcedLimitView]] = defaultdict(list)
    ids = list(person_ids)
    if not ids:
        return {}
    rows = (await s.scalars(select(EnforcedLimit).where(EnforcedLimit.person_id.in_(ids))
                            .order_by(EnforcedLimit.vendor, EnforcedLimit.period))).all()
    for r in rows:
        out[r.person_id or 0].append(EnforcedLimitView(
            vendor=r.vendor, amount_micros=r.amount_micros, period=r.period,
            spent_micros=r.spent_micros, inherited_from=r.inherited_from,
            source_detail=r.source_detail, as_of=r.as_of))
    return {pid: out.get(pid, []) for pid in ids}
