"""Issue 14, items 13 and 14: every bad input is a clear error (exit 2, no traceback),
and no value is silently read as something else."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from engine_support import CANDLE_HEADER, FakeClock, manifest_dict, spec_dict, write_lines
from hean_contract.spec import parse_spec
from hean_engine.app.config import load_config
from hean_engine.app.exits import user_errors
from hean_engine.cli import main
from hean_engine.data.files import check_readable, read_candles
from hean_engine.execution.journal import FILE_NAME, Journal, JournalCorrupt
from hean_engine.model.errors import ConfigError, DataError
from hean_engine.model.yamltext import dump_yaml, load_one

T0 = datetime(2017, 1, 1, tzinfo=UTC)


def _candles(path: Path, count: int, step: timedelta = timedelta(minutes=1)) -> Path:
    rows = [
        f"{(T0 + i * step).strftime('%Y-%m-%dT%H:%M:%SZ')},100,101,99,100.5,{i % 7 + 1}.25"
        for i in range(count)
    ]
    return write_lines(path, [CANDLE_HEADER, *rows])


def _replay(config: Path, data: Path) -> Result:
    return CliRunner().invoke(
        main, ["engine", "replay", "--config", str(config), "--data", str(data)]
    )


def _config_text(**overrides: object) -> str:
    return yaml.safe_dump(manifest_dict(spec_dict(**overrides), name="inputs"))


def _assert_clear_error(result: Result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not an uncaught exception
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.output


# -- item 13: tracebacks seen, now clear errors ----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"apiVersion: hean.io/v1alpha1\nkind: \xff\xfe\n", "not UTF-8 text (invalid byte"),
        ("apiVersion: hean.io/v1alpha1\n".encode("utf-16"), "the file is UTF-16; save it as UTF-8"),
        (b"spec:\n  risk: " + b"[" * 1000 + b"]" * 1000 + b"\n", "nested deeper than 64 levels"),
        (
            b"spec:\n" + b"".join(b"  " * i + b"a:\n" for i in range(1, 1001)),
            "nested deeper than 64 levels",
        ),
    ],
    ids=["invalid-utf8", "utf16", "flow-1000-deep", "block-1000-deep"],
)
def test_item13_an_unreadable_config_is_exit_2(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    config = tmp_path / "engine.yaml"
    config.write_bytes(content)
    _assert_clear_error(_replay(config, _candles(tmp_path / "c.csv", 3)), expected)


def _corrupt_mid_file(path: Path) -> Path:
    """20,000 candles, gzipped, with 64 bytes in the middle of the stream overwritten."""
    plain = _candles(path.with_suffix(""), 20_000)
    raw = bytearray(gzip.compress(plain.read_bytes(), mtime=0))
    middle = len(raw) // 2
    raw[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    return path


def test_item13_a_gzip_corrupted_mid_file_is_a_data_error(tmp_path: Path) -> None:
    data = _corrupt_mid_file(tmp_path / "candles.csv.gz")
    with pytest.raises(DataError, match="cannot read file: Error -3 while decompressing"):
        list(read_candles(data))
    with pytest.raises(DataError):
        check_readable(data)
    config = tmp_path / "engine.yaml"
    config.write_text(_config_text())
    _assert_clear_error(_replay(config, data), "bad data file: ")


def test_item13_sim_exchange_refuses_a_gzip_corrupted_mid_file(tmp_path: Path) -> None:
    # The simulator loads lazily (8,192 candles at a time): the damage at candle
    # ~10,000 would only surface mid-run; the whole file is checked at start.
    data = _corrupt_mid_file(tmp_path / "candles.csv.gz")
    result = CliRunner().invoke(main, ["sim", "exchange", "--port", "0", "--data", str(data)])
    assert result.exit_code == 2, result.output
    assert "'--data'" in result.output and "cannot read file" in result.output


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"t":"intent","cid":"x1","side":"buy","type":"market","qty":"abc","tag":"","ts":1}',
         "qty: 'abc' is not a decimal"),
        ('{"t":"intent","cid":"x1","side":"buy","type":"market","qty":1.5,"tag":"","ts":1}',
         "qty: expected a decimal string, got float"),
        ('{"t":"intent","cid":"x1","side":"buy","type":"market","qty":"NaN","tag":"","ts":1}',
         "qty: 'NaN' is not a positive decimal"),
        ("[1, 2]", "TypeError"),
    ],
)  # fmt: skip
def test_item13_a_bad_journal_line_is_bad_data_naming_the_line(
    tmp_path: Path, line: str, expected: str
) -> None:
    (tmp_path / FILE_NAME).write_text('{"t":"run","run":"r","ts":1}\n' + line + "\n")
    journal = Journal(tmp_path, FakeClock(0.001), fsync=False)
    with pytest.raises(JournalCorrupt) as info:
        journal.open("r2")
    assert info.value.line == 2 and expected in str(info.value)
    with pytest.raises(SystemExit) as exited, user_errors():
        Journal(tmp_path, FakeClock(0.001), fsync=False).open("r2")
    assert exited.value.code == 2


# -- item 14: no silently wrong values ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "what"),
    [("010", "'010'"), ("1:30", "'1:30'"), ("0b11", "'0b11'"), ("1_000", "'1_000'")],
)
def test_item14_yaml_1_1_only_numbers_are_refused(tmp_path: Path, value: str, what: str) -> None:
    config = tmp_path / "engine.yaml"
    config.write_text(
        _config_text().replace("maxOrderNotional: '1000000'", f"maxOrderNotional: {value}")
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    (problem,) = info.value.problems
    assert f"{what} means different things in YAML 1.1 and 1.2" in problem
    assert "(line " in problem


def test_item14_yaml_1_1_booleans_are_refused() -> None:
    with pytest.raises(ConfigError, match="'on' means different things"):
        load_one("paused: on\n", "x")
    assert load_one("paused: 'on'\nhalt: true\n", "x") == {"paused": "on", "halt": True}


def test_item14_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "engine.yaml"
    config.write_text(_config_text() + "spec: {}\n")
    with pytest.raises(ConfigError, match="duplicate key 'spec'"):
        load_config(config)


def test_item14_money_is_read_exactly_from_its_text(tmp_path: Path) -> None:
    config = tmp_path / "engine.yaml"
    text = _config_text().replace(
        "maxOrderNotional: '1000000'", "maxOrderNotional: 0.12345678901234567890"
    )
    config.write_text(text)
    _, spec = load_config(config)
    assert spec.risk.max_order_notional == Decimal("0.12345678901234567890")
    assert str(spec.risk.max_order_notional) == "0.12345678901234567890"


def test_item14_a_float_that_lost_digits_is_refused() -> None:
    # A float from JSON: 0.12345678901234567890 arrives as 0.12345678901234568.
    with pytest.raises(ConfigError, match="more significant digits than a float holds"):
        parse_spec(spec_dict(risk={"maxOrderNotional": 0.12345678901234567890}))
    assert parse_spec(spec_dict(risk={"maxOrderNotional": 0.01})).risk.max_order_notional == (
        Decimal("0.01")
    )


def test_item14_the_strict_writer_round_trips_what_the_reader_reads() -> None:
    values = {"a": "010", "b": "yes", "c": "1:30", "d": "2026-01-01T00:00:00Z", "e": "1e3"}
    assert load_one(dump_yaml(values), "x") == values
    assert yaml.safe_load(dump_yaml(values)) == values  # and YAML 1.1 readers too


def test_item14_a_timeframe_that_does_not_match_the_data_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "engine.yaml"
    config.write_text(_config_text(market={"symbol": "BTC/USD", "timeframe": "1d"}))
    data = _candles(tmp_path / "c.csv", 10)
    _assert_clear_error(
        _replay(config, data),
        "spec.market.timeframe: 1d does not match " + str(data) + ", whose candles are 1m apart",
    )
    daily = _candles(tmp_path / "d.csv", 10, step=timedelta(days=1))
    config.write_text(_config_text(market={"symbol": "BTC/USD", "timeframe": "1m"}))
    _assert_clear_error(_replay(config, daily), "whose candles are 1d apart")
    config.write_text(_config_text(market={"symbol": "BTC/USD", "timeframe": "1d"}))
    assert _replay(config, daily).exit_code == 0
