"""Money formatting: fmt_usd's integer arithmetic against the Decimal rules it stands for."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from bot.money import fmt_usd


def _reference(micros: int, cents: bool | None) -> str:
    """Round half-even to the cent; whole dollars (half-even) for large round figures."""
    value = (Decimal(micros) / 1_000_000).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if cents is None:
        cents = value < 100 or value != value.to_integral_value()
    text = f"{value:,.2f}" if cents else f"{value.to_integral_value(rounding=ROUND_HALF_EVEN):,}"
    return f"{sign}${text}"


@pytest.mark.parametrize(
    ("micros", "cents", "text"),
    [
        (0, None, "$0.00"),
        (5_000, None, "$0.00"),  # half a cent, to the even cent
        (15_000, None, "$0.02"),
        (-4_999, None, "$0.00"),  # no "-$0.00"
        (-1_234_567_891, None, "-$1,234.57"),
        (100_000_000, None, "$100"),
        (100_010_000, None, "$100.01"),
        (99_990_000, None, "$99.99"),
        (100_500_000, False, "$100"),  # half a dollar, to the even dollar
        (101_500_000, False, "$102"),
        (1_000_000, True, "$1.00"),
    ],
)
def test_fmt_usd_examples(micros: int, cents: bool | None, text: str) -> None:
    assert fmt_usd(micros, cents=cents) == text
    assert _reference(micros, cents) == text


def test_fmt_usd_matches_the_decimal_rules() -> None:
    rng = random.Random(20261123)
    values = [rng.randint(-10**13, 10**13) for _ in range(20_000)]
    values += [rng.randint(-10**8, 10**8) * 5_000 for _ in range(20_000)]  # ties
    for micros in values:
        for cents in (None, True, False):
            assert fmt_usd(micros, cents=cents) == _reference(micros, cents), (micros, cents)
