"""What a replay adds around the kernel when asked: a time window, and the marks of a report.

Neither is on a plain replay's path: without --from/--to and without
statistics the reader calls the kernel directly. With them, one small
function per event sits between the reader and the kernel: it drops events
before the window, ends the read at the first event past it (`PastWindow`),
and records each event's time and price (a candle's close, a trade's price)
into two flat arrays (16 bytes per event) from which the report rebuilds the
equity series after the replay (report/equity.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hean_engine.model.market import Candle, Trade
from hean_engine.report.build import Marks

_NO_END = 1 << 62


@dataclass(frozen=True, slots=True)
class ReplayWindow:
    """Events at or after `start_ms` and before `end_ms` (epoch ms; None: unbounded)."""

    start_ms: int | None = None
    end_ms: int | None = None


class PastWindow(Exception):
    """Raised by the recorder at the first event at or after the window's end: stop reading."""


class Seen:
    """The times of the first and last events the reader delivered (for an empty window's error)."""

    __slots__ = ("first", "last")

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None


def candle_feed(
    on_candle: Callable[[Candle], None],
    window: ReplayWindow,
    marks: Marks | None,
    seen: Seen,
) -> Callable[[Candle], None]:
    """`on_candle` behind the window and the recorder."""
    if window == ReplayWindow() and marks is not None:
        return _recording(on_candle, marks.ts.append, marks.prices.append, "close")
    start = window.start_ms if window.start_ms is not None else -_NO_END
    end = window.end_ms if window.end_ms is not None else _NO_END
    add_ts = marks.ts.append if marks is not None else None
    add_price = marks.prices.append if marks is not None else None

    def feed(candle: Candle) -> None:
        ts = candle.ts
        if seen.first is None:
            seen.first = ts
        seen.last = ts
        if ts < start:
            return
        if ts >= end:
            raise PastWindow
        if add_ts is not None and add_price is not None:
            add_ts(ts)
            add_price(candle.close)
        on_candle(candle)

    return feed


def trade_feed(
    on_trade: Callable[[Trade], None],
    window: ReplayWindow,
    marks: Marks | None,
    seen: Seen,
) -> Callable[[Trade], None]:
    """`on_trade` behind the window and the recorder (see `candle_feed`)."""
    if window == ReplayWindow() and marks is not None:
        return _recording(on_trade, marks.ts.append, marks.prices.append, "price")
    start = window.start_ms if window.start_ms is not None else -_NO_END
    end = window.end_ms if window.end_ms is not None else _NO_END
    add_ts = marks.ts.append if marks is not None else None
    add_price = marks.prices.append if marks is not None else None

    def feed(trade: Trade) -> None:
        ts = trade.ts
        if seen.first is None:
            seen.first = ts
        seen.last = ts
        if ts < start:
            return
        if ts >= end:
            raise PastWindow
        if add_ts is not None and add_price is not None:
            add_ts(ts)
            add_price(trade.price)
        on_trade(trade)

    return feed


def _recording(
    deliver: Callable[[Any], None],
    add_ts: Callable[[int], None],
    add_price: Callable[[float], None],
    price: str,
) -> Callable[[Any], None]:
    """The recorder alone (no window): the cheapest function between reader and kernel."""
    if price == "close":

        def record_candle(candle: Candle) -> None:
            add_ts(candle.ts)
            add_price(candle.close)
            deliver(candle)

        return record_candle

    def record_trade(trade: Trade) -> None:
        add_ts(trade.ts)
        add_price(trade.price)
        deliver(trade)

    return record_trade


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
