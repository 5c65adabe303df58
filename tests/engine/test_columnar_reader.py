"""The columnar (pyarrow) reader: same rows as the line-by-line reader, same errors.

`read_candles` and `read_trades` read through `data/columnar.py` and fall back
to the line-by-line reader for anything it cannot vouch for; these tests check
that the fast path is taken for ordinary files, that it gives exactly the
line-by-line reader's rows, and that bad data past the first block (a bad row,
a gap in time order, a corrupt gzip stream) is still a DataError naming the
file and line, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_support import CANDLE_HEADER, TRADE_HEADER, write_lines
from hean_engine.data import columnar, files
from hean_engine.data.files import feed_candles, feed_trades, read_candles, read_trades
from hean_engine.model.errors import DataError

START = datetime(2017, 1, 1, tzinfo=UTC)
ROWS_PAST_ONE_BLOCK = 40_000  # about 1.7 MB of candle rows: several columnar blocks
# The line-by-line readers themselves (the fixture below spies on the module's names).
LINE_CANDLES = files._read_candles_by_line
LINE_TRADES = files._read_trades_by_line


def _candle_rows(count: int, *, step_minutes: int = 1) -> list[str]:
    rows = []
    for i in range(count):
        stamp = (START + timedelta(minutes=i * step_minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},{1000 + i % 7}.5,{1010 + i % 3}.25,{990 - i % 5}.75,1000.125,{i % 9}")
    return rows


def _trade_rows(count: int) -> list[str]:
    rows = []
    for i in range(count):
        stamp = (START + timedelta(milliseconds=i * 1_337)).strftime("%Y-%m-%dT%H:%M:%S.%f")
        side = "buy" if i % 3 else "sell"
        rows.append(f"{stamp[:-3]}Z,{side},0.00{990 + i % 17},{1 + i % 11}.5")
    return rows


@pytest.fixture
def line_reader_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each fall back to the line-by-line reader."""
    calls: list[str] = []
    for name in ("_read_candles_by_line", "_read_trades_by_line"):
        original = getattr(files, name)

        def spy(path: Path, original: Any = original, name: str = name) -> Iterator[Any]:
            calls.append(name)
            return original(path)  # type: ignore[no-any-return]

        monkeypatch.setattr(files, name, spy)
    return calls


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_ordinary_files_take_the_columnar_path_and_match_the_line_reader(
    tmp_path: Path, gz: bool, header: bool, line_reader_calls: list[str]
) -> None:
    # Gaps (a missing minute every 7) and more than one block.
    rows = [r for i, r in enumerate(_candle_rows(ROWS_PAST_ONE_BLOCK)) if i % 7 != 3]
    path = write_lines(tmp_path / "c.csv", ([CANDLE_HEADER] if header else []) + rows, gz=gz)
    got = list(read_candles(path))
    assert line_reader_calls == []
    assert got == list(LINE_CANDLES(path))
    assert len(got) == len(rows)
    fed: list[Any] = []
    feed_candles(path, fed.append)  # the replay's push form
    assert fed == got
    listed: list[Any] = []
    feed_candles(path, fed.append, on_candles=listed.extend)  # and its lists
    assert listed == got

    trades = _trade_rows(ROWS_PAST_ONE_BLOCK)
    path = write_lines(tmp_path / "t.csv", ([TRADE_HEADER] if header else []) + trades, gz=gz)
    got_trades = list(read_trades(path))
    assert line_reader_calls == []
    assert got_trades == list(LINE_TRADES(path))
    fed = []
    feed_trades(path, fed.append)
    assert fed == got_trades
    listed = []
    feed_trades(path, fed.append, on_trades=listed.extend)
    assert listed == got_trades


def _read_until_error(path: Path, reader: Any = read_candles) -> tuple[list[Any], DataError]:
    delivered: list[Any] = []
    try:
        for row in reader(path):
            delivered.append(row)
    except DataError as exc:
        return delivered, exc
    raise AssertionError("no DataError")


