"""The equity series, rebuilt after a replay from its marks and its fills.

A mark is a market price the replay valued the books at: a candle's close (or
a trade's price) at its time. The books move only at fills, so the equity at
every mark follows from the fills and the marks alone; nothing needs to be
recorded inside the kernel. At each mark, as in the kernel, the fills of that
event are booked first (the simulated venue fills at the candle's open) and
the books are then valued at the mark: equity = quote + position x price,
exact (`price_to_decimal`, the ledger's own conversion).

The marks between two fills form a stretch with constant books: the books
are computed exactly once per fill (about 35,000 on the shared BTC/USD file),
never per mark. Flat, a stretch's equity is its quote balance Q; in a (long)
position it is Q + P x D(p), and D (the shortest decimal of a float) is
strictly increasing in the float p: within a stretch, equities compare as
their prices do.

Everything else is decided on whole arrays (numpy) and computed exactly only
where an exact value is needed:
- each mark's equity as a float, q + p x price (also the charts' series), and
  a margin of 1e-9 x (|q| + |p x price|) around it. The float's error is at
  most about 6 x 2^-53 of that (q and p are correctly rounded, the shortest
  decimal of a price is within half an ulp of it, two roundings), so the
  exact equity is inside [float - margin, float + margin]: a margin ten
  million times the error. Balances beyond floats (an infinite or NaN bound)
  make every mark a candidate below, so everything is then exact.
- a UTC day's last mark: valued exactly (about 730 marks), for the daily and
  monthly returns and the final equity;
- the running peak: a mark whose upper bound is below the highest lower bound
  before it is below the peak for sure and cannot raise it. The other marks
  (the candidates: on the shared file, those of the first days) are walked in
  order against the exact running peak, by price within the stretch where
  the peak was reached, exactly across stretches. That gives the exact set of
  marks at the running peak, hence every drawdown (the marks between two of
  them, or after the last), and its duration from the times alone;
- the deepest drawdown: each drawdown's depth (P - T) / P is bounded in
  floats from the bounds of its peak and of its lowest mark; only those whose
  upper bound reaches the best lower bound (less 1e-9 of it) are computed
  exactly (their trough among the marks whose lower bound is at most the
  drawdown's lowest upper bound, one per stretch), and the first deepest wins.

A float decides only where to compute exactly, never a value.
tests/engine/report/test_equity_fast_path.py checks every figure, digits included,
against an always-exact mark-by-mark walk on random replays built to make the
bounds ambiguous.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

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
    ts: npt.NDArray[np.int64]
    prices: npt.NDArray[np.float64]
    equity: npt.NDArray[np.float64]  # each mark's equity, as a float, for the charts only


def equity_path(
    ts: Sequence[int] | npt.NDArray[np.int64],
    prices: Sequence[float] | npt.NDArray[np.float64],
    fills: Sequence[Fill],
    books: Books,
) -> EquityPath:
    """The equity path of marks `ts`/`prices` (time order) and `fills` (time order)."""
    times = np.asarray(ts, dtype=np.int64)
    values = np.asarray(prices, dtype=np.float64)
    count = len(times)
    if count == 0 or count != len(values):
        raise ReportError("no market events to report on")
    if fills and fills[-1].ts > int(times[-1]):
        raise ReportError("a fill is later than the last market event")
    first_price = float(values[0])
    starting = books.quote + books.position * _dec(first_price)
    starts, stretch_books = _stretches(times, fills, books)
    if min(position for _, position in stretch_books) < 0:
        raise ReportError("a negative position: spot books are long or flat")
    first_marks = np.array(starts, dtype=np.int64)
    lengths = np.append(first_marks[1:], count) - first_marks
    held = np.array([bool(position) for _, position in stretch_books], dtype=bool)
    # A few whole-length arrays, reused in place: each new one costs its page faults.
    quote_f = np.repeat(np.array([float(q) for q, _ in stretch_books]), lengths)
    margin = np.repeat(np.array([float(p) if p else 0.0 for _, p in stretch_books]), lengths)
    with np.errstate(all="ignore"):  # beyond floats: see below
        margin *= values  # position x price
        equity_f = quote_f + margin
        np.abs(margin, out=margin)
        margin += np.abs(quote_f, out=quote_f)
        spare = quote_f  # its memory becomes the lower bounds
        del quote_f
        margin *= 1e-9
        margin += 1e-300
    before = np.concatenate(([bool(books.position)], held[:-1]))
    exposed = int(lengths[held].sum()) + int((before & ~held).sum())
    path = _Path(times, values, first_marks, stretch_books, held)
    start_f = float(starting)
    start_margin = (
        1e-9 * (abs(float(books.quote)) + abs(float(books.position) * first_price)) + 1e-300
    )
    finite = math.isfinite(start_f) and math.isfinite(start_margin)
    if finite and np.isfinite(margin).all() and np.isfinite(equity_f).all():
        low = np.subtract(equity_f, margin, out=spare)
        high = np.add(equity_f, margin, out=margin)
        start_low, start_high = start_f - start_margin, start_f + start_margin
    else:  # beyond floats: every mark is a candidate, everything is exact
        low, high = np.full(count, -np.inf), np.full(count, np.inf)
        start_low, start_high = -math.inf, math.inf
    peaks, highest = _peaks(path, starting, low, high, start_low)
    drawdown = _drawdown(path, starting, peaks, low, high, start_low, start_high)
    # The last mark of each UTC day with marks: the one before each day's first mark.
    first_day, last_day = int(times[0]) // DAY_MS, int(times[-1]) // DAY_MS
    day_starts = np.arange(first_day + 1, last_day + 1, dtype=np.int64) * DAY_MS
    # Sorted, so duplicates are neighbours (np.unique would import numpy.ma: 5 ms).
    firsts = np.searchsorted(times, day_starts, side="left")
    new_day = np.ones(len(firsts), dtype=bool)
    new_day[1:] = firsts[1:] != firsts[:-1]
    firsts = firsts[new_day]
    last_of_day = [*(firsts - 1).tolist(), count - 1]
    day_closes = [(int(times[k]) // DAY_MS, path.exact(k)) for k in last_of_day]
    return EquityPath(
        first_ts=int(times[0]),
        last_ts=int(times[-1]),
        starting_equity=starting,
        final_equity=day_closes[-1][1],
        peak_equity=highest,
        drawdown=drawdown,
        marks=count,
        exposed_marks=exposed,
        day_closes=day_closes,
        ts=times,
        prices=values,
        equity=equity_f,
    )


def _dec(price: float) -> Decimal:
    return Decimal(repr(price))  # money.price_to_decimal


def _value(books: tuple[Decimal, Decimal], price: float) -> Decimal:
    quote, position = books
    return quote + position * _dec(price) if position else quote


class _Path:
    """The marks and the books of each stretch, and a mark's exact equity."""

    def __init__(
        self,
        times: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        starts: npt.NDArray[np.int64],
        books: list[tuple[Decimal, Decimal]],
        held: npt.NDArray[np.bool_],
    ) -> None:
        self.times, self.values, self.starts = times, values, starts
        self.books, self.held = books, held

    def stretch_of(self, index: Any) -> Any:
        """The stretch of each mark of `index` (an array of mark indices)."""
        return np.searchsorted(self.starts, index, side="right") - 1

    def exact(self, index: int) -> Decimal:
        stretch = int(self.starts.searchsorted(index, side="right")) - 1
        return _value(self.books[stretch], float(self.values[index]))


