"""`hean engine backtest`: one run of a Backtest, its parameters, data, cache and summary."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine_support import BTCUSD_CANDLES, head_lines, require_shared_file, write_lines
from hean_contract.backtest import (
    ENGINE_WARMUP,
    MAX_WARMUP,
    STATS_FIELDS,
    BacktestStats,
    rfc3339_ms,
)
from hean_engine.app import backtest as bt
from hean_engine.app.assembly import build_simulated_engine
from hean_engine.app.config import load_config
from hean_engine.app.recording import ReplayWindow
from hean_engine.app.replay import replay
from hean_engine.cli import main
from hean_engine.data.exchange_feed import FeedSettings
from hean_engine.data.files import read_candles
from hean_engine.model.errors import ConfigError
from hean_engine.model.money import fmt
from hean_engine.model.timefmt import ms_to_iso

START, END = "2017-01-01T00:00:00Z", "2017-01-02T00:00:00Z"
CONFIG = """\
apiVersion: hean.io/v1alpha1
kind: TradingEngine
metadata: {name: bt}
spec:
  exchange: {id: bitfinex}
  market: {symbol: BTC/USD, timeframe: 1m}
  strategy: {name: ema_cross, params: {fast: 5, slow: 20, quantity: "0.1"}}
  risk: {maxOrderNotional: "100000", maxPositionNotional: "100000",
         maxDailyLoss: "100000", maxDrawdownPct: "90"}
  paper: {startingBalances: {USD: "10000"}, feeRate: "0.001"}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "engine.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def candles(tmp_path: Path) -> Path:
    lines = head_lines(require_shared_file(BTCUSD_CANDLES), 1 + 2 * 1440)
    return write_lines(tmp_path / "candles.csv", lines)


def _options(config: Path, **kwargs: Any) -> bt.RunOptions:
    return bt.RunOptions(
        config=config, start_ms=rfc3339_ms(START), end_ms=rfc3339_ms(END), **kwargs
    )


def test_a_run_picks_its_params_by_index(tmp_path: Path, config: Path, candles: Path) -> None:
    runs = tmp_path / "runs.json"
    runs.write_text(json.dumps([{"fast": 3}, {"fast": 8, "slow": 30}]))
    assert bt.run_params(runs, 1) == {"fast": 8, "slow": 30}
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX: 2 is not one of the 2 runs"):
        bt.run_params(runs, 2)
    runs.write_text('{"fast": 3}')
    with pytest.raises(ConfigError, match=r"--runs: .* must hold a JSON list"):
        bt.run_params(runs, 0)
    _, spec = load_config(config)
    assert bt.with_params(spec, {"fast": 8}).strategy.params["fast"] == 8
    with pytest.raises(ConfigError, match=r"spec.strategy.params.fast: must be less than slow"):
        bt.with_params(spec, {"fast": 40})  # not below slow: refused as the spec would be


