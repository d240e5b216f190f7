"""The price table's billed dimensions: each priced at its own rate where the entry has
one, its documented fallback where not (and reported), exact to the micro-dollar."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from pydantic import ValidationError

from bot.config.models import CategoriesConfig, PriceEntry, PricingConfig
from bot.usage.categories import Classifier
from bot.usage.pricing import PriceTable, default_entries, normal_tier
from bot.usage.record import Billing, RawUsage, record_key

AT = datetime(2026, 11, 17, 12, tzinfo=UTC)


def usage(model: str, provider: str = "anthropic", *, billing: Billing | None = None,
          **tokens: int) -> RawUsage:
    return RawUsage(record_key("t", model, str(tokens)), "t", AT, provider, model,
                    billing=billing, **tokens)


def table(**entry: object) -> PriceTable:
    return PriceTable(PricingConfig(use_defaults=False, models=[PriceEntry.model_validate(
        {"model": "m*", "provider": "anthropic", "input": "3", "output": "15",
         "cache_read": "0.3", "cache_write": "3.75", **entry})]))


def exact(d: Decimal) -> int:
    return int(d.quantize(Decimal(1), ROUND_HALF_EVEN))


def test_every_dimension_at_its_own_rate() -> None:
    t = table(cache_write_1h="6", web_search_per_1k="10", audio_input="40",
              audio_output="80", audio_cache_read="2.5", image_input="5",
              image_cache_read="0.5", image_output="30", tiers={"Batch": "0.5"},
              long_context={"input": "6", "output": "22.5", "cache_write_1h": "12"})
    price = t.lookup("anthropic", "m-1", date(2026, 11, 17))
    assert price is not None
    b = Billing(audio_input=100, image_input=50, audio_cache_read=7, image_cache_read=3,
                audio_output=20, image_output=10, cache_write_1h=400,
                web_search_requests=3, tier="batch")
    r = usage("m-1", input_tokens=1000, output_tokens=500, cache_read_tokens=70,
              cache_write_tokens=900, billing=b)
    tokens = (850 * Decimal(3) + 100 * Decimal(40) + 50 * Decimal(5)
              + 60 * Decimal("0.3") + 7 * Decimal("2.5") + 3 * Decimal("0.5")
              + 470 * Decimal(15) + 20 * Decimal(80) + 10 * Decimal(30)
              + 500 * Decimal("3.75") + 400 * Decimal(6))
    assert price.billed_micros(r) == exact(tokens * Decimal("0.5") + 3 * 10 * 1000)
    assert price.approximations(b) == []
    # The long-context band: its rates where given (cache_read falls back to standard).
    lc = Billing(cache_write_1h=400, long_context=True)
    r2 = usage("m-1", input_tokens=1000, output_tokens=500, cache_read_tokens=70,
               cache_write_tokens=900, billing=lc)
    assert price.billed_micros(r2) == exact(
        1000 * Decimal(6) + 500 * Decimal("22.5") + 70 * Decimal("0.3")
        + 500 * Decimal("3.75") + 400 * Decimal(12))


def test_fallbacks_are_priced_and_named() -> None:
    price = table().lookup("anthropic", "m-2", date(2026, 11, 17))
    assert price is not None
    b = Billing(audio_input=100, cache_write_1h=400, web_search_requests=5,
                tier="priority", long_context=True)
    r = usage("m-2", input_tokens=1000, output_tokens=10, cache_write_tokens=400, billing=b)
    # audio at the text rate, 1-hour writes at the 5-minute rate, searches unpriced,
    # unknown tier and band at standard rates.
    assert price.billed_micros(r) == exact(1000 * Decimal(3) + 10 * Decimal(15)
                                           + 400 * Decimal("3.75"))
    assert price.approximations(b) == [
        "audio input at the text rate", "1-hour cache writes at the 5-minute rate",
        "web searches unpriced", "priority tier at standard rates",
        "long-context band at standard rates"]
    # Without a breakdown the four-count price is unchanged.
    plain = usage("m-2", input_tokens=1000, output_tokens=10)
    assert price.billed_micros(plain) == price.cost_micros(1000, 10, 0, 0) == 3150


def test_tiers_and_config_errors() -> None:
    assert normal_tier("Default") is None and normal_tier("standard") is None
    assert normal_tier(" Flex ") == "flex" and normal_tier(None) is None
    with pytest.raises(ValidationError, match="multiplier"):
        PriceEntry.model_validate({"model": "x", "input": "1", "output": "1",
                                   "tiers": {"batch": "-0.5"}})
    with pytest.raises(ValidationError, match="extra"):
        PriceEntry.model_validate({"model": "x", "input": "1", "output": "1",
                                   "long_context": {"inputs": "2"}})


def test_the_defaults_parse_and_carry_dated_rates_for_the_new_dimensions() -> None:
    entries = {(e.model, e.effective_from): e for e in default_entries()}
    sonnet = entries[("claude-sonnet-4-5*", date(2025, 9, 29))]
    # The documented prompt-caching multipliers: 5-minute writes 1.25x input, 1-hour
    # writes 2x, hits 0.1x (platform.claude.com/docs/en/about-claude/pricing).
    assert (sonnet.cache_write, sonnet.cache_write_1h, sonnet.cache_read) == (
        sonnet.input * Decimal("1.25"), sonnet.input * 2, sonnet.input / 10)
    assert sonnet.web_search_per_1k == 10 and sonnet.tiers["batch"] == Decimal("0.5")
    assert sonnet.long_context is not None
    audio = entries[("gpt-4o-audio*", date(2024, 12, 17))]
    assert (audio.audio_input, audio.audio_output) == (40, 80)
    # Flex is priced at Batch API rates (OpenAI's flex processing guide).
    assert all(e.tiers.get("flex", e.tiers.get("batch")) == e.tiers.get("batch")
               for e in entries.values())


@pytest.mark.parametrize(("provider", "model", "rates"), [
    # Newer models that share a stem with an older, dearer one get their own rates...
    ("anthropic", "claude-opus-4-6", ("5.00", "25.00")),
    ("anthropic", "claude-opus-4-20250514", ("15.00", "75.00")),
    ("anthropic", "claude-sonnet-5-5", ("2.00", "10.00")),
    ("openai", "gpt-5-2025-08-07", ("1.25", "10.00")),
    ("openai", "gpt-4o-2024-08-06", ("2.50", "10.00")),
    # ...and a model whose price was not checked is reported unpriced, never priced at a
    # relative's rate (gpt-5.4 is not gpt-5; o3-mini is not o3; Opus 5.5 is not Opus 5).
    ("openai", "gpt-5.4", None),
    ("openai", "gpt-5-pro", None),
    ("openai", "o3-mini", None),
    ("openai", "gpt-4o-realtime-preview", None),
    ("anthropic", "claude-opus-5-5", None),
])
def test_default_prefixes_do_not_lend_a_relative_s_price(
        provider: str, model: str, rates: tuple[str, str] | None) -> None:
    price = PriceTable(PricingConfig()).lookup(provider, model, date(2026, 11, 17))
    got = None if price is None else (price.input, price.output)
    assert got == (None if rates is None else tuple(Decimal(r) for r in rates))


def test_products_categorise_copilot_and_cursor() -> None:
    c = Classifier(CategoriesConfig())
    for product, want in (("copilot", "coding"), ("copilot_coding_agent", "agentic"),
                          ("cursor", "coding"), ("cursor_agent", "agentic")):
        r = usage("GPT-5", "github", input_tokens=50_000, output_tokens=10)
        r.product = product
        assert c.classify(r)[0] == want, product
    ruled = Classifier(CategoriesConfig.model_validate({"rules": [
        {"match": {"source": "t", "model": "gpt-5"}, "category": "chat"}]}))
    r = usage("GPT-5", "github")
    r.product = "copilot"
    assert ruled.classify(r) == ("chat", "rule:0")  # an app.yaml rule still wins
    with pytest.raises(ValidationError, match="unknown categories: gaming"):
        CategoriesConfig.model_validate({"heuristics": {"product_categories":
                                                        {"x": "gaming"}}})
