"""The fast way into a data file: pyarrow's CSV reader, checks on whole arrays.

`arrow_batches(path, kind)` yields each block of rows (about 256 KiB of text)
as numpy arrays, one per column: timestamps in epoch ms (int64), taker sides
as booleans (trades), prices and amounts as float64. Every row of a
block is checked before the block is yielded, with exactly the rules of the
line-by-line reader in `files.py`, on numpy arrays:

- timestamps only in the two fixed shapes `YYYY-MM-DDTHH:MM:SSZ` and
  `YYYY-MM-DDTHH:MM:SS.mmmZ`, every digit a digit and every field in range
  (month, day of that month, hour, minute, second), converted with integer
  arithmetic to the same epoch ms;
- prices and volumes finite, a candle's low > 0 and low <= open, close <= high,
  volume >= 0, a trade's price and amount > 0; sides `buy` or `sell`;
- candles strictly increasing in time, trades non-decreasing.

The line-by-line reader stays the authority: anything this one does not
accept as it is (another timestamp shape, quotes, a bad row, an unreadable
file, a lone carriage return, pyarrow missing) raises `Fallback`, and the
caller re-reads with the line-by-line reader, which either accepts the row or
names the file, line and problem. So the two readers can only differ in speed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

DataKind = Literal["candles", "trades"]

# The text of one batch. Small enough that a batch's arrays and lists (35 KB a
# column) come from the allocators' free lists rather than fresh mappings: at
# 1 MiB, every batch page-faulted its buffers in again (9,000 faults a file,
# about 6 us each on this VM), and the peak RSS was 11 MiB higher.
BLOCK_BYTES = 1 << 18

_CANDLE_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
_TRADE_COLUMNS = ["timestamp", "side", "price", "amount"]
# Timestamp widths: the digits' positions, and the other characters' positions and values.
_DIGITS = {
    20: [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18],
    24: [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22],
}
_SEPARATORS = {
    20: ([4, 7, 10, 13, 16, 19], b"--T::Z"),
    24: ([4, 7, 10, 13, 16, 19, 23], b"--T::.Z"),
}
_DAYS_IN_MONTH = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]  # by month number


class Fallback(Exception):
    """This reader cannot vouch for a block: read the file line by line instead."""


def arrow_batches(
    path: Path,
    kind: DataKind,
    header: bytes,
    opener: Callable[[Path], BinaryIO],
    on_gaps: Callable[[Any], None] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The file's rows as column arrays per block; raises Fallback (see the module).

    `on_gaps` (candles) gets each block's timestamp gaps as one numpy array, the
    gap from the previous block's last candle first, before the block is yielded."""
    try:
        import numpy as np
        import pyarrow as pa
        from pyarrow import csv as pa_csv
    except ImportError:
        raise Fallback("pyarrow is not installed") from None
    candles = kind == "candles"
    names = _CANDLE_COLUMNS if candles else _TRADE_COLUMNS
    types: dict[str, Any] = {name: pa.float64() for name in names}
    types["timestamp"] = pa.binary()
    if not candles:
        types["side"] = pa.dictionary(pa.int32(), pa.binary())
    read_options = pa_csv.ReadOptions(
        block_size=2 * BLOCK_BYTES, column_names=names, use_threads=False
    )
    header_options = pa_csv.ReadOptions(
        block_size=2 * BLOCK_BYTES, column_names=names, use_threads=False, skip_rows=1
    )
    parse_options = pa_csv.ParseOptions(quote_char=False, double_quote=False, escape_char=False)
    convert_options = pa_csv.ConvertOptions(
        column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False
    )
    last_ts = -1
    for index, text in enumerate(_text_blocks(path, opener)):
        # The header, if any, is the first line (as for the line-by-line reader).
        options = read_options
        if index == 0 and _first_line(text).strip() == header:
            options = header_options
        try:
            table = pa_csv.read_csv(
                pa.py_buffer(text),
                read_options=options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except Exception as exc:  # the line-by-line reader reports it
            raise Fallback(str(exc)) from None
        if table.num_rows == 0:
            continue
        for batch in table.combine_chunks().to_batches():
            if batch.num_rows == 0:
                continue
            for column in batch.columns:
                if column.null_count:
                    raise Fallback("empty field")
            ts = _timestamps(np, batch.column(0))
            first = int(ts[0])
            if candles:
                if not (first > last_ts and bool((ts[1:] > ts[:-1]).all())):
                    raise Fallback("timestamps not increasing")
                op, hi, lo, cl, vol = (_floats(np, batch.column(i)) for i in range(1, 6))
                with np.errstate(invalid="ignore"):
                    ok = (
                        (lo > 0.0)
                        & (lo <= op)
                        & (op <= hi)
                        & (lo <= cl)
                        & (cl <= hi)
                        & (hi < math.inf)
                        & (vol >= 0.0)
                        & (vol < math.inf)
                    )
                if not bool(ok.all()):
                    raise Fallback("bad candle")
                if on_gaps is not None:
                    on_gaps(np.diff(ts) if last_ts < 0 else np.diff(ts, prepend=last_ts))
                last_ts = int(ts[-1])
                yield ts, op, hi, lo, cl, vol
            else:
                if not (first >= last_ts and bool((ts[1:] >= ts[:-1]).all())):
                    raise Fallback("timestamps decreasing")
                buyer_taker = _sides(np, batch.column(1))
                price, amount = _floats(np, batch.column(2)), _floats(np, batch.column(3))
                with np.errstate(invalid="ignore"):
                    ok = (price > 0.0) & (price < math.inf) & (amount > 0.0) & (amount < math.inf)
                if not bool(ok.all()):
                    raise Fallback("bad trade")
                last_ts = int(ts[-1])
                yield ts, buyer_taker, price, amount


def _text_blocks(path: Path, opener: Callable[[Path], BinaryIO]) -> Iterator[memoryview]:
    """The decompressed text in blocks of whole lines (about BLOCK_BYTES each).

    pyarrow ends a row at `\\r` as at `\\n`; the line-by-line reader only at
    `\\n` (a `\\r` before it is whitespace to float()). `\\r\\n` reads the same in
    both; any other `\\r` is left to the line-by-line reader.
    """
    tail = b""
    try:
        with opener(path) as stream:
            while True:
                block = stream.read(BLOCK_BYTES)
                if not block:
                    break
                text = tail + block if tail else block
                cut = text.rfind(b"\n") + 1
                tail = text[cut:]
                if cut:
                    yield _no_lone_cr(memoryview(text)[:cut])  # no copy
    except Fallback:
        raise
    except Exception as exc:  # the line-by-line reader reports it
        raise Fallback(str(exc)) from None
    if tail:
        yield _no_lone_cr(memoryview(tail))


def _first_line(text: memoryview) -> bytes:
    """The first line with its newline ("" if the text has none, as it then is no header)."""
    raw = text.obj
    assert isinstance(raw, bytes)
    return bytes(text[: raw.find(b"\n", 0, len(text)) + 1])


def _no_lone_cr(text: memoryview) -> memoryview:
    raw = text.obj
    assert isinstance(raw, bytes)
    if raw.find(b"\r", 0, len(text)) >= 0:
        whole = bytes(text)
        if whole.count(b"\r") != whole.count(b"\r\n"):
            raise Fallback("carriage return")
    return text


def _floats(np: Any, column: Any) -> Any:
    """A float64 column without nulls as a numpy array, without a copy.

    (Not `Array.to_numpy()`: that imports pandas when it is installed.)
    """
    return np.frombuffer(column.buffers()[1], np.float64, len(column), column.offset * 8)


def _sides(np: Any, column: Any) -> Any:
    """The taker sides as booleans (True: buy), or Fallback for anything else."""
    values = column.dictionary.to_pylist()
    if not set(values) <= {b"buy", b"sell"}:
        raise Fallback("bad side")
    is_buy = np.array([value == b"buy" for value in values] or [False])
    indices = column.indices
    buffer = indices.buffers()[1]
    return is_buy[np.frombuffer(buffer, np.int32, len(indices), indices.offset * 4)]


def _timestamps(np: Any, column: Any) -> Any:
    """ISO-8601 texts of one fixed shape to epoch ms (int64), or Fallback."""
    n = len(column)
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32, n + 1, column.offset * 4)
    width = int(offsets[1] - offsets[0])
    if width not in (20, 24) or not bool((np.diff(offsets) == width).all()):
        raise Fallback("timestamp shape")
    raw = np.frombuffer(data_buffer, np.uint8, n * width, int(offsets[0])).reshape(n, width)
    positions, expected = _SEPARATORS[width]
    if not bool((raw[:, positions] == np.frombuffer(expected, np.uint8)).all()):
        raise Fallback("timestamp shape")
    digits = raw[:, _DIGITS[width]] - np.uint8(48)  # anything but 0-9 wraps to > 9
    if int(digits.max()) > 9:
        raise Fallback("timestamp shape")
    d = digits.astype(np.int32)
    pairs = d[:, 0:14:2] * 10 + d[:, 1:14:2]  # century, year, month, day, hour, minute, second
    year = pairs[:, 0] * 100 + pairs[:, 1]
    month, day, hour, minute, second = (pairs[:, i] for i in range(2, 7))
    in_range = (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)
    if not bool(in_range.all()) or max(int(hour.max()) - 23, int(minute.max()) - 59) > 0:
        raise Fallback("timestamp range")
    if int(second.max()) > 59:
        raise Fallback("timestamp range")
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    if not bool((day <= np.array(_DAYS_IN_MONTH, np.int32)[month] + (leap & (month == 2))).all()):
        raise Fallback("timestamp range")
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = (era * 146_097 + day_of_era - 719_468).astype(np.int64)
    ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000
    if width == 24:
        ms += d[:, 14] * 100 + d[:, 15] * 10 + d[:, 16]
    return ms
