"""The contract between the pull orchestration (``bot/usage/pull.py``) and a connector.

A connector fetches one window completely and hands back a ``WindowData``; the
orchestration writes it in one transaction with the checkpoint. Connectors import
this module, never the orchestration.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Protocol

from bot.usage.record import Billing, RawUsage


class PullError(Exception):
    """A pull failed; the message names the source and what went wrong (never the key)."""


@dataclass(frozen=True)
class CostRow:
    """One billed amount from a provider's cost API (stored in provider_costs)."""

    key: bytes
    day: date
    scope: str | None  # project / workspace
    line_item: str | None
    amount_micros: int


@dataclass(frozen=True)
class Discovered:
    """A provider identity whose owner's email the provider told us (origin discovered)."""

    kind: str  # e.g. "openai:api_keys"
    value: str
    email: str


_SUMMED = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "requests", "tool_calls")
_BILLING_SUMMED = tuple(f.name for f in fields(Billing) if f.type == "int")


def summed(a: RawUsage, b: RawUsage) -> RawUsage:
    """Two rows with one natural key (a dimension we do not key on, or two events the
    provider cannot tell apart) are added, never overwritten, so no usage is lost."""
    cost = None if a.cost_micros is None and b.cost_micros is None else (
        (a.cost_micros or 0) + (b.cost_micros or 0))
    billing = a.billing or b.billing
    if a.billing is not None and b.billing is not None:
        billing = replace(a.billing, **{n: getattr(a.billing, n) + getattr(b.billing, n)
                                        for n in _BILLING_SUMMED})
    return replace(a, cost_micros=cost, billing=billing,
                   **{n: getattr(a, n) + getattr(b, n) for n in _SUMMED})


@dataclass
class WindowData:
    """Everything one window produced, fetched completely before anything is written."""

    costs: list[CostRow] = field(default_factory=list)
    # Per stored source ("anthropic", "claude_code"): end of the newest bucket with data.
    data_as_of: dict[str, datetime] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows left out
    _records: dict[bytes, RawUsage] = field(default_factory=dict, repr=False)

    @property
    def records(self) -> list[RawUsage]:
        return list(self._records.values())

    def add(self, record: RawUsage) -> None:
        old = self._records.get(record.key)
        self._records[record.key] = record if old is None else summed(old, record)

    def extend(self, records: list[RawUsage]) -> None:
        for r in records:
            self.add(r)

    def saw(self, source: str, end: datetime) -> None:
        if source not in self.data_as_of or end > self.data_as_of[source]:
            self.data_as_of[source] = end


class Connector(Protocol):
    name: str
    bucket: timedelta  # granularity: checkpoints and `until` are floored to it
    reconciles: bool  # fetches a cost API to compare billed vs priced usage
    # A window's answer is the provider's complete account of it: stored rows of this
    # source in the window that the answer no longer holds are removed (restated away).
    replaces_window: bool

    async def __aenter__(self) -> Connector: ...

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None: ...

    async def probe(self, now: datetime) -> str: ...

    async def discover(self) -> list[Discovered]: ...

    async def fetch_window(self, start: datetime, end: datetime) -> WindowData: ...

    def skipped_note(self, reason: str, rows: int) -> str: ...
