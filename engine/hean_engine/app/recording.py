"""What a replay adds around the kernel when asked: a time window, and the marks of a report.

Neither is on a plain replay's path: without --from/--to and without
statistics the reader calls the kernel directly. With them, a `ReplayTap`
(data/files.py `Tap`) sits in the reader, and works on whole chunks of rows
(2,048) before their events are made: it finds the window's edges in the
chunk's times (a binary search on its numpy array), so rows before the window
never become events and the read ends at the first event past it, and it
records the times and prices (a candle's close, a trade's price) of the rows
it lets through as array slices (16 bytes per event, no Python object per
event), from which the report rebuilds the equity series after the replay
(report/equity.py). The kernel still gets its chunks as lists
(`TradingKernel.on_candles`). Only the line-by-line reader (a file the
columnar reader cannot vouch for) asks the tap event by event. A
`WarmupTap` reads the events before the window once more, beforehand, for
the strategy's warm-up.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from hean_engine.data.files import DELIVER, SKIP, STOP
from hean_engine.report.build import Marks


@dataclass(frozen=True, slots=True)
class ReplayWindow:
    """Events at or after `start_ms` and before `end_ms` (epoch ms; None: unbounded)."""

    start_ms: int | None = None
    end_ms: int | None = None


class MarkRecorder:
    """The marks of a replay, recorded a chunk at a time (see the module).

    Two growing flat arrays (`array.array` over-allocates by about an eighth),
    which the report reads through the buffer protocol without a copy: the
    marks cost their 16 bytes per event once, not again for a concatenation.
    """

    __slots__ = ("_prices", "_ts")

    def __init__(self) -> None:
        self._ts = array("q")
        self._prices = array("d")

    def add(self, ts: Any, prices: Any) -> None:
        """A chunk's times and prices (contiguous int64 and float64 numpy arrays)."""
        self._ts.frombytes(np.asarray(ts, dtype=np.int64).tobytes())
        self._prices.frombytes(np.asarray(prices, dtype=np.float64).tobytes())

    def add_one(self, ts: int, price: float) -> None:
        self._ts.append(ts)
        self._prices.append(price)

    def marks(self) -> Marks:
        """Every mark recorded, as two numpy arrays over the recorder's own."""
        return Marks(
            np.frombuffer(self._ts, dtype=np.int64), np.frombuffer(self._prices, dtype=np.float64)
        )


class ReplayTap:
    """The window and the recorder on the reader's chunks (data/files.py `Tap`).

    `first` and `last` are the times of the first and last events the reader
    delivered to the tap (for an empty window's error): the last is the one
    at which the read stopped, if it stopped at the window's end.
    """

    def __init__(self, window: ReplayWindow, marks: MarkRecorder | None) -> None:
        self.start = window.start_ms
        # An event at or after the end stops the read only once it is in the window's
        # start too (before the start every event is skipped, as one by one).
        end = window.end_ms
        self.end = end if end is None or self.start is None else max(end, self.start)
        self.marks = marks
        self.first: int | None = None
        self.last: int | None = None

    def block(self, ts: Any, prices: Any) -> tuple[int, int, bool]:
        count = len(ts)
        if self.first is None:
            self.first = int(ts[0])
        lo, hi, stop = 0, count, False
        if self.start is not None and int(ts[0]) < self.start:
            lo = int(ts.searchsorted(self.start))
        if self.end is not None and int(ts[-1]) >= self.end:
            hi, stop = int(ts.searchsorted(self.end)), True
            self.last = int(ts[hi])
        else:
            self.last = int(ts[-1])
        if self.marks is not None and hi > lo:
            self.marks.add(ts[lo:hi], prices[lo:hi])
        return lo, max(lo, hi), stop

    def one(self, ts: int, price: float) -> int:
        if self.first is None:
            self.first = ts
        self.last = ts
        if self.start is not None and ts < self.start:
            return SKIP
        if self.end is not None and ts >= self.end:
            return STOP
        if self.marks is not None:
            self.marks.add_one(ts, price)
        return DELIVER


class WarmupTap:
    """The last `count` events before `start_ms`, for the strategy's warm-up (data/files.py `Tap`).

    A running engine's strategy sees recent history before it trades (app/nodes.py:
    200 closed candles, or recent trades); a replay of [--from, --to) with
    --warmup shows its strategy the same number of events before --from, so
    that a Backtest starting where an engine started trades as that engine did.
    Only the last `count` rows of each chunk become events (the caller keeps the
    last `count` of them all), and the read ends at `start_ms`.
    """

    def __init__(self, start_ms: int, count: int) -> None:
        self.start = start_ms
        self.count = count

    def block(self, ts: Any, prices: Any) -> tuple[int, int, bool]:
        count = len(ts)
        hi, stop = count, False
        if int(ts[-1]) >= self.start:
            hi, stop = int(ts.searchsorted(self.start)), True
        return max(0, hi - self.count), hi, stop

    def one(self, ts: int, price: float) -> int:
        return STOP if ts >= self.start else DELIVER


_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 date-time with its offset, or a full-date (midnight UTC), as epoch ms.

    Fractions of a millisecond are dropped (times are whole ms everywhere).
    A ValueError says what was expected.
    """
    value = text.strip()
    if _FULL_DATE.match(value):
        value += "T00:00:00Z"
    elif not _DATE_TIME.match(value):
        raise ValueError(
            f"{text!r} is not an RFC 3339 date-time such as 2018-01-01T00:00:00Z "
            "(with a Z or +hh:mm offset) or a date such as 2018-01-01"
        )
    value = value.upper()
    head, dot, rest = value.partition(".")
    if dot:  # datetime takes at most 6 fraction digits: keep milliseconds
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[:digits][:6].ljust(3, '0')}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date-time: {exc}") from None
    return (moment - _EPOCH) // timedelta(milliseconds=1)
