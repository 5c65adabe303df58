"""The equity series, rebuilt after a replay from its marks and its fills.

A mark is a market price the replay valued the books at: a candle's close (or
a trade's price) at its time. The books move only at fills, so the equity at
every mark follows from the fills and the marks alone; nothing needs to be
recorded inside the kernel. At each mark, as in the kernel, the fills of that
event are booked first (the simulated venue fills at the candle's open) and
the books are then valued at the mark: equity = quote + position x price,
exact (`price_to_decimal`, the ledger's own conversion).

The marks between two fills form a stretch with constant books, and the
pass works stretch by stretch on whole arrays (numpy), computing exactly only
where an exact value is needed. Flat, the equity is the quote balance. In a
(long) position it is Q + P x D(p), and D (the shortest decimal of a float) is
strictly increasing in the float p: within a stretch, equities compare as
their prices do. So the running peak, the drawdowns and their durations
follow from the prices alone (maximum.accumulate); equities are computed
exactly only for a day's last mark, for the first mark that reaches the peak
carried in from an earlier stretch (found among float candidates, then
checked exactly), for a stretch's troughs and peaks that are carried on, and
for the drawdowns whose float depth is within 1e-9 of the deepest (of which
the exact deepest is taken). Each mark's equity is also kept as a float, for
the charts. tests/engine/report/test_report_stats.py checks the result against a
plain mark-by-mark exact walk.
"""

from __future__ import annotations

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
    ts: Sequence[int]
    prices: Sequence[float]
    equity: npt.NDArray[np.float64]  # each mark's equity, as a float, for the charts only


def equity_path(
    ts: Sequence[int], prices: Sequence[float], fills: Sequence[Fill], books: Books
) -> EquityPath:
    """The equity path of marks `ts`/`prices` (time order) and `fills` (time order)."""
    count = len(ts)
    if count == 0 or count != len(prices):
        raise ReportError("no market events to report on")
    if fills and fills[-1].ts > ts[-1]:
        raise ReportError("a fill is later than the last market event")
    times = np.asarray(ts, dtype=np.int64)
    values = np.asarray(prices, dtype=np.float64)
    starting = books.quote + books.position * _dec(prices[0])
    starts, stretch_books = _stretches(times, fills, books)
    ends = [*starts[1:], count]
    state = _Peaks(starting, int(times[0]))
    equity_f = np.empty(count, dtype=np.float64)
    exposed = 0
    held = bool(books.position)
    for (a, b), (quote, position) in zip(
        zip(starts, ends, strict=True), stretch_books, strict=True
    ):
        if position > 0:
            equity_f[a:b] = float(quote) + float(position) * values[a:b]
            exposed += b - a
            state.rising(quote, position, times, values, a, b)
        elif position == 0:
            equity_f[a:b] = float(quote)
            exposed += held
            state.flat(quote, times, a, b)
        else:
            raise ReportError("a negative position: spot books are long or flat")
        held = bool(position)
    days = times // DAY_MS
    last_of_day = [*np.flatnonzero(np.diff(days)).tolist(), count - 1]
    stretch_of = np.searchsorted(np.asarray(starts), last_of_day, side="right") - 1
    day_closes = [
        (int(days[k]), _value(stretch_books[int(s)], prices[k]))
        for k, s in zip(last_of_day, stretch_of.tolist(), strict=True)
    ]
    return EquityPath(
        first_ts=int(times[0]),
        last_ts=int(times[-1]),
        starting_equity=starting,
        final_equity=day_closes[-1][1],
        peak_equity=state.highest,
        drawdown=state.result(int(times[-1])),
        marks=count,
        exposed_marks=exposed,
        day_closes=day_closes,
        ts=ts,
        prices=prices,
        equity=equity_f,
    )


def _dec(price: float) -> Decimal:
    return Decimal(repr(price))  # money.price_to_decimal


def _value(books: tuple[Decimal, Decimal], price: float) -> Decimal:
    quote, position = books
    return quote + position * _dec(price) if position else quote


def _stretches(
    times: npt.NDArray[np.int64], fills: Sequence[Fill], books: Books
) -> tuple[list[int], list[tuple[Decimal, Decimal]]]:
    """The first mark of each stretch, and the books (quote, position) valued at its marks.

    A fill is booked at the first mark at or after its time (the event it happened in).
    """
    at = np.searchsorted(times, [f.ts for f in fills], side="left").tolist() if fills else []
    starts = sorted({0, *at})
    quote, position = books.quote, books.position
    out: list[tuple[Decimal, Decimal]] = []
    index = 0
    for start in starts:
        while index < len(fills) and at[index] <= start:
            quote, position = _book(fills[index], quote, position, books.base, books.quote_ccy)
            index += 1
        out.append((quote, position))
    return starts, out


