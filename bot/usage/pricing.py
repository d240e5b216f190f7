"""Price table: USD per 1M tokens by model, with effective dates; longest prefix wins.

Money stays exact: tokens x (USD per 1M tokens) is exactly micro-dollars, so a record's
cost is a sum of exact products, rounded once (half-even) to the micro-dollar.

Beyond the four token counts a record may carry a ``Billing`` breakdown (see
``bot/usage/record.py``); each part is priced at its own rate where the entry has one:

- audio / image tokens at ``audio_*`` / ``image_*`` (else the text rate of that kind),
- 1-hour cache writes at ``cache_write_1h`` (else ``cache_write``),
- web searches at ``web_search_per_1k`` / 1000 each (else nothing),
- the long-context band at ``long_context`` rates (else the standard ones),
- then every token amount times the tier's multiplier (``tiers``; else 1).

A part that had to fall back is named by ``approximations`` so a pull can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import resources

import yaml

from bot.config.models import PriceEntry, PricingConfig
from bot.usage.record import Billing, RawUsage

STANDARD_TIERS = frozenset({"standard", "default", "auto"})


def normal_tier(value: str | None) -> str | None:
    """A provider's service tier as a price-table key; None for standard pricing."""
    tier = (value or "").strip().lower()
    return None if not tier or tier in STANDARD_TIERS else tier


@dataclass(frozen=True)
class Price:
    model: str
    provider: str | None
    effective_from: date
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    entry: PriceEntry | None = None  # the rates of the billed dimensions beyond these

    def cost_micros(self, input_tokens: int, output_tokens: int, cache_read: int,
                    cache_write: int) -> int:
        total = (input_tokens * self.input + output_tokens * self.output
                 + cache_read * self.cache_read + cache_write * self.cache_write)
        return int(total.to_integral_value(rounding=ROUND_HALF_EVEN))

    def billed_micros(self, r: RawUsage) -> int:
        """A record's cost with its ``billing`` breakdown priced (module docstring)."""
        b, e = r.billing, self.entry
        if b is None or e is None:
            return self.cost_micros(r.input_tokens, r.output_tokens, r.cache_read_tokens,
                                    r.cache_write_tokens)
        lc = e.long_context if b.long_context else None

        def rate(name: str, fallback: Decimal) -> Decimal:
            value = getattr(lc, name, None) if lc is not None else None
            if value is None:
                value = getattr(e, name, None)
            return fallback if value is None else Decimal(value)

        text_in = rate("input", self.input)
        text_read = rate("cache_read", self.cache_read)
        text_out = rate("output", self.output)
        write_5m = rate("cache_write", self.cache_write)
        tokens = (
            (r.input_tokens - b.audio_input - b.image_input) * text_in
            + b.audio_input * rate("audio_input", text_in)
            + b.image_input * rate("image_input", text_in)
            + (r.cache_read_tokens - b.audio_cache_read - b.image_cache_read) * text_read
            + b.audio_cache_read * rate("audio_cache_read", text_read)
            + b.image_cache_read * rate("image_cache_read", text_read)
            + (r.output_tokens - b.audio_output - b.image_output) * text_out
            + b.audio_output * rate("audio_output", text_out)
            + b.image_output * rate("image_output", text_out)
            + (r.cache_write_tokens - b.cache_write_1h) * write_5m
            + b.cache_write_1h * rate("cache_write_1h", write_5m))
        factor = e.tiers.get(b.tier, Decimal(1)) if b.tier else Decimal(1)
        # web_search_per_1k is USD per 1,000 searches = 1,000 micro-dollars per search per $1
        searches = b.web_search_requests * (e.web_search_per_1k or 0) * 1000
        return int((tokens * factor + searches).to_integral_value(rounding=ROUND_HALF_EVEN))

    def approximations(self, b: Billing) -> list[str]:
        """The parts of ``b`` this entry has no rate for (priced by their fallback)."""
        e = self.entry
        if e is None:
            return []
        out = [what for what, n, rate in (
            ("audio input at the text rate", b.audio_input, e.audio_input),
            ("image input at the text rate", b.image_input, e.image_input),
            ("cached audio at the text rate", b.audio_cache_read, e.audio_cache_read),
            ("cached images at the text rate", b.image_cache_read, e.image_cache_read),
            ("audio output at the text rate", b.audio_output, e.audio_output),
            ("image output at the text rate", b.image_output, e.image_output),
            ("1-hour cache writes at the 5-minute rate", b.cache_write_1h, e.cache_write_1h),
            ("web searches unpriced", b.web_search_requests, e.web_search_per_1k),
        ) if n and rate is None]
        if b.tier and b.tier not in e.tiers:
            out.append(f"{b.tier} tier at standard rates")
        if b.long_context and e.long_context is None:
            out.append("long-context band at standard rates")
        return out


def _price(entry: PriceEntry) -> Price:
    return Price(
        model=entry.model.lower(),
        provider=entry.provider,
        effective_from=entry.effective_from,
        input=entry.input,
        output=entry.output,
        cache_read=entry.cache_read if entry.cache_read is not None else entry.input,
        cache_write=entry.cache_write if entry.cache_write is not None else entry.input,
        entry=entry,
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
