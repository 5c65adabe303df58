"""Numbers as Binance writes them: decimal strings, never binary floats.

Recorded values are IEEE doubles (the reader parses with `float`); `dec`
recovers the exact decimal text the exchange published (the shortest repr
of a double is that text for any value with up to 15 significant digits).
Binance writes prices and quantities with eight decimals (`"997.50000000"`),
so values with at most eight decimals are padded to eight; longer recorded
values are served whole rather than rounded. Derived values (averages,
percentages) are rounded explicitly where they are computed.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

EIGHT = Decimal("0.00000001")
ZERO = Decimal(0)


def dec(value: float) -> Decimal:
    """The exact decimal a recorded double stands for."""
    return Decimal(repr(value))


def text(value: Decimal) -> str:
    """Binance's decimal string: at least eight decimals, no exponent, exact."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -8:
        value = value.quantize(EIGHT)
    return format(value, "f")


def ftext(value: float) -> str:
    """`text` of a recorded double."""
    return text(dec(value))


def rounded(value: Decimal, places: Decimal = EIGHT) -> Decimal:
    """A derived value rounded half-even (Binance rounds its averages this way)."""
    return value.quantize(places, rounding=ROUND_HALF_EVEN)


def decimals(value: Decimal) -> int:
    """Digits after the point in the value's shortest form (0 for integers)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