class _Peaks:
    """The running peak and the drawdowns below it, exact, fed one stretch at a time."""

    def __init__(self, equity: Decimal, ts: int) -> None:
        self.peak, self.peak_ts = equity, ts
        self.highest = equity
        self.below = False
        self.trough, self.trough_ts = equity, ts
        self.deepest = ZERO
        self.deepest_at: tuple[int, int] | None = None
        self.longest, self.longest_start = 0, -1

    def _at_peak(self, equity: Decimal, ts: int, last_ts: int) -> None:
        """Marks from `ts` to `last_ts` at or above the running peak (`equity`, the first's)."""
        if self.below:
            self._end_drawdown(ts)
        self.peak, self.peak_ts = equity, last_ts
        if equity > self.highest:
            self.highest = equity

    def _end_drawdown(self, ts: int) -> None:
        self.below = False
        self._depth(self.peak, self.trough, self.peak_ts, self.trough_ts)
        if ts - self.peak_ts > self.longest:
            self.longest, self.longest_start = ts - self.peak_ts, self.peak_ts

    def _depth(self, peak: Decimal, trough: Decimal, peak_ts: int, trough_ts: int) -> None:
        depth = RATIO_CONTEXT.divide(peak - trough, peak) if peak > 0 else ZERO
        if depth > self.deepest:
            self.deepest, self.deepest_at = depth, (peak_ts, trough_ts)

    def _under(self, equity: Decimal, ts: int) -> None:
        """The lowest of marks below the peak (the first mark at that low, `ts`)."""
        if not self.below:
            self.below = True
            self.trough, self.trough_ts = equity, ts
        elif equity < self.trough:
            self.trough, self.trough_ts = equity, ts

    def flat(self, quote: Decimal, times: npt.NDArray[np.int64], a: int, b: int) -> None:
        if quote >= self.peak:
            self._at_peak(quote, int(times[a]), int(times[b - 1]))
        else:
            self._under(quote, int(times[a]))

    def rising(
        self,
        quote: Decimal,
        position: Decimal,
        times: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        a: int,
        b: int,
    ) -> None:
        """A stretch in a long position: equity rises with the price (module docstring)."""
        seg = values[a:b]
        books = (quote, position)
        c = self._reaches_peak(quote, position, seg)
        upto = len(seg) if c is None else c
        if upto:
            low = int(np.argmin(seg[:upto]))
            self._under(_value(books, float(seg[low])), int(times[a + low]))
        if c is None:
            return
        sub = seg[c:]
        tops = np.maximum.accumulate(sub)
        at_peak = np.flatnonzero(sub >= tops)  # includes 0
        base = a + c
        self._at_peak(_value(books, float(sub[0])), int(times[base]), int(times[base]))
        gaps = np.flatnonzero(np.diff(at_peak) > 1)
        if len(gaps):
            self._closed_drawdowns(books, times, sub, base, at_peak[gaps], at_peak[gaps + 1])
        last = int(at_peak[-1])
        self.peak, self.peak_ts = _value(books, float(sub[last])), int(times[base + last])
        if self.peak > self.highest:
            self.highest = self.peak
        if last < len(sub) - 1:
            low = last + 1 + int(np.argmin(sub[last + 1 :]))
            self.below = True
            self.trough, self.trough_ts = _value(books, float(sub[low])), int(times[base + low])

    def _reaches_peak(
        self, quote: Decimal, position: Decimal, seg: npt.NDArray[np.float64]
    ) -> int | None:
        """The first index whose exact equity is at or above the peak, or None."""
        peak_f, quote_f, position_f = float(self.peak), float(quote), float(position)
        threshold = (peak_f - quote_f) / position_f
        margin = 1e-9 * (abs(peak_f) + abs(quote_f)) / position_f + 1e-300
        for index in np.flatnonzero(seg >= threshold - margin).tolist():
            if quote + position * _dec(float(seg[index])) >= self.peak:
                return int(index)
        return None

    def _closed_drawdowns(
        self,
        books: tuple[Decimal, Decimal],
        times: npt.NDArray[np.int64],
        sub: npt.NDArray[np.float64],
        base: int,
        peaks: npt.NDArray[Any],
        recoveries: npt.NDArray[Any],
    ) -> None:
        """Drawdowns inside a stretch: from a mark at the peak to the next one."""
        lows = np.minimum.reduceat(sub, np.ravel(np.column_stack((peaks + 1, recoveries))))[::2]
        quote_f, position_f = float(books[0]), float(books[1])
        top_f = quote_f + position_f * sub[peaks]
        depth_f = (top_f - (quote_f + position_f * lows)) / top_f
        best = float(depth_f.max())
        if best >= float(self.deepest) - 1e-9:
            for j in np.flatnonzero(depth_f >= best - 1e-9).tolist():
                p, r = int(peaks[j]), int(recoveries[j])
                low = p + 1 + int(np.argmin(sub[p + 1 : r]))
                self._depth(
                    _value(books, float(sub[p])),
                    _value(books, float(sub[low])),
                    int(times[base + p]),
                    int(times[base + low]),
                )
        durations = times[base + recoveries] - times[base + peaks]
        longest = int(np.argmax(durations))
        if int(durations[longest]) > self.longest:
            self.longest = int(durations[longest])
            self.longest_start = int(times[base + int(peaks[longest])])

    def result(self, last_ts: int) -> Drawdown:
        if self.below:
            self._end_drawdown(last_ts)
        return Drawdown(
            max_pct=self.deepest * 100,  # exact: a 34-digit quotient times 100
            peak_ts=self.deepest_at[0] if self.deepest_at else None,
            trough_ts=self.deepest_at[1] if self.deepest_at else None,
            longest_ms=self.longest,
            longest_start_ts=self.longest_start if self.longest_start >= 0 else None,
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
