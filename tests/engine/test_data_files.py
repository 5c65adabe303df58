"""Recorded market data files: layouts, gzip, headers, gaps, and every malformed case."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from engine_support import (
    CANDLE_HEADER,
    TRADE_HEADER,
    head_lines,
    manifest_dict,
    spec_dict,
    write_lines,
)
from hean_engine.cli import main
from hean_engine.data.files import detect_kind, read_candles, read_trades
from hean_engine.model.errors import DataError
from hean_engine.model.market import Candle, Trade

# 2017-01-01T00:00:00Z and 2017-07-27T00:02:57.956Z in epoch ms
JAN1 = 1_483_228_800_000
JUL27 = 1_501_113_777_956

CANDLE_ROWS = [
    "2017-01-01T00:00:00Z,966.61,966.61,966.61,966.61,1.65",
    "2017-01-01T00:01:00Z,966.62,966.63,966.62,966.63,1.6625",
    # a four-minute gap, then a zero-volume candle
    "2017-01-01T00:05:00Z,967,968.5,965.25,968,0",
]
CANDLES = [
    Candle(JAN1, 966.61, 966.61, 966.61, 966.61, 1.65),
    Candle(JAN1 + 60_000, 966.62, 966.63, 966.62, 966.63, 1.6625),
    Candle(JAN1 + 300_000, 967.0, 968.5, 965.25, 968.0, 0.0),
]
TRADE_ROWS = [
    "2017-07-27T00:02:57.956Z,buy,0.00992,10.0",
    "2017-07-27T00:04:15.124Z,sell,0.009911,42.93",
    # same millisecond: trades only need to be non-decreasing
    "2017-07-27T00:04:15.124Z,buy,0.00993,0.01",
    # a whole second, without milliseconds
    "2017-07-27T00:05:00Z,sell,0.0099,3",
]
TRADES = [
    Trade(JUL27, True, 0.00992, 10.0),
    Trade(JUL27 + 77_168, False, 0.009911, 42.93),
    Trade(JUL27 + 77_168, True, 0.00993, 0.01),
    Trade(JUL27 + 122_044, False, 0.0099, 3.0),
]


def _file(tmp_path: Path, rows: list[str], *, header: str | None, gz: bool = False) -> Path:
    name = "data.csv.gz" if gz else "data.csv"
    return write_lines(tmp_path / name, ([header] if header else []) + rows, gz=gz)


# -- valid files -------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_candles_read_in_every_layout(tmp_path: Path, gz: bool, header: bool) -> None:
    path = _file(tmp_path, CANDLE_ROWS, header=CANDLE_HEADER if header else None, gz=gz)
    assert detect_kind(path) == "candles"
    assert list(read_candles(path)) == CANDLES


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_trades_read_in_every_layout(tmp_path: Path, gz: bool, header: bool) -> None:
    path = _file(tmp_path, TRADE_ROWS, header=TRADE_HEADER if header else None, gz=gz)
    assert detect_kind(path) == "trades"
    assert list(read_trades(path)) == TRADES


def test_crlf_line_ends_blank_lines_and_no_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "candles.csv"
    path.write_bytes(
        (CANDLE_HEADER + "\r\n" + CANDLE_ROWS[0] + "\r\n\r\n" + CANDLE_ROWS[1] + "\r\n").encode()
        + CANDLE_ROWS[2].encode()
    )
    assert list(read_candles(path)) == CANDLES


def test_timestamps_with_utc_offset_and_milliseconds(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        [
            "2017-01-01T00:00:00+00:00,1,1,1,1,1",
            "2017-01-01T00:00:00.5Z,1,1,1,1,1",
            "2018-12-31T23:59:59.999Z,1,1,1,1,1",
        ],
        header=CANDLE_HEADER,
    )
    assert [c.ts for c in read_candles(path)] == [JAN1, JAN1 + 500, 1_546_300_799_999]


def test_gaps_are_kept_as_they_are(tmp_path: Path) -> None:
    rows = [f"2017-01-0{day}T0{hour}:00:00Z,1,2,0.5,1.5,3" for day in (1, 3) for hour in (0, 7)]
    path = _file(tmp_path, rows, header=CANDLE_HEADER)
    hour = 3_600_000
    assert [c.ts - JAN1 for c in read_candles(path)] == [0, 7 * hour, 48 * hour, 55 * hour]


# -- malformed files: file, line and problem -----------------------------------------

GOOD_CANDLE = CANDLE_ROWS[1]  # 2017-01-01T00:01:00Z
BAD_CANDLES: dict[str, tuple[str, str]] = {
    "5 columns": ("2017-01-01T00:02:00Z,1,2,0.5,1", "expected 6 columns, found 5"),
    "7 columns": ("2017-01-01T00:02:00Z,1,2,0.5,1,1,1", "expected 6 columns, found 7"),
    "non-number": ("2017-01-01T00:02:00Z,abc,2,0.5,1,1", "not a number: 'abc'"),
    "empty number": ("2017-01-01T00:02:00Z,1,2,0.5,,1", "not a number: ''"),
    "number with underscore": ("2017-01-01T00:02:00Z,1_0,20,5,10,1", "not a number: '1_0'"),
    "month 13": (
        "2017-13-01T00:02:00Z,1,2,0.5,1,1",
        "bad timestamp '2017-13-01T00:02:00Z': month must be in 1..12",
    ),
    "minute 61": (
        "2017-01-01T00:61:00Z,1,2,0.5,1,1",
        "bad timestamp '2017-01-01T00:61:00Z': minute must be in 0..59",
    ),
    "signed month": (
        "2017-+1-01T00:02:00Z,1,2,0.5,1,1",
        "bad timestamp '2017-+1-01T00:02:00Z': "
        "timestamp '2017-+1-01T00'... is not ISO-8601 (YYYY-MM-DDTHH:MM:SSZ)",
    ),
    "not a timestamp": (
        "yesterday,1,2,0.5,1,1",
        "bad timestamp 'yesterday': Invalid isoformat string: 'yesterday'",
    ),
    "non-UTC offset": (
        "2017-01-01T01:02:00+01:00,1,2,0.5,1,1",
        "bad timestamp '2017-01-01T01:02:00+01:00': timestamp '2017-01-01T01:02:00+01:00' "
        "is not in UTC (expected a 'Z' suffix)",
    ),
    "no offset": (
        "2017-01-01T00:02:00,1,2,0.5,1,1",
        "bad timestamp '2017-01-01T00:02:00': timestamp '2017-01-01T00:02:00' "
        "is not in UTC (expected a 'Z' suffix)",
    ),
    "high below low": (
        "2017-01-01T00:02:00Z,10,9,11,10,1",
        "inconsistent candle: need low <= open, close <= high (o=10.0 h=9.0 l=11.0 c=10.0)",
    ),
    "open above high": (
        "2017-01-01T00:02:00Z,12,11,9,10,1",
        "inconsistent candle: need low <= open, close <= high (o=12.0 h=11.0 l=9.0 c=10.0)",
    ),
    "close below low": (
        "2017-01-01T00:02:00Z,10,11,9,8.5,1",
        "inconsistent candle: need low <= open, close <= high (o=10.0 h=11.0 l=9.0 c=8.5)",
    ),
    "negative low": ("2017-01-01T00:02:00Z,1,2,-1,1,1", "low must be positive, got -1.0"),
    "zero prices": ("2017-01-01T00:02:00Z,0,0,0,0,1", "low must be positive, got 0.0"),
    "negative volume": (
        "2017-01-01T00:02:00Z,1,2,0.5,1,-3",
        "volume must not be negative, got -3.0",
    ),
    "NaN price": (
        "2017-01-01T00:02:00Z,1,nan,0.5,1,1",
        "prices and volume must be finite numbers",
    ),
    "infinite high": (
        "2017-01-01T00:02:00Z,1,inf,0.5,1,1",
        "prices and volume must be finite numbers",
    ),
    "NaN volume": (
        "2017-01-01T00:02:00Z,1,2,0.5,1,nan",
        "prices and volume must be finite numbers",
    ),
    "infinite volume": (
        "2017-01-01T00:02:00Z,1,2,0.5,1,inf",
        "prices and volume must be finite numbers",
    ),
    "duplicate timestamp": (
        "2017-01-01T00:01:00Z,1,2,0.5,1,1",
        "duplicate candle timestamp 2017-01-01T00:01:00Z",
    ),
    "earlier timestamp": (
        "2017-01-01T00:00:30Z,1,2,0.5,1,1",
        "timestamp 2017-01-01T00:00:30Z is earlier than the previous row's 2017-01-01T00:01:00Z",
    ),
}

GOOD_TRADE = TRADE_ROWS[1]  # 2017-07-27T00:04:15.124Z
BAD_TRADES: dict[str, tuple[str, str]] = {
    "3 columns": ("2017-07-27T00:05:00.000Z,buy,0.01", "expected 4 columns, found 3"),
    "5 columns": ("2017-07-27T00:05:00.000Z,buy,0.01,1,x", "expected 4 columns, found 5"),
    "upper-case side": (
        "2017-07-27T00:05:00.000Z,BUY,0.01,1",
        "side must be 'buy' or 'sell', got 'BUY'",
    ),
    "unknown side": (
        "2017-07-27T00:05:00.000Z,hold,0.01,1",
        "side must be 'buy' or 'sell', got 'hold'",
    ),
    "empty side": ("2017-07-27T00:05:00.000Z,,0.01,1", "side must be 'buy' or 'sell', got ''"),
    "non-number price": ("2017-07-27T00:05:00.000Z,buy,x,1", "not a number: 'x'"),
    "non-number amount": ("2017-07-27T00:05:00.000Z,sell,0.01,1.2.3", "not a number: '1.2.3'"),
    "hour 25": (
        "2017-07-27T25:05:00.000Z,buy,0.01,1",
        "bad timestamp '2017-07-27T25:05:00.000Z': hour must be in 0..23",
    ),
    "non-UTC offset": (
        "2017-07-27T00:05:00.000-05:00,buy,0.01,1",
        "bad timestamp '2017-07-27T00:05:00.000-05:00': "
        "timestamp '2017-07-27T00:05:00.000-05:00' is not in UTC (expected a 'Z' suffix)",
    ),
    "negative price": (
        "2017-07-27T00:05:00.000Z,buy,-0.01,1",
        "price and amount must be positive finite numbers, got '-0.01' and '1'",
    ),
    "zero amount": (
        "2017-07-27T00:05:00.000Z,buy,0.01,0",
        "price and amount must be positive finite numbers, got '0.01' and '0'",
    ),
    "NaN price": (
        "2017-07-27T00:05:00.000Z,buy,nan,1",
        "price and amount must be positive finite numbers, got 'nan' and '1'",
    ),
    "infinite amount": (
        "2017-07-27T00:05:00.000Z,sell,0.01,inf",
        "price and amount must be positive finite numbers, got '0.01' and 'inf'",
    ),
    "earlier timestamp": (
        "2017-07-27T00:04:15.123Z,buy,0.01,1",
        "timestamp 2017-07-27T00:04:15.123Z is earlier than the previous row's "
        "2017-07-27T00:04:15.124Z",
    ),
}


def _assert_data_error(path: Path, kind: str, line: int, problem: str) -> None:
    reader = read_candles if kind == "candles" else read_trades
    with pytest.raises(DataError) as info:
        list(reader(path))
    error = info.value
    assert (error.path, error.line, error.problem) == (str(path), line, problem)
    assert str(error) == f"{path}:{line}: {problem}"


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", sorted(BAD_CANDLES))
def test_malformed_candle_names_file_and_line(tmp_path: Path, case: str, gz: bool) -> None:
    row, problem = BAD_CANDLES[case]
    # header, two good rows, the bad row (line 4), and a good row after it
    rows = [CANDLE_ROWS[0], GOOD_CANDLE, row, "2017-01-01T00:09:00Z,1,1,1,1,1"]
    path = _file(tmp_path, rows, header=CANDLE_HEADER, gz=gz)
    _assert_data_error(path, "candles", 4, problem)


@pytest.mark.parametrize("case", ["non-number", "high below low", "earlier timestamp"])
def test_malformed_candle_line_number_without_header(tmp_path: Path, case: str) -> None:
    row, problem = BAD_CANDLES[case]
    path = _file(tmp_path, [CANDLE_ROWS[0], GOOD_CANDLE, row], header=None)
    _assert_data_error(path, "candles", 3, problem)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", sorted(BAD_TRADES))
def test_malformed_trade_names_file_and_line(tmp_path: Path, case: str, gz: bool) -> None:
    row, problem = BAD_TRADES[case]
    rows = [TRADE_ROWS[0], GOOD_TRADE, row, "2017-07-28T00:00:00.000Z,buy,1,1"]
    path = _file(tmp_path, rows, header=TRADE_HEADER, gz=gz)
    _assert_data_error(path, "trades", 4, problem)


@pytest.mark.parametrize("kind", ["candles", "trades"])
@pytest.mark.parametrize("content", ["", "\n\n"], ids=["empty", "blank-lines"])
def test_empty_file_is_an_error(tmp_path: Path, kind: str, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        detect_kind(path)
    assert str(info.value) == f"{path}:1: file is empty"
    _assert_data_error(path, kind, 1, "file is empty")


def test_unrecognised_layout(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "odd.csv", ["a,b,c"])
    with pytest.raises(DataError) as info:
        detect_kind(path)
    assert info.value.line == 1
    assert info.value.problem == (
        "unrecognised layout: expected the header "
        "'timestamp,open,high,low,close,volume' or 'timestamp,side,price,amount'"
    )


def test_trades_file_read_as_candles_fails_on_line_one(tmp_path: Path) -> None:
    path = _file(tmp_path, TRADE_ROWS, header=None)
    _assert_data_error(path, "candles", 1, "expected 6 columns, found 4")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_line_numbers_are_exact_past_the_read_block(tmp_path: Path, gz: bool) -> None:
    # More than the reader's 4 MiB block, with the bad row near the end.
    start = datetime(2017, 1, 1, tzinfo=UTC)
    rows = [CANDLE_HEADER]
    for i in range(80_000):
        stamp = (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},1000.5,1001.25,999.75,1000.125,12.5")
    assert sum(len(r) + 1 for r in rows) > 4 << 20
    rows[79_990] = rows[79_990].rsplit(",", 1)[0]  # drop the volume column
    path = write_lines(tmp_path / ("big.csv.gz" if gz else "big.csv"), rows, gz=gz)
    _assert_data_error(path, "candles", 79_991, "expected 6 columns, found 5")


def test_truncated_gzip_is_a_data_error(tmp_path: Path) -> None:
    rows = [f"2017-01-01T00:{m:02d}:00Z,1,2,0.5,1,1" for m in range(60)]
    whole = _file(tmp_path, rows, header=CANDLE_HEADER, gz=True).read_bytes()
    path = tmp_path / "truncated.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as info:
        list(read_candles(path))
    assert info.value.path == str(path)
    assert info.value.problem.startswith("cannot read file: ")


# -- the shared recorded files ---------------------------------------------------------


def _csv_rows(path: Path, count: int) -> Iterator[list[str]]:
    rows = csv.reader(io.StringIO("\n".join(head_lines(path, count + 1))))
    next(rows)  # header
    return rows


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(text: str) -> int:
    return (datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // timedelta(
        milliseconds=1
    )


def test_shared_candles_match_an_independent_parse(btcusd_candles_file: Path) -> None:
    count = 5000
    expected = list(_csv_rows(btcusd_candles_file, count))
    got = list(itertools.islice(read_candles(btcusd_candles_file), count))
    assert len(got) == len(expected) == count
    gaps = 0
    for candle, (stamp, *numbers) in zip(got, expected, strict=True):
        assert candle.ts == _ms(stamp)
        values = [candle.open, candle.high, candle.low, candle.close, candle.volume]
        # Exact: the double converts back to the decimal text the exchange published.
        assert [Decimal(repr(v)) for v in values] == [Decimal(n) for n in numbers]
    for before, after in itertools.pairwise(got):
        gaps += after.ts - before.ts > 60_000
    assert got[0] == Candle(JAN1, 966.61, 966.61, 966.61, 966.61, 1.65)
    assert gaps == 513  # the shared file keeps its gaps


def test_shared_trades_match_an_independent_parse(bnteth_trades_file: Path) -> None:
    count = 5000
    expected = list(_csv_rows(bnteth_trades_file, count))
    got = list(itertools.islice(read_trades(bnteth_trades_file), count))
    assert len(got) == count
    for trade, (stamp, side, price, amount) in zip(got, expected, strict=True):
        assert trade.ts == _ms(stamp)
        assert trade.side == side
        assert Decimal(repr(trade.price)) == Decimal(price)
        assert Decimal(repr(trade.amount)) == Decimal(amount)
    assert got[0] == Trade(JUL27, True, 0.00992, 10.0)


def test_shared_files_kinds_and_trade_count(
    btcusd_candles_file: Path, bnteth_trades_file: Path
) -> None:
    assert detect_kind(btcusd_candles_file) == "candles"
    assert detect_kind(bnteth_trades_file) == "trades"
    # The whole trades file reads without error (the candle file: see test_replay_e2e).
    assert sum(1 for _ in read_trades(bnteth_trades_file)) == 438_212


# -- through the command line -----------------------------------------------------------

CLI_CASES: list[tuple[str, str]] = [
    ("candles", "5 columns"),
    ("candles", "non-number"),
    ("candles", "non-UTC offset"),
    ("candles", "high below low"),
    ("candles", "NaN price"),
    ("candles", "duplicate timestamp"),
    ("candles", "earlier timestamp"),
    ("trades", "unknown side"),
    ("trades", "negative price"),
    ("trades", "earlier timestamp"),
]


def _config(tmp_path: Path, kind: str) -> Path:
    if kind == "candles":
        spec = spec_dict()
    else:
        spec = spec_dict("market_maker", market={"symbol": "BNT/ETH"}, exchange={"id": "binance"})
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(manifest_dict(spec)), encoding="utf-8")
    return path


def _replay(config: Path, data: Path) -> Any:
    return CliRunner().invoke(
        main, ["engine", "replay", "--config", str(config), "--data", str(data), "--json"]
    )


@pytest.mark.parametrize(("kind", "case"), CLI_CASES)
def test_replay_of_malformed_file_exits_2_naming_file_and_line(
    tmp_path: Path, kind: str, case: str
) -> None:
    if kind == "candles":
        row, problem = BAD_CANDLES[case]
        data = _file(tmp_path, [CANDLE_ROWS[0], GOOD_CANDLE, row], header=CANDLE_HEADER, gz=True)
    else:
        row, problem = BAD_TRADES[case]
        data = _file(tmp_path, [TRADE_ROWS[0], GOOD_TRADE, row], header=TRADE_HEADER, gz=True)
    result = _replay(_config(tmp_path, kind), data)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: bad data file: {data}:4: {problem}\n"


@pytest.mark.parametrize("kind", ["candles", "trades"])
def test_replay_of_empty_file_exits_2(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "empty.csv.gz"
    with gzip.open(data, "wb"):
        pass
    result = _replay(_config(tmp_path, kind), data)
    assert result.exit_code == 2
    assert result.stderr == f"error: bad data file: {data}:1: file is empty\n"


def test_replay_of_missing_file_exits_2(tmp_path: Path) -> None:
    result = _replay(_config(tmp_path, "candles"), tmp_path / "nope.csv")
    assert result.exit_code == 2
    assert result.stderr == f"error: bad data file: {tmp_path / 'nope.csv'}:0: no such file\n"


def test_replay_of_the_wrong_kind_of_data_exits_2(tmp_path: Path) -> None:
    data = _file(tmp_path, TRADE_ROWS, header=TRADE_HEADER)
    result = _replay(_config(tmp_path, "candles"), data)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: invalid configuration:\n"
        f"  spec.strategy.name: ema_cross consumes candles, but {data} holds trades\n"
    )