def _peaks(
    path: _Path,
    starting: Decimal,
    low: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    start_low: float,
) -> tuple[list[int], Decimal]:
    """The marks at or above the running peak (-1: the start), exact, and the highest equity.

    A mark whose equity's upper bound is below the highest lower bound before it
    is below the running peak for sure and cannot raise it; the others (the
    candidates) are walked in order against the exact running peak. Within a
    stretch the equity rises with the price (or is constant, flat), so a
    candidate in the stretch where the peak was reached is compared by its
    price; in another stretch its exact equity is computed.
    """
    count = len(low)
    before = np.maximum.accumulate(low)  # at [i]: the highest lower bound up to mark i
    np.maximum(before, start_low, out=before)
    maybe = np.empty(count, dtype=bool)
    maybe[0] = high[0] >= start_low
    np.greater_equal(high[1:], before[:-1], out=maybe[1:])
    del before
    candidates = np.flatnonzero(maybe)
    stretches = path.stretch_of(candidates).tolist()
    prices = path.values[candidates].tolist()
    held = path.held.tolist()
    books = path.books
    peak: Decimal | None = starting
    peak_stretch, peak_price = -1, 0.0
    at_peak = [-1]
    for index, stretch, price in zip(candidates.tolist(), stretches, prices, strict=True):
        if stretch == peak_stretch:
            if not held[stretch]:
                at_peak.append(index)  # flat: the same equity
            elif price >= peak_price:
                at_peak.append(index)
                if price > peak_price:
                    peak, peak_price = None, price  # valued when next needed
            continue
        equity = _value(books[stretch], price)
        if peak is None:
            peak = _value(books[peak_stretch], peak_price)
        if equity >= peak:
            at_peak.append(index)
            if equity > peak:  # on a tie the first (as max) keeps its digits
                peak = equity
            peak_stretch, peak_price = stretch, price
    if peak is None:
        peak = _value(books[peak_stretch], peak_price)
    return at_peak, peak


