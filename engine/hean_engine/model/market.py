"""Market data events.

Prices and amounts are floats here: indicators want floats, and converting
every event to Decimal would cost more than the rest of a replay. Money code
converts a price with `money.price_to_decimal` at the moment it becomes money.
"""

from __future__ import annotations


class Candle:
    """One OHLCV bar; `ts` is the bar's open time in epoch milliseconds (UTC)."""

    __slots__ = ("close", "high", "low", "open", "ts", "volume")

    def __init__(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        self.ts = ts
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume

    def __repr__(self) -> str:
        return (
            f"Candle(ts={self.ts}, open={self.open}, high={self.high}, low={self.low}, "
            f"close={self.close}, volume={self.volume})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candle):
            return NotImplemented
        return (self.ts, self.open, self.high, self.low, self.close, self.volume) == (
            other.ts,
            other.open,
            other.high,
            other.low,
            other.close,
            other.volume,
        )

    __hash__ = None  # type: ignore[assignment]


class Trade:
    """One public trade; `buyer_taker` is True when the taker bought (side `buy`)."""

    __slots__ = ("amount", "buyer_taker", "price", "ts")

    def __init__(self, ts: int, buyer_taker: bool, price: float, amount: float) -> None:
        self.ts = ts
        self.buyer_taker = buyer_taker
        self.price = price
        self.amount = amount

    @property
    def side(self) -> str:
        return "buy" if self.buyer_taker else "sell"

    def __repr__(self) -> str:
        return f"Trade(ts={self.ts}, side={self.side}, price={self.price}, amount={self.amount})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trade):
            return NotImplemented
        return (self.ts, self.buyer_taker, self.price, self.amount) == (
            other.ts,
            other.buyer_taker,
            other.price,
            other.amount,
        )

    __hash__ = None  # type: ignore[assignment]


MarketEvent = Candle | Trade
