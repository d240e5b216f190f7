"""Price table: USD per 1M tokens by model, with effective dates; longest prefix wins.

Money stays exact: tokens x (USD per 1M tokens) is exactly micro-dollars, so a record's
cost is the sum of four exact products, rounded once (half-even) to the micro-dollar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import resources

import yaml

from bot.config.models import PriceEntry, PricingConfig


@dataclass(frozen=True)
class Price:
    model: str
    provider: str | None
    effective_from: date
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal

    def cost_micros(self, input_tokens: int, output_tokens: int, cache_read: int,
                    cache_write: int) -> int:
        total = (input_tokens * self.input + output_tokens * self.output
                 + cache_read * self.cache_read + cache_write * self.cache_write)
        return int(total.to_integral_value(rounding=ROUND_HALF_EVEN))


def _price(entry: PriceEntry) -> Price:
    return Price(
        model=entry.model.lower(),
        provider=entry.provider,
        effective_from=entry.effective_from,
        input=entry.input,
        output=entry.output,
        cache_read=entry.cache_read if entry.cache_read is not None else entry.input,
        cache_write=entry.cache_write if entry.cache_write is not None else entry.input,
    )


def default_entries() -> list[PriceEntry]:
    text = resources.files("bot.defaults").joinpath("prices.yaml").read_text(encoding="utf-8")
    return [PriceEntry.model_validate(e) for e in yaml.safe_load(text)["models"]]


class PriceTable:
    def __init__(self, config: PricingConfig):
        entries = (default_entries() if config.use_defaults else []) + list(config.models)
        # Config entries come last so they win ties with defaults of the same date.
        self._prices = [_price(e) for e in entries]
        self._cache: dict[tuple[str, str, date], Price | None] = {}
        self.routing = {k.lower(): v.lower() for k, v in config.routing.items()}

    @staticmethod
    def _matches(pattern: str, model: str) -> int:
        """Match strength: exact > longest prefix; -1 for no match."""
        if pattern.endswith("*"):
            stem = pattern[:-1]
            return len(stem) if model.startswith(stem) else -1
        return 10_000 if model == pattern else -1

    def lookup(self, provider: str, model: str, day: date) -> Price | None:
        cache_key = (provider, model, day)
        if cache_key in self._cache:
            return self._cache[cache_key]
        name = model.lower()
        best: Price | None = None
        best_rank: tuple[int, date, int] = (-1, date.min, -1)
        for index, price in enumerate(self._prices):
            if price.provider and price.provider != provider:
                continue
            if price.effective_from > day:
                continue
            strength = self._matches(price.model, name)
            if strength < 0:
                continue
            rank = (strength, price.effective_from, index)
            if rank > best_rank:
                best, best_rank = price, rank
        self._cache[cache_key] = best
        return best

    def cheaper_model(self, model: str) -> str | None:
        """The configured routing target for ``model`` (exact or prefix*), if any."""
        name = model.lower()
        best, best_len = None, -1
        for pattern, target in self.routing.items():
            strength = self._matches(pattern, name)
            if strength > best_len:
                best, best_len = target, strength
        return best