def _drawdown(
    path: _Path,
    starting: Decimal,
    peaks: list[int],
    low: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    start_low: float,
    start_high: float,
) -> Drawdown:
    """The deepest drawdown and the longest one, from the marks at the running peak.

    A drawdown runs from a mark at the peak over the marks below it (to the
    next mark at the peak, or the end). Its duration is exact from the times;
    its depth is bounded in floats from the marks' bounds, and only the
    drawdowns that may be the deepest (upper bound within 1e-9 of the best
    lower bound, relative: far more than the bounds' own float error, so a
    drawdown left out is deeper by less than its 34-digit rounding can hide)
    have their trough and depth computed exactly.
    """
    times, count = path.times, len(path.times)
    marks = np.array(peaks, dtype=np.int64)
    nxt = np.append(marks[1:], count)
    gaps = np.flatnonzero(nxt - marks > 1)
    if not len(gaps):
        return Drawdown(ZERO, None, None, 0, None)
    peak_at, end_at = marks[gaps], nxt[gaps]  # the peak, and the recovery (count: none)
    peak_ts = times[np.maximum(peak_at, 0)]
    end_ts = times[np.minimum(end_at, count - 1)]
    durations = end_ts - peak_ts
    longest = int(np.argmax(durations))
    longest_ms = int(durations[longest])
    longest_start = int(peak_ts[longest]) if longest_ms > 0 else None
    # Depth bounds: (P - T) / P with P the peak, T the lowest equity below it.
    trough_low, trough_high = _lowest(low, peak_at + 1, end_at), _lowest(high, peak_at + 1, end_at)
    first = peak_at < 0
    peak_low = np.where(first, start_low, low[np.maximum(peak_at, 0)])
    peak_high = np.where(first, start_high, high[np.maximum(peak_at, 0)])
    with np.errstate(all="ignore"):
        positive = peak_low > 0
        upper = np.where(positive, (peak_high - trough_low) / peak_low, np.inf)
        lower = np.where(positive, np.maximum((peak_low - trough_high) / peak_high, 0.0), 0.0)
        upper = np.where(np.isnan(upper), np.inf, upper)
        lower = np.where(np.isnan(lower), 0.0, lower)
    best = float(lower.max())
    deepest, deepest_at = ZERO, None
    for k in np.flatnonzero(upper * (1 + 1e-12) >= best * (1 - 1e-9)).tolist():
        p, r = int(peak_at[k]), int(end_at[k])
        peak = starting if p < 0 else path.exact(p)
        trough, trough_at = _trough(path, p + 1, r, low, float(trough_high[k]))
        depth = RATIO_CONTEXT.divide(peak - trough, peak) if peak > 0 else ZERO
        if depth > deepest:
            deepest, deepest_at = depth, (int(peak_ts[k]), int(times[trough_at]))
    return Drawdown(
        max_pct=deepest * 100,  # exact: a 34-digit quotient times 100
        peak_ts=deepest_at[0] if deepest_at else None,
        trough_ts=deepest_at[1] if deepest_at else None,
        longest_ms=longest_ms,
        longest_start_ts=longest_start,
    )


