"""The equity series, rebuilt after a replay from its marks and its fills.

A mark is a market price the replay valued the books at: a candle's close (or
a trade's price) at its time. The books move only at fills, so the equity at
every mark follows from the fills and the marks alone; nothing needs to be
recorded inside the kernel. At each mark, as in the kernel, the fills of that
event are booked first (the simulated venue fills at the candle's open) and
the books are then valued at the mark: equity = quote + position x price,
exact (`price_to_decimal`, the ledger's own conversion).

One pass over the marks keeps only what the statistics need (the exact
drawdown figures, each UTC day's last equity, the number of marks with a
position), plus each mark's equity as a float for the charts. While flat the
equity is the quote balance: the pass jumps from the first flat mark to the
next fill, finding the day boundaries in between by bisection.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

from hean_engine.model.errors import HeanError
from hean_engine.model.money import ZERO
from hean_engine.model.orders import Fill, Side
from hean_engine.model.timefmt import DAY_MS
from hean_engine.report.trades import Books

# The significant digits of every ratio in a report (a drawdown here, returns and
# ratios in stats.py): the money is exact, its quotients are rounded to these.
RATIO_DIGITS = 34
RATIO_CONTEXT = Context(prec=RATIO_DIGITS, rounding=ROUND_HALF_EVEN)


class ReportError(HeanError):
    """The inputs cannot make a report (no marks, or fills outside the marks' time)."""


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The deepest drop below a running peak, and the longest time spent below one."""

    max_pct: Decimal  # (peak - trough) / peak x 100 of the deepest one; 0 without any
    peak_ts: int | None  # the deepest one's peak and trough times
    trough_ts: int | None
    longest_ms: int  # from the last mark at a peak to the first back at or above it (or the end)
    longest_start_ts: int | None


@dataclass(frozen=True, slots=True)
class EquityPath:
    first_ts: int
    last_ts: int
    starting_equity: Decimal  # the books at the first mark, before any fill
    final_equity: Decimal
    peak_equity: Decimal
    drawdown: Drawdown
    marks: int
    exposed_marks: int  # marks with a position before or after their fills
    day_closes: list[tuple[int, Decimal]]  # (UTC day number, equity at its last mark)
    ts: Sequence[int]
    prices: Sequence[float]
    equity: array[float]  # each mark's equity, as a float, for the charts only


def equity_path(
    ts: Sequence[int], prices: Sequence[float], fills: Sequence[Fill], books: Books
) -> EquityPath:
    """Walk the marks (time order) booking `fills` (time order) as their times come."""
    count = len(ts)
    if count == 0 or count != len(prices):
        raise ReportError("no market events to report on")
    if fills and fills[-1].ts > ts[-1]:
        raise ReportError("a fill is later than the last market event")
    quote, position = books.quote, books.position
    base, quote_ccy = books.base, books.quote_ccy
    quote_f, position_f = float(quote), float(position)
    starting = quote + position * Decimal(repr(prices[0]))
    peak = trough = starting
    peak_ts = ts[0]
    in_drawdown = False
    deepest = ZERO
    deepest_at: tuple[int, int] | None = None
    longest, longest_start = 0, None
    exposed = 0
    day_closes: list[tuple[int, Decimal]] = []
    day = ts[0] // DAY_MS
    equity_f: array[float] = array("d", bytes(8 * count))
    fill_index, fill_count = 0, len(fills)
    next_fill = fills[0].ts if fills else ts[-1] + 1
    equity = last_equity = starting
    trough_ts = peak_ts
    i = 0
    while i < count:
        t = ts[i]
        held = bool(position)
        if t >= next_fill:
            while fill_index < fill_count and fills[fill_index].ts <= t:
                quote, position = _book(fills[fill_index], quote, position, base, quote_ccy)
                fill_index += 1
            next_fill = fills[fill_index].ts if fill_index < fill_count else ts[-1] + 1
            quote_f, position_f = float(quote), float(position)
        price = prices[i]
        if position:
            equity = quote + position * Decimal(repr(price))
            equity_f[i] = quote_f + position_f * price
            exposed += 1
        else:
            equity = quote
            equity_f[i] = quote_f
            exposed += held
        if t // DAY_MS != day:
            day_closes.append((day, last_equity))
            day = t // DAY_MS
        last_equity = equity
        if equity >= peak:
            if in_drawdown:
                in_drawdown = False
                depth = RATIO_CONTEXT.divide(peak - trough, peak) if peak > 0 else ZERO
                if depth > deepest:
                    deepest, deepest_at = depth, (peak_ts, trough_ts)
                if t - peak_ts > longest:
                    longest, longest_start = t - peak_ts, peak_ts
            peak, peak_ts = equity, t
        elif not in_drawdown:
            in_drawdown = True
            trough, trough_ts = equity, t
        elif equity < trough:
            trough, trough_ts = equity, t
        i += 1
        if not position and i < count and ts[i] < next_fill:
            # Flat until the next fill: every mark up to it values the books at `quote`,
            # so only the days they close and the peak's time can change.
            j = bisect_left(ts, next_fill, i)
            equity_f[i:j] = array("d", [quote_f]) * (j - i)
            k = i
            while (k := bisect_left(ts, (day + 1) * DAY_MS, k, j)) < j:
                day_closes.append((day, equity))
                day = ts[k] // DAY_MS
            if equity >= peak:
                peak_ts = ts[j - 1]
            i = j
    day_closes.append((day, equity))
    if in_drawdown:
        depth = RATIO_CONTEXT.divide(peak - trough, peak) if peak > 0 else ZERO
        if depth > deepest:
            deepest, deepest_at = depth, (peak_ts, trough_ts)
        if ts[-1] - peak_ts > longest:
            longest, longest_start = ts[-1] - peak_ts, peak_ts
    return EquityPath(
        first_ts=ts[0],
        last_ts=ts[-1],
        starting_equity=starting,
        final_equity=equity,
        peak_equity=peak,
        drawdown=Drawdown(
            max_pct=deepest * 100,  # exact: a 34-digit quotient times 100
            peak_ts=deepest_at[0] if deepest_at else None,
            trough_ts=deepest_at[1] if deepest_at else None,
            longest_ms=longest,
            longest_start_ts=longest_start,
        ),
        marks=count,
        exposed_marks=exposed,
        day_closes=day_closes,
        ts=ts,
        prices=prices,
        equity=equity_f,
    )


def _book(
    fill: Fill, quote: Decimal, position: Decimal, base: str, quote_ccy: str
) -> tuple[Decimal, Decimal]:
    """The ledger's booking rule (portfolio/ledger.py `apply_fill`) on two balances."""
    asset = fill.fee_asset
    fee_quote = fill.fee if not asset or asset == quote_ccy else ZERO
    fee_base = fill.fee if asset == base else ZERO
    notional = fill.price * fill.quantity
    if fill.side is Side.BUY:
        return quote - notional - fee_quote, position + fill.quantity - fee_base
    return quote + notional - fee_quote, position - fill.quantity - fee_base
