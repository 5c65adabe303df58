"""The engine's books for one spot market: base and quote balances.

The position is the base currency balance (spot, long only). Equity is
`quote + position x last price`, in the quote currency. Every amount is a
Decimal; market prices arrive as floats and are converted exactly
(`money.price_to_decimal`) when they touch money.

Revaluation is exact, but it is only *done* where it can change an outcome.
Between two changes of the books or of the thresholds, equity is an
increasing function of the price (a long position), so the thresholds that
an exact valuation could cross (a new peak and, set by the risk engine, the
daily-loss and drawdown halt levels) are crossed only outside a price
interval. `_refresh_bounds` computes that interval in floats, shrunk by a
bound on its rounding error (`steady_low`, `steady_high`); a mark strictly
inside it skips the exact computation and only remembers the lowest such
price (`low_mark`): the deepest drawdown since the last exact valuation is
the one at that price, valued exactly before the books or the peak change and
whenever the maximum drawdown is read. The exact valuation always runs at
fills, at the first event of each UTC day and outside the interval, and
`equity` and `last_price` are computed from the latest mark when read. So
every value the ledger exposes is the one an always-exact ledger would hold;
`set_precheck(False)` turns the short-cut off (tests compare the two).
"""

from __future__ import annotations

import math
from decimal import Decimal

from hean_engine.model.errors import HeanError
from hean_engine.model.money import HUNDRED, ZERO, price_to_decimal
from hean_engine.model.orders import Fill, Side
from hean_engine.model.timefmt import DAY_MS