def _assert_error(path: Path, line: int, problem: str) -> list[Any]:
    delivered, error = _read_until_error(path)
    assert (error.path, error.line, error.problem) == (str(path), line, problem)
    return delivered


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (
            "2017-01-25T00:00:00Z,1,2,3,1,1",
            "inconsistent candle: need low <= open, close <= high (o=1.0 h=2.0 l=3.0 c=1.0)",
        ),
        ("2017-01-25T00:00:00Z,1,2,0.5,x,1", "not a number: 'x'"),
        (
            "2017-01-01T00:00:00Z,1,2,0.5,1,1",
            "timestamp 2017-01-01T00:00:00Z is earlier than "
            "the previous row's 2017-01-26T16:39:00Z",
        ),
        ("2017-01-25T00:00:00Z,1,2,0.5,1", "expected 6 columns, found 5"),
        (
            "2017-02-30T00:00:00Z,1,2,0.5,1,1",
            "bad timestamp '2017-02-30T00:00:00Z': day is out of range for month",
        ),
    ],
    ids=["high below low", "non-number", "earlier timestamp", "five columns", "30 February"],
)
def test_bad_row_in_a_later_block_names_its_line(
    tmp_path: Path, gz: bool, bad: str, problem: str, line_reader_calls: list[str]
) -> None:
    rows = _candle_rows(ROWS_PAST_ONE_BLOCK)
    bad_index = ROWS_PAST_ONE_BLOCK - 3_000  # in a later columnar block
    rows[bad_index] = bad.replace("2017-01-25T00:00:00Z", rows[bad_index].split(",")[0])
    path = write_lines(tmp_path / "c.csv", [CANDLE_HEADER, *rows], gz=gz)
    line = bad_index + 2  # after the header, 1-based
    delivered = _assert_error(path, line, problem)
    # Every good row before the bad one reached the caller, once and in order.
    expected, _ = _read_until_error(path, LINE_CANDLES)
    assert delivered == expected
    assert len(delivered) == bad_index
    fed: list[Any] = []
    with pytest.raises(DataError) as info:
        feed_candles(path, fed.append)
    assert (info.value.line, info.value.problem) == (line, problem)
    assert fed == delivered
    listed: list[Any] = []
    with pytest.raises(DataError) as info:
        feed_candles(path, fed.append, on_candles=listed.extend)
    assert (info.value.line, info.value.problem) == (line, problem)
    assert listed == delivered
    assert line_reader_calls == ["_read_candles_by_line"] * 3  # read, then feed twice


def test_corrupt_gzip_in_the_middle_is_a_data_error(tmp_path: Path) -> None:
    rows = _candle_rows(ROWS_PAST_ONE_BLOCK)
    whole = write_lines(tmp_path / "c.csv.gz", [CANDLE_HEADER, *rows], gz=True).read_bytes()
    middle = len(whole) // 2
    path = tmp_path / "corrupt.csv.gz"
    path.write_bytes(
        whole[:middle] + bytes(b ^ 0x55 for b in whole[middle : middle + 64]) + whole[middle + 64 :]
    )
    with pytest.raises(DataError) as info:
        list(read_candles(path))
    assert info.value.path == str(path)
    # zlib's message (here a CRC or inflate error), at the first line of the block
    # that could not be read.
    assert info.value.problem.startswith("cannot read file: ")


