"""The engine's books for one spot market: base and quote balances.

The position is the base currency balance (spot, long only). Equity is
`quote + position x last price`, in the quote currency. Every amount is a
Decimal; market prices arrive as floats and are converted exactly
(`money.price_to_decimal`) when they touch money.

Revaluation is exact, but it is only *done* where it can change an outcome.
While a position is open, `mark` first estimates equity in floats with an
error bound and compares the interval with the thresholds that an exact
valuation could cross: a new peak, a new maximum drawdown, and (set by the
risk engine) the daily-loss and drawdown halt levels. Only when the interval
is strictly inside all of them is the exact computation skipped; it always
runs at fills, at the first event of each UTC day, and whenever `equity` or
`last_price` is read (they are computed from the latest mark on demand). So
every value the ledger exposes is the one an always-exact ledger would hold;
`precheck = False` turns the short-cut off (tests compare the two).
"""

from __future__ import annotations

import math
from decimal import Decimal

from hean_engine.model.errors import HeanError
from hean_engine.model.money import HUNDRED, ZERO
from hean_engine.model.orders import Fill, Side
from hean_engine.model.timefmt import DAY_MS

_INF = math.inf
_NEXT = math.nextafter
# The float estimate's error bound, relative to |quote| + |position| x price, and
# absolute (values below ~1e-308 underflow). The true error of the estimate is at
# most ~5 x 2**-53 (about 6e-16) relative: see `Ledger._refresh_bounds`.
_REL_MARGIN = 1e-12
_ABS_MARGIN = 1e-290


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
        self._last_price: Decimal | None = None  # the last price money was valued at
        self.mark_price: float | None = None  # the last market price seen
        self.starting_equity: Decimal | None = None
        self._equity: Decimal = self.quote
        # A mark whose exact valuation was skipped (see the module docstring):
        # `equity` and `last_price` are computed from it when read.
        self._unvalued: float | None = None
        self.precheck = True
        # (max daily loss, 1 - max drawdown %/100) while the risk engine can still
        # halt on equity; None when it cannot (no risk engine, or already halted).
        self.halt_limits: tuple[Decimal, Decimal] | None = None
        self._quote_f = 0.0
        self._position_f = 0.0
        self._scale_f = 0.0
        self._low_f = _INF  # skip an exact valuation only when low < equity < high
        self._high_f = -_INF
        self.peak_equity: Decimal = self.quote
        self.max_drawdown: Decimal = ZERO
        self.max_drawdown_pct: Decimal = ZERO
        self.day_start_equity: Decimal = self.quote
        self.first_ts: int | None = None  # time of the first valuation
        # Equity must be recomputed at or after this time even when flat: the
        # first valuation, and the start of each UTC day (daily-loss reference).
        self.revalue_due_ms = 0
        self._refresh_bounds()

    # -- money movements -------------------------------------------------
    def apply_fill(self, fill: Fill) -> None:
        """Book a fill; the fee is taken from the currency it was charged in."""
        if self.starting_equity is None:
            # A fill before any valuation: the starting equity is the books before it.
            self._revalue(fill.price, fill.ts)
        elif self._unvalued is not None:
            self._value_unvalued()  # the equity before the fill, at the latest mark
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
        self._revalue(fill.price, fill.ts)

    def set_balances(self, balances: dict[str, Decimal]) -> None:
        """Take the account's balances as the books (live start-up: the exchange's are true)."""
        self.other = {k: v for k, v in balances.items() if k not in (self.base, self.quote_ccy)}
        last_price = self.last_price
        self.quote = balances.get(self.quote_ccy, ZERO)
        self.position = balances.get(self.base, ZERO)
        if last_price is not None:
            self._equity = self.quote + self.position * last_price
            self._last_price = last_price
            self._unvalued = None
        self._refresh_bounds()

    def set_halt_limits(self, limits: tuple[Decimal, Decimal] | None) -> None:
        """The risk engine's halt levels: (max daily loss, drawdown keep factor), or None."""
        self.halt_limits = limits
        self._refresh_bounds()

    # -- valuation ---------------------------------------------------------
    def mark(self, price: float, ts: int) -> bool:
        """Take a market price; value exactly only where it can change an outcome.

        True when the exact valuation ran (the risk engine must then look at
        equity). Flat and within the same UTC day, equity cannot change. In a
        position, a float estimate with an error bound that stays strictly
        between the thresholds (`_refresh_bounds`) cannot change the peak, the
        maximum drawdown or a halt either; the exact value is then computed only
        if `equity` is read.
        """
        if ts < self.revalue_due_ms:
            if not self.position:
                self.mark_price = price
                return False
            if self.precheck:
                estimate = self._quote_f + self._position_f * price
                margin = (self._scale_f + abs(self._position_f * price)) * _REL_MARGIN
                if self._low_f < estimate - margin and estimate + margin < self._high_f:
                    self.mark_price = price
                    self._unvalued = price
                    return False
        self.revalue(price, ts)
        return True

    def revalue(self, price: float, ts: int) -> None:
        """Value the books exactly at `price`."""
        self.mark_price = price
        # price_to_decimal, inlined.
        self._revalue(Decimal(repr(price)), ts)

    def can_pay(self, side: Side, quantity: Decimal, price: Decimal, fee: Decimal) -> bool:
        """Could this fill be booked without a negative balance?"""
        if side is Side.BUY:
            return price * quantity + fee <= self.quote
        return quantity <= self.position

    def _revalue(self, price: Decimal, ts: int) -> None:
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
        self._last_price = price
        self._equity = equity
        self._unvalued = None
        if equity > self.peak_equity:
            self.peak_equity = equity
        elif equity < self.peak_equity:
            drawdown = self.peak_equity - equity
            if drawdown > self.max_drawdown:
                self.max_drawdown = drawdown
                self.max_drawdown_pct = drawdown * HUNDRED / self.peak_equity
        self._refresh_bounds()

    def _refresh_bounds(self) -> None:
        """The float thresholds of `mark`'s pre-check, after the books changed.

        Skipping is sound when the exact equity E = Q + P x D (D the price's
        decimal) is certainly > low and < high, where `low` is the highest level
        below which something changes (a new maximum drawdown at
        peak - max_drawdown; a daily-loss halt at day start - limit; a drawdown
        halt at peak x keep) and `high` is the peak. `_low_f` is float(low)
        rounded up and `_high_f` float(high) rounded down, so comparing with them
        errs toward the exact path. The estimate fl(fl(Q) + fl(P) x p) differs
        from E by at most about 5 x 2**-53 x (|Q| + |P| x p) (each conversion and
        operation rounds once, and p is within half an ulp of D); `mark` allows
        1e-12 of that, plus 1e-290 for underflow. NaN or infinity anywhere fails
        the comparisons, so the exact path runs.
        """
        peak = self.peak_equity
        low = peak - self.max_drawdown
        limits = self.halt_limits
        if limits is not None:
            max_daily_loss, keep = limits
            low = max(low, self.day_start_equity - max_daily_loss, peak * keep)
        self._low_f = _NEXT(float(low), _INF)
        self._high_f = _NEXT(float(peak), -_INF)
        self._quote_f = float(self.quote)
        self._position_f = float(self.position)
        self._scale_f = abs(self._quote_f) + _ABS_MARGIN / _REL_MARGIN

    # -- views -------------------------------------------------------------
    @property
    def equity(self) -> Decimal:
        """Quote + position x the latest marked price, exact."""
        if self._unvalued is not None:
            self._value_unvalued()
        return self._equity

    @property
    def last_price(self) -> Decimal | None:
        """The latest price money was valued at (the latest mark while in a position)."""
        if self._unvalued is not None:
            self._value_unvalued()
        return self._last_price

    def _value_unvalued(self) -> None:
        price = self._unvalued
        assert price is not None
        self._unvalued = None
        self._last_price = last = Decimal(repr(price))
        self._equity = self.quote + self.position * last

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