_INF = math.inf
_BUY = Side.BUY  # a global load, not an enum class attribute lookup
_NEXT = math.nextafter
# The margin by which the steady price interval is shrunk: relative to the
# magnitudes involved, and absolute (values below ~1e-308 underflow). The
# rounding errors it covers are a few units of 2**-53 (about 1e-16) relative:
# see `Ledger._refresh_bounds`.
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
        self.unvalued_mark: float | None = None  # (the kernel sets it too, inlining mark)
        self.precheck = True
        # (max daily loss, 1 - max drawdown %/100) while the risk engine can still
        # halt on equity; None when it cannot (no risk engine, or already halted).
        self.halt_limits: tuple[Decimal, Decimal] | None = None
        self._halt_limits_f: tuple[float, float] | None = None
        # Prices strictly between these cannot change an outcome until the books or
        # the thresholds change; flat, every price is such a price.
        self.steady_low = -_INF
        self.steady_high = _INF
        self.peak_equity: Decimal = self.quote
        self._max_drawdown: Decimal = ZERO
        # The lowest price marked without an exact valuation since the last one
        # (the kernel updates it too, inlining mark); its drawdown is settled later.
        self.low_mark = _INF
        self._max_drawdown_pct: Decimal | None = ZERO
        self._max_drawdown_peak: Decimal = self.quote
        self.day_start_equity: Decimal = self.quote
        self.first_ts: int | None = None  # time of the first valuation
        # Equity must be recomputed at or after this time even when flat: the
        # first valuation, and the start of each UTC day (daily-loss reference).
        self.revalue_due_ms = 0
        # The nearest floats of the peak and of the day's reference, for the bounds;
        # recomputed when the Decimal they were taken from is replaced.
        self._peak_f_of: Decimal | None = None
        self._peak_f = 0.0
        self._day_start_f_of: Decimal | None = None
        self._day_start_f = 0.0
        self._refresh_bounds()

    # -- money movements -------------------------------------------------
    def apply_fill(self, fill: Fill) -> None:
        """Book a fill; the fee is taken from the currency it was charged in."""
        price = fill.price
        quantity = fill.quantity
        ts = fill.ts
        if self.starting_equity is None:
            # A fill before any valuation: the starting equity is the books before it.
            self._revalue(price, ts)
        else:
            if self.low_mark != _INF:
                self._settle_low_mark()  # with the books before the fill
            if self.unvalued_mark is not None and ts >= self.revalue_due_ms:
                # A new day's reference is the equity before the fill, at the latest mark.
                self._value_unvalued_mark()
        notional = price * quantity
        fee = fill.fee
        asset = fill.fee_asset
        fee_quote = fee if not asset or asset == self.quote_ccy else ZERO
        fee_base = fee if asset == self.base else ZERO
        if fill.side is _BUY:
            new_quote = self.quote - notional - fee_quote
            if new_quote < 0:
                raise LedgerError(f"fill {fill.order_id} would make {self.quote_ccy} negative")
            self.quote = new_quote
            self.position += quantity - fee_base
        else:
            if quantity + fee_base > self.position:
                raise LedgerError(f"fill {fill.order_id} would make {self.base} negative")
            self.position -= quantity + fee_base
            self.quote += notional - fee_quote
        if fee_quote or fee_base:
            self.fees += fee_quote + fee_base * price
        elif fee:
            # A fee in a third currency (BNB): carried in its balance, not valued.
            self.other[asset] = self.other.get(asset, ZERO) - fee
        self.fill_count += 1
        self._revalue(price, ts)

    def set_balances(self, balances: dict[str, Decimal]) -> None:
        """Take the account's balances as the books (live start-up: the exchange's are true)."""
        self.other = {k: v for k, v in balances.items() if k not in (self.base, self.quote_ccy)}
        last_price = self.last_price
        self._settle_low_mark()
        self.quote = balances.get(self.quote_ccy, ZERO)
        self.position = balances.get(self.base, ZERO)
        if last_price is not None:
            self._equity = self.quote + self.position * last_price
            self._last_price = last_price
            self.unvalued_mark = None
        self._refresh_bounds()

    def set_halt_limits(self, limits: tuple[Decimal, Decimal] | None) -> None:
        """The risk engine's halt levels: (max daily loss, drawdown keep factor), or None."""
        self.halt_limits = limits
        self._halt_limits_f = None if limits is None else (float(limits[0]), float(limits[1]))
        self._refresh_bounds()

    # -- valuation ---------------------------------------------------------
    def mark(self, price: float, ts: int) -> bool:
        """Take a market price; value exactly only where it can change an outcome.

        True when the exact valuation ran (the risk engine must then look at
        equity). Within the same UTC day, a price strictly inside the steady
        interval (flat: any price) changes nothing; in a position, the exact
        equity at it is computed only if `equity` or `last_price` is read. The
        kernel inlines the same test on its hot path.
        """
        if self.steady_low < price < self.steady_high and ts < self.revalue_due_ms:
            self.mark_price = self.unvalued_mark = price
            if price < self.low_mark:
                self.low_mark = price
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
        if side is _BUY:
            return price * quantity + fee <= self.quote
        return quantity <= self.position

    def _revalue(self, price: Decimal, ts: int) -> None:
        if self.low_mark != _INF:
            self._settle_low_mark()
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
        self.unvalued_mark = None
        peak = self.peak_equity
        if equity > peak:
            self.peak_equity = equity
        elif equity < peak:
            drawdown = peak - equity
            if drawdown > self._max_drawdown:
                self._max_drawdown = drawdown
                self._max_drawdown_peak = peak
                self._max_drawdown_pct = None  # computed when read
        self._refresh_bounds()

    def _settle_low_mark(self) -> None:
        """The drawdown at the lowest unvalued mark (equity rises with the price)."""
        price = self.low_mark
        self.low_mark = _INF
        if price == _INF or not self.position:
            return
        drawdown = self.peak_equity - (self.quote + self.position * price_to_decimal(price))
        if drawdown > self._max_drawdown:
            self._max_drawdown = drawdown
            self._max_drawdown_peak = self.peak_equity
            self._max_drawdown_pct = None

    def set_precheck(self, enabled: bool) -> None:
        """False: value exactly on every mark in a position (the reference behaviour)."""
        self.precheck = enabled
        self._refresh_bounds()

    def _refresh_bounds(self) -> None:
        """The steady price interval of `mark`, after the books or thresholds changed.

        With Q the quote balance and P > 0 the position, the exact equity at a
        price p (decimal D) is E = Q + P x D. An exact valuation can change an
        outcome only if E >= high (the peak: a new peak) or E <= low, the higher
        of the halt levels (a daily-loss halt at day start - limit; a drawdown
        halt at peak x keep); with no halt levels, low is minus infinity. (A new
        maximum drawdown inside the interval is found from `low_mark`.) So D
        strictly inside ((low - Q)/P, (high - Q)/P) changes nothing.

        The bounds are computed in floats from the decimals' nearest floats:
        each conversion and operation rounds once (relative error 2**-53), so a
        computed bound is off by at most a few times 2**-53 x S / P, S the sum
        of the magnitudes of Q and of low's and high's terms (which also bounds
        |low - Q| and |high - Q|); and a market price p is within half an ulp of
        its decimal D. Each bound is moved inward by 1e-12 x S / P (plus 1e-290
        for underflow): thousands of times that error. Overflow gives
        infinities or NaN, which make the interval empty or the comparisons
        false, so the exact path runs.
        """
        position = self.position
        if not position:
            self.steady_low, self.steady_high = -_INF, _INF  # flat: equity cannot change
            return
        self.steady_low, self.steady_high = _INF, -_INF  # empty: always exact
        position_f = float(position)
        if not self.precheck or not position_f > 0.0:
            return
        quote_f = float(self.quote)
        peak = self.peak_equity
        if peak is not self._peak_f_of:
            self._peak_f_of = peak
            self._peak_f = float(peak)
        peak_f = self._peak_f
        # The magnitudes involved: |low - Q| and |high - Q| are at most this, and
        # so is every term (0 <= keep <= 1).
        scale = abs(quote_f) + abs(peak_f)
        price_low = -_INF
        limits = self._halt_limits_f
        if limits is not None:
            max_daily_loss_f, keep_f = limits
            day_start = self.day_start_equity
            if day_start is not self._day_start_f_of:
                self._day_start_f_of = day_start
                self._day_start_f = float(day_start)
            day_start_f = self._day_start_f
            low_f = max(day_start_f - max_daily_loss_f, peak_f * keep_f)
            scale += abs(day_start_f) + abs(max_daily_loss_f)
            price_low = (low_f - quote_f) / position_f
        margin = scale / position_f * _REL_MARGIN + _ABS_MARGIN
        self.steady_low = price_low + margin
        self.steady_high = (peak_f - quote_f) / position_f - margin

    # -- views -------------------------------------------------------------
    @property
    def max_drawdown(self) -> Decimal:
        """The largest peak-to-trough drop of equity so far."""
        if self.low_mark != _INF:
            self._settle_low_mark()
        return self._max_drawdown

    @property
    def max_drawdown_pct(self) -> Decimal:
        """The largest drawdown, in percent of the peak it fell from."""
        if self.low_mark != _INF:
            self._settle_low_mark()
        pct = self._max_drawdown_pct
        if pct is None:
            pct = self._max_drawdown_pct = self.max_drawdown * HUNDRED / self._max_drawdown_peak
        return pct

    @property
    def equity(self) -> Decimal:
        """Quote + position x the latest marked price, exact."""
        if self.unvalued_mark is not None:
            self._value_unvalued_mark()
        return self._equity

    @property
    def last_price(self) -> Decimal | None:
        """The latest price money was valued at (the latest mark while in a position)."""
        if self.unvalued_mark is not None:
            self._value_unvalued_mark()
        return self._last_price

    def _value_unvalued_mark(self) -> None:
        price = self.unvalued_mark
        assert price is not None
        self.unvalued_mark = None
        if not self.position:
            return  # flat: equity and the last valued price did not change
        self._last_price = last = price_to_decimal(price)
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
