"""The engine's books for one spot market: base and quote balances.

The position is the base currency balance (spot, long only). Equity is
`quote + position x last price`, in the quote currency. Every amount is a
Decimal; market prices arrive as floats and are converted exactly
(`money.price_to_decimal`) when they touch money.
"""

from __future__ import annotations

from decimal import Decimal

from hean_engine.model.errors import HeanError
from hean_engine.model.money import HUNDRED, ZERO
from hean_engine.model.orders import Fill, Side
from hean_engine.model.timefmt import DAY_MS


class LedgerError(HeanError):
    """A fill would drive a balance negative: the venue let through what it must not."""


class Ledger:
    def __init__(self, base: str, quote: str, starting_balances: dict[str, Decimal]) -> None:
        self.base = base
        self.quote_ccy = quote
        # Other currencies in the account are carried but not valued.
        self.other = {k: v for k, v in starting_balances.items() if k not in (base, quote)}
        self.quote: Decimal = starting_balances.get(quote, ZERO)
        self.position: Decimal = starting_balances.get(base, ZERO)
        self.fees: Decimal = ZERO
        self.fill_count = 0
        self.last_price: Decimal | None = None  # the last price money was valued at
        self.mark_price: float | None = None  # the last market price seen
        self.starting_equity: Decimal | None = None
        self.equity: Decimal = self.quote
        self.peak_equity: Decimal = self.quote
        self.max_drawdown: Decimal = ZERO
        self.max_drawdown_pct: Decimal = ZERO
        self.day_start_equity: Decimal = self.quote
        self.first_ts: int | None = None  # time of the first valuation
        # Equity must be recomputed at or after this time even when flat: the
        # first valuation, and the start of each UTC day (daily-loss reference).
        self.revalue_due_ms = 0

    # -- money movements -------------------------------------------------
    def apply_fill(self, fill: Fill) -> None:
        """Book a fill; the fee is taken from the currency it was charged in."""
        if self.starting_equity is None:
            # A fill before any valuation: the starting equity is the books before it.
            self._revalue(fill.price, fill.ts)
        notional = fill.price * fill.quantity
        fee = fill.fee
        asset = fill.fee_asset
        fee_quote = fee if not asset or asset == self.quote_ccy else ZERO
        fee_base = fee if asset == self.base else ZERO
        if fill.side is Side.BUY:
            new_quote = self.quote - notional - fee_quote
            if new_quote < 0:
                raise LedgerError(f"fill {fill.order_id} would make {self.quote_ccy} negative")
            self.quote = new_quote
            self.position += fill.quantity - fee_base
        else:
            if fill.quantity + fee_base > self.position:
                raise LedgerError(f"fill {fill.order_id} would make {self.base} negative")
            self.position -= fill.quantity + fee_base
            self.quote += notional - fee_quote
        if fee_quote or fee_base:
            self.fees += fee_quote + fee_base * fill.price
        elif fee:
            # A fee in a third currency (BNB): carried in its balance, not valued.
            self.other[asset] = self.other.get(asset, ZERO) - fee
        self.fill_count += 1
        self.last_price = fill.price
        self._revalue(fill.price, fill.ts)

    def set_balances(self, balances: dict[str, Decimal]) -> None:
        """Take the account's balances as the books (live start-up: the exchange's are true)."""
        self.other = {k: v for k, v in balances.items() if k not in (self.base, self.quote_ccy)}
        self.quote = balances.get(self.quote_ccy, ZERO)
        self.position = balances.get(self.base, ZERO)
        if self.last_price is not None:
            self.equity = self.quote + self.position * self.last_price

    # -- valuation ---------------------------------------------------------
    def mark(self, price: float, ts: int) -> bool:
        """Take a market price; revalue only if equity may have changed (then True).

        Flat and within the same UTC day, equity cannot change, so this only
        stores the price. The kernel inlines the same test on its hot path.
        """
        if self.position or ts >= self.revalue_due_ms:
            self.revalue(price, ts)
            return True
        self.mark_price = price
        return False

    def revalue(self, price: float, ts: int) -> None:
        self.mark_price = price
        # price_to_decimal, inlined: this runs on every event while in a position.
        self._revalue(Decimal(repr(price)), ts)

    def can_pay(self, side: Side, quantity: Decimal, price: Decimal, fee: Decimal) -> bool:
        """Could this fill be booked without a negative balance?"""
        if side is Side.BUY:
            return price * quantity + fee <= self.quote
        return quantity <= self.position

    def _revalue(self, price: Decimal, ts: int) -> None:
        self.last_price = price
        equity = self.quote + self.position * price
        if ts >= self.revalue_due_ms:
            # The first valuation of a UTC day: the day's reference is the equity
            # carried over from the day before (or the start equity on day one).
            self.day_start_equity = self.equity if self.starting_equity is not None else equity
            self.revalue_due_ms = ts - ts % DAY_MS + DAY_MS
        if self.starting_equity is None:
            self.starting_equity = equity
            self.peak_equity = equity
            self.day_start_equity = equity
            self.first_ts = ts
        self.equity = equity
        if equity > self.peak_equity:
            self.peak_equity = equity
        elif equity < self.peak_equity:
            drawdown = self.peak_equity - equity
            if drawdown > self.max_drawdown:
                self.max_drawdown = drawdown
                self.max_drawdown_pct = drawdown * HUNDRED / self.peak_equity

    # -- views -------------------------------------------------------------
    @property
    def pnl(self) -> Decimal:
        """Equity less the starting equity; zero before the first valuation."""
        if self.starting_equity is None:
            return ZERO
        return self.equity - self.starting_equity

    @property
    def daily_loss(self) -> Decimal:
        return self.day_start_equity - self.equity

    @property
    def drawdown_pct(self) -> Decimal:
        if self.peak_equity <= 0:
            return ZERO
        return (self.peak_equity - self.equity) * HUNDRED / self.peak_equity

    def balances(self) -> dict[str, Decimal]:
        out = dict(self.other)
        out[self.base] = self.position
        out[self.quote_ccy] = self.quote
        return out