def _lowest(
    values: npt.NDArray[np.float64], a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """The minimum of values[a[k]:b[k]] for each k (a[k] < b[k], in order, not overlapping)."""
    count = len(values)
    inside = b < count  # reduceat's indices must be inside the array: the last may end it
    out = np.empty(len(a), dtype=np.float64)
    if inside.any():
        pairs = np.ravel(np.column_stack((a[inside], b[inside])))
        out[inside] = np.minimum.reduceat(values, pairs)[::2]
    for k in np.flatnonzero(~inside).tolist():
        out[k] = values[int(a[k]) :].min()
    return out


def _trough(
    path: _Path, a: int, b: int, low: npt.NDArray[np.float64], ceiling: float
) -> tuple[Decimal, int]:
    """The lowest exact equity of marks a..b-1, and its first mark.

    Only marks whose lower bound is at most `ceiling` (the lowest upper bound)
    can be the lowest; of those, per stretch, only the first at the lowest
    price (the equity rises with the price; flat, the first mark).
    """
    found = a + np.flatnonzero(low[a:b] <= ceiling)
    stretch = path.stretch_of(found)
    key = np.where(path.held[stretch], path.values[found], 0.0)
    order = np.lexsort((found, key, stretch))
    stretch = stretch[order]
    keep = np.concatenate(([True], stretch[1:] != stretch[:-1]))
    best: tuple[Decimal, int] | None = None
    for index in np.sort(found[order][keep]).tolist():
        equity = path.exact(index)
        if best is None or equity < best[0]:
            best = (equity, index)
    assert best is not None
    return best


def _stretches(
    times: npt.NDArray[np.int64], fills: Sequence[Fill], books: Books
) -> tuple[list[int], list[tuple[Decimal, Decimal]]]:
    """The first mark of each stretch, and the books (quote, position) valued at its marks.

    A fill is booked at the first mark at or after its time (the event it happened in).
    """
    quote, position = books.quote, books.position
    if not fills:
        return [0], [(quote, position)]
    stamps = np.fromiter((f.ts for f in fills), dtype=np.int64, count=len(fills))
    at = np.searchsorted(times, stamps, side="left").tolist()
    starts: list[int] = []
    out: list[tuple[Decimal, Decimal]] = []
    if at[0] != 0:
        starts.append(0)
        out.append((quote, position))
    base, quote_ccy, buy = books.base, books.quote_ccy, Side.BUY
    for fill, here, after in zip(fills, at, [*at[1:], -1], strict=True):
        # The ledger's booking rule (portfolio/ledger.py `apply_fill`), as `_book`.
        asset = fill.fee_asset
        fee_quote = fill.fee if not asset or asset == quote_ccy else ZERO
        fee_base = fill.fee if asset == base else ZERO
        notional = fill.price * fill.quantity
        if fill.side is buy:
            quote, position = quote - notional - fee_quote, position + fill.quantity - fee_base
        else:
            quote, position = quote + notional - fee_quote, position - fill.quantity - fee_base
        if after != here:
            starts.append(here)
            out.append((quote, position))
    return starts, out


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
