"""Recorded market data files: CSV, optionally gzipped.

Two layouts, told apart by the header line (or, without one, by the number of
columns):
- candles: `timestamp,open,high,low,close,volume`
- trades:  `timestamp,side,price,amount` (side is the taker's: buy or sell)

Timestamps are ISO-8601 in UTC (`2017-01-01T00:00:00Z`, optionally with
milliseconds). Candles must be strictly increasing in time, trades
non-decreasing; gaps are normal. Any malformed line stops the read with a
DataError naming the file, the line number and the problem.

The reader is the first half of a replay's hot path. `read_candles` and
`read_trades` first try the columnar reader (`columnar.py`: pyarrow, every
check done on whole arrays); the line-by-line reader here is the authority
that it falls back to for anything it cannot vouch for, so errors always name
the file and the line of the first bad row. The line-by-line reader works on
bytes in large blocks and parses the common timestamp shapes without
`datetime` (caching each hour's epoch offset).
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, cast

from hean_engine.data.columnar import Fallback, arrow_batches
from hean_engine.model.errors import DataError
from hean_engine.model.market import Candle, Trade
from hean_engine.model.timefmt import iso_to_ms, ms_to_iso

DataKind = Literal["candles", "trades"]

CANDLE_HEADER = b"timestamp,open,high,low,close,volume"
TRADE_HEADER = b"timestamp,side,price,amount"
_BLOCK = 1 << 22
_PROBE = 1 << 12  # detect_kind's first read
CHUNK_ROWS = 2048  # candles or trades made and delivered at a time by the columnar path
_INF = math.inf
_DOT = ord(".")
_Z = ord("Z")
_UNDERSCORE = b"_"


def _open(path: Path) -> BinaryIO:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _open_fast(path: Path) -> BinaryIO:
    """As `_open`, with ISA-L's gunzip (about 3.5x zlib's speed) when it is installed.

    Only the columnar reader uses it: when anything goes wrong the line-by-line
    reader re-reads the file with the standard library's gzip, whose errors
    the DataError quotes.
    """
    try:
        from isal import igzip
    except ImportError:
        return _open(path)
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return cast(BinaryIO, igzip.open(path, "rb"))  # type: ignore[no-untyped-call]
    return path.open("rb")


def _numbered_lines(path: Path, first: int = _BLOCK) -> Iterator[tuple[int, list[bytes]]]:
    """Blocks of lines, each with the 1-based number of its first line.

    The first read is of `first` bytes, the others of `_BLOCK`.
    """
    lineno = 1
    tail = b""
    size = first
    try:
        with _open(path) as stream:
            while True:
                block = stream.read(size)
                size = _BLOCK
                if not block:
                    break
                lines = (tail + block).split(b"\n")
                tail = lines.pop()
                yield lineno, lines
                lineno += len(lines)
    except (OSError, EOFError, zlib.error) as exc:
        # zlib.error: a gzip corrupted in the middle; EOFError: one cut short.
        raise DataError(str(path), lineno, f"cannot read file: {exc}") from None
    if tail:
        yield lineno, [tail]


def check_readable(path: Path | str) -> None:
    """Read the whole file once (decompressing it): a DataError if it is corrupt anywhere.

    For readers that load lazily (the exchange simulator), so that a gzip
    damaged in the middle is refused at start rather than mid-run.
    """
    for _ in _numbered_lines(Path(path)):
        pass


# `:MM:SS` -> milliseconds into the hour, and `mmm` -> milliseconds: lookups
# are cheaper than int() on slices, and a key miss means an invalid time.
_MINUTE_SECOND = {
    f":{m:02d}:{s:02d}".encode(): (m * 60 + s) * 1000 for m in range(60) for s in range(60)
}
_MILLIS = {f"{ms:03d}".encode(): ms for ms in range(1000)}


class _TimestampParser:
    """ISO-8601 UTC to epoch ms; the fixed shapes of recorded data take a fast path.

    `hours` caches each `YYYY-MM-DDTHH` prefix's epoch ms; readers look it up
    inline and call the parser only on a miss or an unusual shape.
    """

    def __init__(self) -> None:
        self.hours: dict[bytes, int] = {}

    def __call__(self, text: bytes) -> int:
        size = len(text)
        if (size == 20 or size == 24) and text[-1] == _Z:
            into_hour = _MINUTE_SECOND.get(text[13:19])
            if into_hour is not None:
                hour = self.hours.get(text[:13])
                if hour is None:
                    hour = self._hour(text[:13])
                if size == 20:
                    return hour + into_hour
                millis = _MILLIS.get(text[20:23])
                if text[19] == _DOT and millis is not None:
                    return hour + into_hour + millis
        return iso_to_ms(text.decode("ascii", errors="replace").strip())

    def _hour(self, key: bytes) -> int:
        text = key.decode("ascii", errors="replace")
        digits = text[:4] + text[5:7] + text[8:10] + text[11:13]
        # isdigit() and not int(): int() accepts signs, spaces and underscores.
        if not (text[4] == text[7] == "-" and text[10] == "T" and digits.isdigit()):
            raise ValueError(f"timestamp {text!r}... is not ISO-8601 (YYYY-MM-DDTHH:MM:SSZ)")
        # datetime() checks the ranges (month 13, hour 24 and 30 February fail).
        dt = datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), tzinfo=UTC)
        ms = int(dt.timestamp()) * 1000
        self.hours[key] = ms
        return ms


def detect_kind(path: Path) -> DataKind:
    """Candles or trades, from the header line (or the first line's column count).

    The first read is small (`_PROBE`): only the first line that is not blank
    is looked at, and a replay's start should not decompress and split 4 MiB
    of text for it (about 0.03 s and 2,900 page faults on the shared BTC/USD
    file).
    """
    for _, lines in _numbered_lines(path, _PROBE):
        for line in lines:
            stripped = line.strip()
            if not stripped:
                continue
            if stripped == CANDLE_HEADER:
                return "candles"
            if stripped == TRADE_HEADER:
                return "trades"
            columns = stripped.count(b",") + 1
            if columns == 6:
                return "candles"
            if columns == 4:
                return "trades"
            raise DataError(
                str(path),
                1,
                "unrecognised layout: expected the header "
                f"'{CANDLE_HEADER.decode()}' or '{TRADE_HEADER.decode()}'",
            )
    raise DataError(str(path), 1, "file is empty")


class Tap(Protocol):
    """What a replay puts between the reader and the kernel: a window and a recorder.

    The columnar reader asks `block` about each chunk of rows before it makes
    their events, with the chunk's times and prices (a candle's close, a
    trade's price) as numpy arrays: the answer is the part of the chunk to
    deliver, `[lo, hi)`, and whether the read ends after it. The line-by-line
    reader asks `one` about each event: `SKIP`, `DELIVER` or `STOP` (not
    delivered, and the read ends). The tap records what it lets through itself.
    """

    def block(self, ts: Any, prices: Any) -> tuple[int, int, bool]: ...

    def one(self, ts: int, price: float) -> int: ...


SKIP, DELIVER, STOP = 0, 1, 2


def _candle_blocks(
    path: Path, on_gaps: Callable[[Any], None] | None = None, tap: Tap | None = None
) -> Iterator[tuple[int, list[Candle]]]:
    """The columnar reader's candles, a list per chunk, each with the number of
    rows it consumed (raises Fallback, see columnar).

    One construction for both `read_candles` (a generator) and `feed_candles`
    (pushed into the kernel): slot assignment without __init__ costs half a
    constructor call. A checked block of rows becomes candles `CHUNK_ROWS` at a
    time, so that few candles are alive when the garbage collector's young
    generation is collected (its cost is the objects it finds alive). With a
    `tap`, only the rows it lets through become candles, and the read ends
    where it says.
    """
    new = Candle.__new__
    for columns in arrow_batches(path, "candles", CANDLE_HEADER, _open_fast, on_gaps=on_gaps):
        count = len(columns[0])
        for a in range(0, count, CHUNK_ROWS):
            b = min(a + CHUNK_ROWS, count)
            lo, hi, stop = a, b, False
            if tap is not None:
                lo, hi, stop = tap.block(columns[0][a:b], columns[4][a:b])
                lo, hi = a + lo, a + hi
            block: list[Candle] = []
            append = block.append
            for ts, op, hi_, low, cl, vol in zip(
                *(c[lo:hi].tolist() for c in columns), strict=True
            ):
                candle = new(Candle)
                candle.ts = ts
                candle.open = op
                candle.high = hi_
                candle.low = low
                candle.close = cl
                candle.volume = vol
                append(candle)
            yield b - a, block
            if stop:
                return


def _trade_blocks(path: Path, tap: Tap | None = None) -> Iterator[tuple[int, list[Trade]]]:
    """The columnar reader's trades, a list per chunk (see `_candle_blocks`)."""
    new = Trade.__new__
    for columns in arrow_batches(path, "trades", TRADE_HEADER, _open_fast):
        count = len(columns[0])
        for a in range(0, count, CHUNK_ROWS):
            b = min(a + CHUNK_ROWS, count)
            lo, hi, stop = a, b, False
            if tap is not None:
                lo, hi, stop = tap.block(columns[0][a:b], columns[2][a:b])
                lo, hi = a + lo, a + hi
            block: list[Trade] = []
            append = block.append
            for ts, buyer_taker, price, amount in zip(
                *(c[lo:hi].tolist() for c in columns), strict=True
            ):
                trade = new(Trade)
                trade.ts = ts
                trade.buyer_taker = buyer_taker
                trade.price = price
                trade.amount = amount
                append(trade)
            yield b - a, block
            if stop:
                return


def read_candles(path: Path | str) -> Iterator[Candle]:
    """Every candle of the file, in order; DataError at the first bad row."""
    path = Path(path)
    done = 0
    try:
        for rows, block in _candle_blocks(path):
            yield from block
            done += rows
        if done:
            return
    except Fallback:
        pass
    yield from _skip(_read_candles_by_line(path), done)


def read_trades(path: Path | str) -> Iterator[Trade]:
    """Every trade of the file, in order; DataError at the first bad row."""
    path = Path(path)
    done = 0
    try:
        for rows, block in _trade_blocks(path):
            yield from block
            done += rows
        if done:
            return
    except Fallback:
        pass
    yield from _skip(_read_trades_by_line(path), done)


class Spacing:
    """How far apart a file's candles are, against the timeframe a replay expects.

    Candles are `step_ms` apart or a whole number of steps (a gap in the data).
    `misfit` is the first gap that is not a whole number of steps; `smallest` the
    smallest gap seen. The columnar reader reports each block's gaps as one array
    (no per-candle cost); the line-by-line reader candle by candle.
    """

    def __init__(self, step_ms: int) -> None:
        self.step_ms = step_ms
        self.smallest: int | None = None
        self.misfit: int | None = None
        self._last: int | None = None

    def gaps(self, gaps: Any) -> None:
        """A block's gaps (a numpy integer array, the first from the previous block)."""
        if len(gaps) == 0:
            return
        smallest = int(gaps.min())
        if self.smallest is None or smallest < self.smallest:
            self.smallest = smallest
        if self.misfit is None:
            off = gaps[gaps % self.step_ms != 0]
            if len(off):
                self.misfit = int(off[0])

    def candle(self, ts: int) -> None:
        if self._last is not None:
            gap = ts - self._last
            if self.smallest is None or gap < self.smallest:
                self.smallest = gap
            if self.misfit is None and gap % self.step_ms:
                self.misfit = gap
        self._last = ts

    def mismatch(self) -> int | None:
        """A gap that shows the candles are not `step_ms` candles, or None."""
        if self.misfit is not None:
            return self.misfit
        if self.smallest is not None and self.smallest != self.step_ms:
            return self.smallest
        return None


def feed_candles(
    path: Path | str,
    on_candle: Callable[[Candle], object],
    spacing: Spacing | None = None,
    on_candles: Callable[[Sequence[Candle]], object] | None = None,
    tap: Tap | None = None,
) -> None:
    """`read_candles`, pushed: calls `on_candle` with each candle (the replay's loop).

    The same rows, order and errors as `read_candles`, without a generator
    between the reader and the kernel. Given `on_candles`, the candles go to it
    a list at a time instead (`TradingKernel.on_candles` steps through a list
    in one frame): the columnar reader's in chunks, the line-by-line reader's
    one at a time, each before the next row is read (so the rows before a bad
    one have been delivered when its DataError is raised, as with
    `read_candles`). With `spacing`, the candles' spacing is measured too, and
    no candle is delivered after a gap that is not a whole number of its steps
    (`spacing.misfit`). With `tap` (see `Tap`), only the candles it lets through
    are delivered, and the read ends where it says.
    """
    path = Path(path)
    deliver = on_candles if on_candles is not None else _each(on_candle)
    done = 0
    try:
        for rows, block in _candle_blocks(path, spacing.gaps if spacing is not None else None, tap):
            if spacing is not None and spacing.misfit is not None:
                return
            if block:
                deliver(block)
            done += rows
        if done:
            return
    except Fallback:
        pass
    by_line: Iterator[Candle] = _skip(_read_candles_by_line(path), done)
    if spacing is None and on_candles is None and tap is None:
        deque(map(on_candle, by_line), maxlen=0)
        return
    for line_candle in by_line:
        if spacing is not None:
            spacing.candle(line_candle.ts)
            if spacing.misfit is not None:
                return
        if tap is not None:
            verdict = tap.one(line_candle.ts, line_candle.close)
            if verdict != DELIVER:
                if verdict == STOP:
                    return
                continue
        deliver((line_candle,))


def feed_trades(
    path: Path | str,
    on_trade: Callable[[Trade], object],
    on_trades: Callable[[Sequence[Trade]], object] | None = None,
    tap: Tap | None = None,
) -> None:
    """`read_trades`, pushed: calls `on_trade` with each trade, or `on_trades` with
    lists of them (see `feed_candles`)."""
    path = Path(path)
    deliver = on_trades if on_trades is not None else _each(on_trade)
    done = 0
    try:
        for rows, block in _trade_blocks(path, tap):
            if block:
                deliver(block)
            done += rows
        if done:
            return
    except Fallback:
        pass
    by_line = _skip(_read_trades_by_line(path), done)
    if on_trades is None and tap is None:
        deque(map(on_trade, by_line), maxlen=0)
        return
    for line_trade in by_line:
        if tap is not None:
            verdict = tap.one(line_trade.ts, line_trade.price)
            if verdict != DELIVER:
                if verdict == STOP:
                    return
                continue
        deliver((line_trade,))


def _each(on_event: Callable[[Any], object]) -> Callable[[Sequence[Any]], object]:
    """A per-event callback as a per-list one."""

    def each(events: Sequence[Any]) -> None:
        deque(map(on_event, events), maxlen=0)

    return each


def _skip(rows: Iterator[Any], count: int) -> Iterator[Any]:
    """`rows` without the first `count` (already delivered by the columnar reader)."""
    deque(islice(rows, count), maxlen=0)
    return rows


def _read_candles_by_line(path: Path) -> Iterator[Candle]:
    name = str(path)
    parse_ts = _TimestampParser()
    hours = parse_ts.hours
    minute_second = _MINUTE_SECOND
    new = Candle.__new__
    last_ts = -1
    header_seen = False
    for first, lines in _numbered_lines(path):
        lineno = first - 1
        for line in lines:
            lineno += 1
            parts = line.split(b",")
            if len(parts) != 6:
                if not line.strip():
                    continue
                raise DataError(name, lineno, f"expected 6 columns, found {len(parts)}")
            ts_text, o, h, lo, c, v = parts
            try:
                # Fast path for `YYYY-MM-DDTHH:MM:SSZ`: two dict lookups. Anything
                # else (a new hour, another shape, an invalid time) goes the slow way.
                if len(ts_text) == 20 and ts_text[19] == _Z:
                    try:
                        ts = hours[ts_text[:13]] + minute_second[ts_text[13:19]]
                    except KeyError:
                        ts = parse_ts(ts_text)
                else:
                    ts = parse_ts(ts_text)
                op = float(o)
                hi = float(h)
                low = float(lo)
                cl = float(c)
                vol = float(v)
                if _UNDERSCORE in line:  # float() accepts "1_000"; a data file must not
                    _reject_underscore(parts)
            except ValueError as exc:
                if lineno == 1 and line.strip() == CANDLE_HEADER:
                    header_seen = True
                    continue
                raise DataError(name, lineno, _describe(parts, exc)) from None
            if not (0.0 < low <= op <= hi and low <= cl <= hi and hi < _INF and 0.0 <= vol < _INF):
                raise DataError(name, lineno, _candle_problem(op, hi, low, cl, vol))
            if ts <= last_ts:
                raise DataError(name, lineno, _order_problem(ts, last_ts, strict=True))
            last_ts = ts
            # Slot assignment without __init__: half the cost of a constructor call.
            candle = new(Candle)
            candle.ts = ts
            candle.open = op
            candle.high = hi
            candle.low = low
            candle.close = cl
            candle.volume = vol
            yield candle
    if last_ts < 0:
        raise DataError(name, 1, _no_rows(header_seen, "candles"))


def _read_trades_by_line(path: Path) -> Iterator[Trade]:
    name = str(path)
    parse_ts = _TimestampParser()
    hours = parse_ts.hours
    minute_second = _MINUTE_SECOND
    millis = _MILLIS
    new = Trade.__new__
    last_ts = -1
    header_seen = False
    for first, lines in _numbered_lines(path):
        lineno = first - 1
        for line in lines:
            lineno += 1
            parts = line.split(b",")
            if len(parts) != 4:
                if not line.strip():
                    continue
                raise DataError(name, lineno, f"expected 4 columns, found {len(parts)}")
            ts_text, side, p, a = parts
            if side == b"buy":
                buyer_taker = True
            elif side == b"sell":
                buyer_taker = False
            elif lineno == 1 and line.strip() == TRADE_HEADER:
                header_seen = True
                continue
            else:
                shown = side.decode(errors="replace")
                raise DataError(name, lineno, f"side must be 'buy' or 'sell', got {shown!r}")
            try:
                # Fast path for `YYYY-MM-DDTHH:MM:SS.mmmZ` (see read_candles).
                if len(ts_text) == 24 and ts_text[23] == _Z and ts_text[19] == _DOT:
                    try:
                        ts = (
                            hours[ts_text[:13]]
                            + minute_second[ts_text[13:19]]
                            + millis[ts_text[20:23]]
                        )
                    except KeyError:
                        ts = parse_ts(ts_text)
                else:
                    ts = parse_ts(ts_text)
                price = float(p)
                amount = float(a)
                if _UNDERSCORE in line:
                    _reject_underscore(parts)
            except ValueError as exc:
                raise DataError(name, lineno, _describe(parts, exc)) from None
            if not (0.0 < price < _INF and 0.0 < amount < _INF):
                shown = f"{p.decode(errors='replace')!r} and {a.decode(errors='replace')!r}"
                raise DataError(
                    name, lineno, f"price and amount must be positive finite numbers, got {shown}"
                )
            if ts < last_ts:
                raise DataError(name, lineno, _order_problem(ts, last_ts, strict=False))
            last_ts = ts
            trade = new(Trade)
            trade.ts = ts
            trade.buyer_taker = buyer_taker
            trade.price = price
            trade.amount = amount
            yield trade
    if last_ts < 0:
        raise DataError(name, 1, _no_rows(header_seen, "trades"))


def _no_rows(header_seen: bool, kind: str) -> str:
    return f"no {kind} after the header" if header_seen else "file is empty"


def _reject_underscore(parts: list[bytes]) -> None:
    for part in parts[1:]:
        if _UNDERSCORE in part:
            raise ValueError(f"could not convert string to float: {part!r}")


def _describe(parts: list[bytes], exc: ValueError) -> str:
    """A parse failure's message: float() says "could not convert"; the rest is the timestamp."""
    text = str(exc)
    if "could not convert" in text:
        value = text.split(":", 1)[-1].strip()
        return f"not a number: {value.removeprefix('b')}"
    return f"bad timestamp {parts[0].decode(errors='replace')!r}: {text}"


def _candle_problem(op: float, hi: float, low: float, cl: float, vol: float) -> str:
    values = [op, hi, low, cl, vol]
    if any(math.isnan(x) or math.isinf(x) for x in values):
        return "prices and volume must be finite numbers"
    if low <= 0:
        return f"low must be positive, got {low!r}"
    if vol < 0:
        return f"volume must not be negative, got {vol!r}"
    return f"inconsistent candle: need low <= open, close <= high (o={op} h={hi} l={low} c={cl})"


def _order_problem(ts: int, last: int, *, strict: bool) -> str:
    if strict and ts == last:
        return f"duplicate candle timestamp {ms_to_iso(ts)}"
    return f"timestamp {ms_to_iso(ts)} is earlier than the previous row's {ms_to_iso(last)}"
