"""Exact money arithmetic.

Balances, positions, fills, fees and PnL are `Decimal`s. Market data arrives as
IEEE doubles (ccxt returns floats; the replay reader parses with `float` for
speed); `price_to_decimal` converts through the shortest round-tripping repr,
which gives back exactly the decimal text the exchange published for any price
with up to 15 significant digits, never a binary expansion such as
0.1000000000000000055511151231257827.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)
HUNDRED = Decimal(100)

# One context for the whole engine: wide enough that products of prices,
# quantities and rates never round, and traps so that a stray float or an
# inexact division is an error rather than a silent loss.
MONEY_CONTEXT = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.FloatOperation],
)
decimal.setcontext(MONEY_CONTEXT)
decimal.DefaultContext.prec = MONEY_CONTEXT.prec
decimal.DefaultContext.traps[decimal.FloatOperation] = True


def price_to_decimal(value: float) -> Decimal:
    """The decimal a market data double stands for (see the module docstring)."""
    return Decimal(repr(value))


def fmt(value: Decimal) -> str:
    """A decimal as a plain string without exponent, trailing zeros trimmed."""
    if not value:
        return "0"
    text = str(value)  # plain unless the exponent is large
    if "E" in text:
        text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
