"""Money is integer micro-dollars in the store and Decimal at the edges; never float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

MICROS_PER_USD = 1_000_000
_CENT = Decimal("0.01")


def to_micros(amount: Decimal | int | str) -> int:
    """Dollars to micro-dollars, rounding half-even at the micro-dollar."""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    return int((value * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def to_decimal(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_USD


def to_cents_str(micros: int) -> str:
    """A decimal string in dollars, exact to the cent (for JSON output)."""
    return str(to_decimal(micros).quantize(_CENT, rounding=ROUND_HALF_EVEN))


def fmt_usd(micros: int, *, cents: bool | None = None) -> str:
    """Human money: $1,234.56; whole dollars for large round figures when cents=None."""
    value = to_decimal(micros).quantize(_CENT, rounding=ROUND_HALF_EVEN)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if cents is None:
        cents = value < 100 or value != value.to_integral_value()
    text = f"{value:,.2f}" if cents else f"{value.to_integral_value(rounding=ROUND_HALF_EVEN):,}"
    return f"{sign}${text}"


def pct(part: int, whole: int) -> int:
    """Whole percent, 0 when there is nothing to divide by (integer arithmetic)."""
    if whole <= 0:
        return 0
    return (part * 100 + whole // 2) // whole
