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
    """Human money: $1,234.56; whole dollars for large round figures when cents=None.

    Integer arithmetic (digests format a hundred thousand figures): the cent rounds half
    to even, and so does the dollar when cents are left out."""
    whole_cents, rest = divmod(abs(micros), 10_000)
    if rest > 5_000 or (rest == 5_000 and whole_cents & 1):
        whole_cents += 1
    sign = "-" if micros < 0 and whole_cents else ""
    dollars, cent = divmod(whole_cents, 100)
    if cents is None:
        cents = dollars < 100 or cent != 0
    if cents:
        return f"{sign}${dollars:,}.{cent:02d}"
    if cent > 50 or (cent == 50 and dollars & 1):
        dollars += 1
    return f"{sign}${dollars:,}"


class Percent(int):
    """A whole percentage that never reads as a nonsense figure: above ``SHOWN_MAX`` it
    prints as ">999" (an absurd cost once made "33333335% used"), while comparing and
    computing as the true number (thresholds, sorting, JSON)."""

    SHOWN_MAX = 999

    def __str__(self) -> str:
        return f">{self.SHOWN_MAX}" if self > self.SHOWN_MAX else int.__repr__(self)

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else int(self).__format__(spec)


def pct(part: int, whole: int) -> int:
    """Whole percent, 0 when there is nothing to divide by (integer arithmetic); a Percent,
    so that it never prints as an absurd figure."""
    if whole <= 0:
        return Percent(0)
    return Percent((part * 100 + whole // 2) // whole)