def test_the_cli_prints_the_summary_and_leaves_it_as_termination_message(
    tmp_path: Path, config: Path, candles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = tmp_path / "termination-log"
    monkeypatch.setenv("HEAN_TERMINATION_MESSAGE_PATH", str(message))
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    args = ["engine", "backtest", "--config", str(config), "--data", str(candles)]
    args += ["--from", START, "--to", END, "--output-dir", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert message.read_text() == line and len(line.encode()) <= bt.SUMMARY_BYTES
    summary = json.loads(line)
    assert summary["index"] == 0 and summary["report"] == "0.html"
    # the same statistics as `replay --json` over the same range
    replayed = CliRunner().invoke(
        main,
        [
            *("engine", "replay", "--config", str(config), "--data", str(candles)),
            *("--from", START, "--to", END, "--json"),
        ],
    )
    stats = json.loads(replayed.output)["stats"]
    assert summary["stats"] == {k: stats[k] for k in bt.SUMMARY_STATS}
    full = json.loads((tmp_path / "out" / "0.json").read_text())
    assert full["fills"] == stats["fills"]
    assert (tmp_path / "out" / "0.html").read_text().lstrip().lower().startswith("<!doctype html")


def test_the_cli_wants_exactly_one_data_source(config: Path, candles: Path) -> None:
    base = ["engine", "backtest", "--config", str(config), "--from", START, "--to", END]
    both = CliRunner().invoke(main, [*base, "--data", str(candles), "--fetch"])
    assert both.exit_code == 2 and "exactly one of --data and --fetch" in both.output
    neither = CliRunner().invoke(main, base)
    assert neither.exit_code == 2
    backwards = CliRunner().invoke(main, [*base[:-4], "--from", END, "--to", START, "--fetch"])
    assert backwards.exit_code == 2 and "must be later than --from" in backwards.output


class _Exchange:
    """ccxt's fetch_ohlcv over rows, in pages of `limit` (as an exchange serves klines)."""

    def __init__(self, rows: list[list[Any]]) -> None:
        self.rows = rows
        self.calls: list[int] = []

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int, limit: int
    ) -> list[list[Any]]:
        self.calls.append(since)
        return [row for row in self.rows if row[0] >= since][:limit]

    async def close(self) -> None:
        return None


def _rows(path: Path) -> list[list[Any]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        ts, *values = line.split(",")
        rows.append([rfc3339_ms(ts), *(float(v) for v in values)])
    return rows


def test_fetch_pages_through_the_range_only() -> None:
    rows = [[60_000 * i, 1.0, 1.0, 1.0, 1.0, 1.0] for i in range(2500)]
    exchange = _Exchange(rows)
    got = asyncio.run(bt.fetch_ohlcv(exchange, "BTC/USD", "1m", 60_000, 60_000 * 10, 60_000 * 2100))
    assert [r[0] for r in got] == [60_000 * i for i in range(10, 2100)]
    assert exchange.calls == [60_000 * 10, 60_000 * 1010, 60_000 * 2010]


def test_fetched_candles_are_cached_and_replay_as_the_recorded_file(
    tmp_path: Path, config: Path, candles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exchange = _Exchange(_rows(candles))
    monkeypatch.setattr(bt, "create_client", lambda spec: exchange)
    cache = tmp_path / "cache"
    fetched = bt.run_backtest(_options(config, cache_dir=cache), tmp_path)
    recorded = bt.run_backtest(_options(config, data=candles), tmp_path)
    assert fetched["stats"] == recorded["stats"] and fetched["stats"]["fills"] > 0
    _, spec = load_config(config)
    path = bt.cache_path(cache, spec, rfc3339_ms(START), rfc3339_ms(END))
    assert path == cache / "candles/bitfinex/BTC-USD/1m/20170101T000000Z_20170102T000000Z.csv.gz"
    in_range = [r for r in _rows(candles) if r[0] < rfc3339_ms(END)]  # the file has gaps
    assert gzip.decompress(path.read_bytes()).decode().count("\n") == 1 + len(in_range)
    calls = len(exchange.calls)
    again = bt.run_backtest(_options(config, cache_dir=cache), tmp_path)
    assert again["stats"] == fetched["stats"] and len(exchange.calls) == calls  # the cache


def test_the_summary_never_exceeds_a_termination_message() -> None:
    summary = {"orders": 1, "stats": dict.fromkeys(bt.SUMMARY_STATS, "9" * 40)}
    small = bt.summarize_run(3, summary, "3.html", 10)
    assert small["report"] == "3.html"
    huge = bt.summarize_run(3, summary, "x" * 5000, 10)
    assert "report" not in huge
    assert len(json.dumps(huge, separators=(",", ":")).encode()) <= bt.SUMMARY_BYTES


def test_the_summary_carries_every_statistic_of_the_status_model() -> None:
    """SUMMARY_STATS is BacktestStats' fields: a statistic added there is reported."""
    assert bt.SUMMARY_STATS == STATS_FIELDS
    assert set(bt.SUMMARY_STATS) == {field.alias for field in BacktestStats.model_fields.values()}


def test_every_statistic_at_its_widest_still_fits_a_termination_message() -> None:
    """All of BacktestStats' fields, each as wide as a run can make it, with the report
    name kept: the 4 KiB termination message is not what limits adding a statistic."""
    widest: dict[str, Any] = {}
    decimals = []
    for name, field in BacktestStats.model_fields.items():
        key = field.alias or name
        if field.annotation == (int | None):
            widest[key] = 10**18  # a count: far beyond any replay
        elif key != "undefined":
            widest[key] = "-" + "9" * 40 + "." + "9" * 10  # 10 places, as stats round
            decimals.append(key)
    widest["undefined"] = decimals  # every figure undefined at once
    summary = {"orders": 10**18, "stats": {**widest, "notStatus": "1" * 4096}}
    out = bt.summarize_run(999, summary, "999.html", 10**18)
    assert set(out["stats"]) == set(STATS_FIELDS)  # what status has, nothing else
    assert out["report"] == "999.html"
    assert len(json.dumps(out, separators=(",", ":")).encode()) <= bt.SUMMARY_BYTES
    BacktestStats.model_validate(out["stats"])  # as the operator reads it


LATER = "2017-01-01T09:00:00Z"  # 540 candles into the file: history to warm up on


def test_a_warmup_shows_the_strategy_the_candles_before_from_and_trades_none(
    config: Path, candles: Path
) -> None:
    """--warmup N is what a paper node does (app/nodes.py): `kernel.warm_up` with the N
    candles before the first one it trades on, then those candles through the kernel."""
    identity, spec = load_config(config)
    start_ms, end_ms = rfc3339_ms(LATER), rfc3339_ms(END)
    window = ReplayWindow(start_ms, end_ms)
    warmed = replay(identity, spec, candles, window=window, warmup=50).summary
    everything = list(read_candles(candles))
    engine = build_simulated_engine(identity, spec)
    engine.kernel.warm_up(candles=[c for c in everything if c.ts < start_ms][-50:])
    engine.kernel.on_candles([c for c in everything if start_ms <= c.ts < end_ms])
    assert warmed["trades"] == [
        {
            "timestamp": ms_to_iso(f.ts),
            "order_id": f.order_id,
            "side": f.side.value,
            "price": fmt(f.price),
            "quantity": fmt(f.quantity),
            "fee": fmt(f.fee),
        }
        for f in engine.kernel.fills
    ]
    assert warmed["final_equity"] == fmt(engine.ledger.equity)
    first = next(c.ts for c in everything if c.ts >= start_ms)
    assert warmed["first_event_time"] == ms_to_iso(first)  # the books start at --from
    cold = replay(identity, spec, candles, window=window).summary
    assert cold["trades"] != warmed["trades"]  # a cold ema_cross(5, 20) crosses elsewhere
    # at the file's first candle there is nothing to warm up on: a cold start
    at_start = ReplayWindow(rfc3339_ms(START), end_ms)
    assert (
        replay(identity, spec, candles, window=at_start, warmup=200).summary["trades"]
        == replay(identity, spec, candles, window=at_start).summary["trades"]
    )


def test_a_fetched_run_fetches_its_warmup_with_the_range(
    tmp_path: Path, config: Path, candles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exchange = _Exchange(_rows(candles))
    monkeypatch.setattr(bt, "create_client", lambda spec: exchange)
    cache = tmp_path / "cache"
    options = bt.RunOptions(
        config=config,
        start_ms=rfc3339_ms(LATER),
        end_ms=rfc3339_ms(END),
        cache_dir=cache,
        warmup=30,
    )
    fetched = bt.run_backtest(options, tmp_path)
    assert exchange.calls[0] == rfc3339_ms(LATER) - 30 * 60_000
    (path,) = (cache / "candles/bitfinex/BTC-USD/1m").iterdir()
    assert path.name == "20170101T083000Z_20170102T000000Z.csv.gz"
    # an exchange serves a candle every minute, this file has gaps: the warm-up
    # fetched is the candles of the 30 minutes before --from, as many as there are
    start = rfc3339_ms(LATER)
    held = sum(1 for row in _rows(candles) if start - 30 * 60_000 <= row[0] < start)
    assert 0 < held < 30
    recorded = bt.run_backtest(
        bt.RunOptions(
            config=config, start_ms=start, end_ms=rfc3339_ms(END), data=candles, warmup=held
        ),
        tmp_path,
    )
    assert fetched["stats"] == recorded["stats"]


def test_a_warmup_without_a_start_is_refused_naming_the_option(config: Path, candles: Path) -> None:
    args = ["engine", "replay", "--config", str(config), "--data", str(candles), "--warmup", "5"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "'--warmup': only with --from" in refused.output


def test_the_cli_and_the_crd_bound_the_warmup_alike() -> None:
    from hean_engine import cli

    assert cli.MAX_WARMUP == MAX_WARMUP
    assert FeedSettings().history == ENGINE_WARMUP  # a Backtest's default is the engine's
