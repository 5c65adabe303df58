"""The simulator's reader of recorded market data: plain CSV, optionally gzipped.

Deliberately not the engine's reader (`hean_engine.data.files`): the
simulator serves recorded data to an engine under test, so reading the file
a second way makes it an independent check of the engine's reader rather
than a copy of its mistakes. It is simple rather than fast (the simulator
reads a few thousand rows at a time as its replay advances).

The two layouts, told apart by the header line or, without one, by the
number of columns:

- candles: `timestamp,open,high,low,close,volume`, strictly increasing times,
  0 < low <= open, close <= high, volume >= 0;
- trades: `timestamp,side,price,amount`, side `buy` or `sell` (the taker's),
  price and amount positive, times never decreasing.

Timestamps are ISO-8601 in UTC (`2017-01-01T00:00:00Z`, optionally with
milliseconds). Blank lines are skipped. The first bad row stops the read with
a `RecordError` naming the file, the line and the problem.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from hean_sim.exchange.model import RecordedCandle, RecordedTrade
from hean_sim.exchange.times import iso_to_ms

RecordKind = Literal["candles", "trades"]

CANDLE_HEADER = "timestamp,open,high,low,close,volume"
TRADE_HEADER = "timestamp,side,price,amount"
_COLUMNS: dict[RecordKind, int] = {"candles": 6, "trades": 4}
_HEADERS: dict[RecordKind, str] = {"candles": CANDLE_HEADER, "trades": TRADE_HEADER}
# What a recorded number looks like: float() also takes "1_000", "nan" and
# "infinity", none of which an exchange records.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_SIDES = {"buy": True, "sell": False}
_CANDLE_VALUES = ("open", "high", "low", "close", "volume")
_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 1 << 20


class RecordError(ValueError):
    """A recorded file that cannot be served: `path:line: problem`."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line}: {problem}")


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        gzipped = probe.read(2) == _GZIP_MAGIC
    if gzipped:
        return gzip.open(path, "rt", encoding="ascii", newline="")
    return path.open("r", encoding="ascii", newline="")


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its end) for every line of the file."""
    number = 0
    try:
        with _open_text(path) as stream:
            for number, line in enumerate(stream, start=1):
                yield number, line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        # EOFError: a gzip cut short; zlib.error: one corrupted in the middle.
        raise RecordError(path, number + 1, f"cannot read file: {exc}") from None


def check_readable(path: Path) -> None:
    """Decompress the whole file once, so a file damaged in the middle is refused at start.

    The simulator reads lazily; without this, a corrupt gzip would surface
    mid-replay, long after `hean sim exchange` said it was listening.
    """
    line = 1
    try:
        with _open_text(path) as stream:
            while block := stream.read(_BLOCK):
                line += block.count("\n")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise RecordError(path, line, f"cannot read file: {exc}") from None


def detect_kind(path: Path) -> RecordKind:
    """Candles or trades, from the first non-blank line (a header, or its column count)."""
    for number, line in _numbered_lines(path):
        text = line.strip()
        if not text:
            continue
        for kind, header in _HEADERS.items():
            if text == header:
                return kind
        columns = text.count(",") + 1
        for kind, expected in _COLUMNS.items():
            if columns == expected:
                return kind
        raise RecordError(
            path,
            number,
            f"unrecognised layout: expected the header {CANDLE_HEADER!r} or {TRADE_HEADER!r}",
        )
    raise RecordError(path, 1, "file is empty")


def _rows(path: Path, kind: RecordKind) -> Iterator[tuple[int, list[str]]]:
    """(line number, columns) of every data row: no header, no blank line."""
    columns = _COLUMNS[kind]
    for number, line in _numbered_lines(path):
        if not line.strip():
            continue
        if number == 1 and line.strip() == _HEADERS[kind]:
            continue
        cells = line.split(",")
        if len(cells) != columns:
            raise RecordError(path, number, f"expected {columns} columns, found {len(cells)}")
        yield number, cells


def _time(path: Path, number: int, text: str) -> int:
    try:
        return iso_to_ms(text)
    except ValueError as exc:
        raise RecordError(path, number, f"bad timestamp {text!r}: {exc}") from None


def _number(path: Path, number: int, name: str, text: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise RecordError(path, number, f"{name}: not a number: {text!r}")
    value = float(text)
    if not math.isfinite(value):
        raise RecordError(path, number, f"{name}: not a finite number: {text!r}")
    return value


def read_candles(path: Path) -> Iterator[RecordedCandle]:
    """Every candle of the file, in order; RecordError at the first bad row."""
    last = -1
    for number, cells in _rows(path, "candles"):
        ts = _time(path, number, cells[0])
        o, h, low, c, v = (
            _number(path, number, name, text)
            for name, text in zip(
                ("open", "high", "low", "close", "volume"), cells[1:], strict=True
            )
        )
        if low <= 0:
            raise RecordError(path, number, f"low must be positive, got {cells[3]}")
        if not (low <= o <= h and low <= c <= h):
            raise RecordError(
                path, number, f"inconsistent candle: need low <= open, close <= high ({cells[1:5]})"
            )
        if v < 0:
            raise RecordError(path, number, f"volume must not be negative, got {cells[5]}")
        if ts <= last:
            problem = "repeats" if ts == last else "is earlier than"
            raise RecordError(path, number, f"timestamp {cells[0]} {problem} the previous row's")
        last = ts
        yield RecordedCandle(ts, o, h, low, c, v)
    if last < 0:
        raise RecordError(path, 1, "no candles in the file")


def read_trades(path: Path) -> Iterator[RecordedTrade]:
    """Every trade of the file, in order; RecordError at the first bad row."""
    last = -1
    for number, cells in _rows(path, "trades"):
        ts = _time(path, number, cells[0])
        buyer_taker = _SIDES.get(cells[1])
        if buyer_taker is None:
            raise RecordError(path, number, f"side must be 'buy' or 'sell', got {cells[1]!r}")
        price = _number(path, number, "price", cells[2])
        amount = _number(path, number, "amount", cells[3])
        if price <= 0 or amount <= 0:
            raise RecordError(
                path, number, f"price and amount must be positive, got {cells[2]} and {cells[3]}"
            )
        if ts < last:
            raise RecordError(
                path, number, f"timestamp {cells[0]} is earlier than the previous row's"
            )
        last = ts
        yield RecordedTrade(ts, buyer_taker, price, amount)
    if last < 0:
        raise RecordError(path, 1, "no trades in the file")
