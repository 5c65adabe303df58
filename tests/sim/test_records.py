"""The simulator's own reader of recorded data (hean_sim.exchange.records).

It must read what the engine's reader reads, and refuse what it refuses at
the same line: the two readers are independent, so each checks the other.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from sim_support import CANDLES, TRADES, slice_file

from hean_engine.data.files import read_candles as engine_candles
from hean_engine.data.files import read_trades as engine_trades
from hean_engine.model.errors import DataError
from hean_sim.exchange.model import RecordedCandle, RecordedTrade
from hean_sim.exchange.records import (
    RecordError,
    check_readable,
    detect_kind,
    read_candles,
    read_trades,
)

CANDLE_HEADER = "timestamp,open,high,low,close,volume"
TRADE_HEADER = "timestamp,side,price,amount"
GOOD_CANDLE = "2017-01-01T00:00:00Z,10,11,9,10.5,3"
GOOD_TRADE = "2017-01-01T00:00:00.250Z,buy,0.5,2"


def _write(tmp_path: Path, lines: list[str], name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def test_reads_candles_with_or_without_header_and_gzipped(tmp_path: Path) -> None:
    rows = [GOOD_CANDLE, "", "2017-01-01T00:01:00Z,10.5,12,10,11,0"]
    plain = _write(tmp_path, [CANDLE_HEADER, *rows])
    bare = _write(tmp_path, rows, "bare.csv")
    zipped = tmp_path / "data.csv.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    expected = [
        RecordedCandle(1_483_228_800_000, 10.0, 11.0, 9.0, 10.5, 3.0),
        RecordedCandle(1_483_228_860_000, 10.5, 12.0, 10.0, 11.0, 0.0),
    ]
    for path in (plain, bare, zipped):
        assert detect_kind(path) == "candles"
        assert list(read_candles(path)) == expected


def test_reads_trades(tmp_path: Path) -> None:
    path = _write(tmp_path, [TRADE_HEADER, GOOD_TRADE, "2017-01-01T00:00:00.250Z,sell,0.4,1e-3"])
    assert detect_kind(path) == "trades"
    assert list(read_trades(path)) == [
        RecordedTrade(1_483_228_800_250, True, 0.5, 2.0),
        RecordedTrade(1_483_228_800_250, False, 0.4, 0.001),
    ]


def test_reads_the_shared_files_as_the_engine_does(tmp_path: Path) -> None:
    candles = tmp_path / "candles.csv.gz"
    trades = tmp_path / "trades.csv.gz"
    slice_file(CANDLES, candles, 3000)
    slice_file(TRADES, trades, 3000)
    assert [tuple(c) for c in read_candles(candles)] == [
        (c.ts, c.open, c.high, c.low, c.close, c.volume) for c in engine_candles(candles)
    ]
    assert [tuple(t) for t in read_trades(trades)] == [
        (t.ts, t.buyer_taker, t.price, t.amount) for t in engine_trades(trades)
    ]


BAD_CANDLES = {
    "columns": ([GOOD_CANDLE, "2017-01-01T00:01:00Z,1,2,1,2"], 3, "expected 6 columns, found 5"),
    "timestamp": (["2017-13-01T00:00:00Z,10,11,9,10.5,3"], 2, "bad timestamp"),
    "not utc": (["2017-01-01T00:00:00+01:00,10,11,9,10.5,3"], 2, "not in UTC"),
    "underscore": (["2017-01-01T00:00:00Z,1_0,11,9,10.5,3"], 2, "open: not a number: '1_0'"),
    "nan": (["2017-01-01T00:00:00Z,nan,11,9,10.5,3"], 2, "open: not a number"),
    "huge": (["2017-01-01T00:00:00Z,10,1e999,9,10.5,3"], 2, "high: not a finite number"),
    "low": (["2017-01-01T00:00:00Z,0,0,0,0,3"], 2, "low must be positive"),
    "inconsistent": (["2017-01-01T00:00:00Z,12,11,9,10.5,3"], 2, "inconsistent candle"),
    "volume": (["2017-01-01T00:00:00Z,10,11,9,10.5,-3"], 2, "volume must not be negative"),
    "duplicate": ([GOOD_CANDLE, GOOD_CANDLE], 3, "repeats the previous row's"),
    "earlier": (
        ["2017-01-01T00:01:00Z,10,11,9,10.5,3", GOOD_CANDLE],
        3,
        "is earlier than the previous row's",
    ),
    "header only": ([], 1, "no candles"),
}


@pytest.mark.parametrize("case", sorted(BAD_CANDLES))
def test_bad_candles_name_the_line_the_engine_names(tmp_path: Path, case: str) -> None:
    rows, line, problem = BAD_CANDLES[case]
    path = _write(tmp_path, [CANDLE_HEADER, *rows])
    with pytest.raises(RecordError) as refused:
        list(read_candles(path))
    assert refused.value.line == line
    assert problem in refused.value.problem
    assert str(refused.value).startswith(f"{path}:{line}: ")
    with pytest.raises(DataError) as engine:
        list(engine_candles(path))
    assert engine.value.line == line  # the engine's reader refuses the same row


BAD_TRADES = {
    "side": (["2017-01-01T00:00:00Z,BUY,0.5,2"], 2, "side must be 'buy' or 'sell'"),
    "price": (["2017-01-01T00:00:00Z,buy,0,2"], 2, "must be positive"),
    "amount": (["2017-01-01T00:00:00Z,sell,0.5,-1"], 2, "must be positive"),
    "earlier": (
        ["2017-01-01T00:00:01Z,buy,0.5,2", "2017-01-01T00:00:00Z,buy,0.5,2"],
        3,
        "is earlier than the previous row's",
    ),
    "columns": (["2017-01-01T00:00:00Z,buy,0.5"], 2, "expected 4 columns, found 3"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRADES))
def test_bad_trades_name_the_line_the_engine_names(tmp_path: Path, case: str) -> None:
    rows, line, problem = BAD_TRADES[case]
    path = _write(tmp_path, [TRADE_HEADER, *rows])
    with pytest.raises(RecordError) as refused:
        list(read_trades(path))
    assert (refused.value.line, problem in refused.value.problem) == (line, True)
    with pytest.raises(DataError) as engine:
        list(engine_trades(path))
    assert engine.value.line == line


def test_unknown_layouts_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r":1: unrecognised layout"):
        detect_kind(_write(tmp_path, ["a,b,c"]))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(RecordError, match=r":1: file is empty"):
        detect_kind(empty)


def test_a_corrupt_gzip_is_refused_before_serving(tmp_path: Path) -> None:
    good = gzip.compress(("\n".join([CANDLE_HEADER, GOOD_CANDLE] * 2000) + "\n").encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(RecordError, match="cannot read file"):
        check_readable(cut)
    whole = tmp_path / "whole.csv.gz"
    whole.write_bytes(good)
    check_readable(whole)