def test_truncated_gzip_after_the_first_block_is_a_data_error(tmp_path: Path) -> None:
    rows = _candle_rows(ROWS_PAST_ONE_BLOCK)
    whole = write_lines(tmp_path / "c.csv.gz", [CANDLE_HEADER, *rows], gz=True).read_bytes()
    path = tmp_path / "truncated.csv.gz"
    path.write_bytes(whole[: len(whole) * 3 // 4])
    with pytest.raises(DataError) as info:
        list(read_candles(path))
    assert info.value.problem.startswith("cannot read file: ")


def test_lone_carriage_return_is_left_to_the_line_reader(
    tmp_path: Path, line_reader_calls: list[str]
) -> None:
    # pyarrow would end a row at the \r; the line-by-line reader sees 11 columns.
    rows = _candle_rows(3)
    path = tmp_path / "c.csv"
    path.write_bytes((rows[0] + "\r" + rows[1] + "\n" + rows[2] + "\n").encode())
    _assert_error(path, 1, "expected 6 columns, found 11")
    assert line_reader_calls == ["_read_candles_by_line"]


def test_without_pyarrow_the_line_reader_reads_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(*_: Any, **__: Any) -> Iterator[Any]:
        raise columnar.Fallback("pyarrow is not installed")

    monkeypatch.setattr(files, "arrow_batches", missing)
    rows = _candle_rows(100)
    path = write_lines(tmp_path / "c.csv", [CANDLE_HEADER, *rows])
    assert len(list(read_candles(path))) == 100


# -- the two readers agree on anything -------------------------------------------------

_fields = st.sampled_from(
    ["1", "2.5", "0.5", "1e3", " 7", "-1", "0", "nan", "inf", "", "x", "1_0", '"3"', "1.5\r"]
)
_stamps = st.sampled_from(
    [
        "2017-01-01T00:{m:02d}:00Z",
        "2017-01-01T00:{m:02d}:00.250Z",
        "2017-01-01 00:{m:02d}:00Z",
        "2017-01-01T00:{m:02d}:00+00:00",
        "2017-13-01T00:{m:02d}:00Z",
        "2017-01-01T00:{m:02d}:61Z",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 59), _stamps, st.lists(_fields, min_size=4, max_size=6)),
        max_size=12,
    ),
    header=st.booleans(),
    kind=st.sampled_from(["candles", "trades"]),
)
def test_columnar_and_line_readers_agree_on_any_file(
    tmp_path_factory: pytest.TempPathFactory, rows: list[Any], header: bool, kind: str
) -> None:
    lines = [CANDLE_HEADER if kind == "candles" else TRADE_HEADER] if header else []
    for minute, stamp, fields in sorted(rows, key=lambda r: r[0]):
        if kind == "trades":
            fields = [("buy", "sell", "BUY")[minute % 3], *fields[:2]]
        lines.append(",".join([stamp.format(m=minute), *fields]))
    path = write_lines(tmp_path_factory.mktemp("agree") / "f.csv", lines)
    fast = read_candles if kind == "candles" else read_trades
    slow = LINE_CANDLES if kind == "candles" else LINE_TRADES

    def outcome(reader: Any) -> tuple[list[Any], Any]:
        got: list[Any] = []
        try:
            for row in reader(path):
                got.append(row)
        except DataError as exc:
            return got, (exc.line, exc.problem)
        return got, None

    assert outcome(fast) == outcome(slow)


# -- the candles' spacing, for a replay's timeframe check -------------------------------


@pytest.mark.parametrize("columnar_path", [True, False], ids=["columnar", "line-by-line"])
def test_spacing_finds_a_gap_that_is_not_whole_steps_and_stops_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, columnar_path: bool
) -> None:
    if not columnar_path:

        def missing(*_: Any, **__: Any) -> Iterator[Any]:
            raise columnar.Fallback("forced")

        monkeypatch.setattr(files, "arrow_batches", missing)
    minutes = _candle_rows(30_000)  # more than one block of the columnar reader
    odd = (START + timedelta(minutes=30_000, seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [*minutes, f"{odd},1000.5,1010.25,990.75,1000.125,1"]
    path = write_lines(tmp_path / "c.csv", [CANDLE_HEADER, *rows])
    spacing = files.Spacing(60_000)
    seen: list[Any] = []
    files.feed_candles(path, seen.append, spacing)
    assert spacing.misfit == 90_000  # 1.5 steps after the last whole minute
    assert spacing.mismatch() == 90_000
    assert len(seen) <= 30_000  # the odd candle itself is never delivered

    hourly = write_lines(tmp_path / "h.csv", [CANDLE_HEADER, *_candle_rows(500, step_minutes=60)])
    spacing = files.Spacing(60_000)
    seen.clear()
    files.feed_candles(hourly, seen.append, spacing)
    assert (spacing.misfit, spacing.smallest, spacing.mismatch()) == (None, 3_600_000, 3_600_000)
    assert len(seen) == 500  # whole steps: all delivered; the replay refuses it at the end
