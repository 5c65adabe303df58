"""End to end: `hean engine replay --json` against an independent computation.

The reference below re-implements ema_cross from its documented semantics
(docs/strategies.md) with nothing from the engine: its own CSV parsing, its
own EMA loop, its own next-open fills with slippage and fees in Decimal.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine_support import (
    CANDLE_HEADER,
    EXAMPLES_DIR,
    REPO_ROOT,
    TRADE_HEADER,
    head_lines,
    hean_executable,
    manifest_dict,
    run_hean,
    spec_dict,
    write_lines,
)

D = Decimal
ZERO = Decimal(0)
MONEY = re.compile(r"^-?\d+(\.\d+)?$")
TIMING_KEYS = ("wall_seconds", "events_per_second")
SUMMARY_KEYS = {
    "events",
    "orders",
    "fills",
    "fees",
    "final_equity",
    "pnl",
    "max_drawdown",
    "wall_seconds",
    "events_per_second",
    "trades",
}


# -- the independent reference -------------------------------------------------------------


@dataclass
class Reference:
    events: int = 0
    trades: list[tuple[str, str, Decimal, Decimal, Decimal]] = field(default_factory=list)
    fees: Decimal = ZERO
    starting_equity: Decimal = ZERO
    final_equity: Decimal = ZERO
    max_drawdown: Decimal = ZERO
    position: Decimal = ZERO
    quote: Decimal = ZERO


def _rows(path: Path) -> Iterator[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as stream:
        for row in csv.reader(stream):
            if row and row[0] != "timestamp":
                yield row


def reference_ema_cross(
    path: Path,
    *,
    fast: int,
    slow: int,
    quantity: Decimal,
    fee_rate: Decimal,
    slippage_bps: Decimal,
    quote: Decimal,
    base: Decimal = ZERO,
) -> Reference:
    ref = Reference(quote=quote, position=base)
    fast_alpha, slow_alpha = 2 / (fast + 1), 2 / (slow + 1)
    fast_ema = slow_ema = 0.0
    relation = 0
    pending: str | None = None
    peak: Decimal | None = None
    close_text = ""

    def value(equity: Decimal) -> None:
        nonlocal peak
        if peak is None:
            ref.starting_equity = peak = equity
        peak = max(peak, equity)
        ref.max_drawdown = max(ref.max_drawdown, peak - equity)

    for stamp, open_text, _high, _low, close_text, _volume in _rows(path):
        ref.events += 1
        if ref.events == 1:
            value(ref.quote + ref.position * D(close_text))
        # 1. the order from the previous candle's signal fills at this candle's open
        if pending is not None:
            move = slippage_bps / 10_000
            if pending == "buy":
                price, qty = D(open_text) * (1 + move), quantity
            else:
                price, qty = D(open_text) * (1 - move), ref.position
            fee = price * qty * fee_rate
            if pending == "buy":
                ref.quote -= price * qty + fee
                ref.position += qty
            else:
                ref.quote += price * qty - fee
                ref.position -= qty
            assert ref.quote >= 0
            ref.fees += fee
            ref.trades.append((stamp, pending, price, qty, fee))
            value(ref.quote + ref.position * price)
            pending = None
        # 2. valued at the close while holding
        if ref.position:
            value(ref.quote + ref.position * D(close_text))
        # 3. the strategy: both EMAs seeded with the first close
        x = float(close_text)
        if ref.events == 1:
            fast_ema = slow_ema = x
        else:
            fast_ema = fast_alpha * x + (1 - fast_alpha) * fast_ema
            slow_ema = slow_alpha * x + (1 - slow_alpha) * slow_ema
        now = (fast_ema > slow_ema) - (fast_ema < slow_ema)
        if now != relation and ref.events >= slow:
            if now > 0 and ref.position == 0:
                pending = "buy"
            elif now < 0 and ref.position > 0:
                pending = "sell"
        relation = now
    ref.final_equity = ref.quote + ref.position * D(close_text) if ref.position else ref.quote
    return ref


# -- running the command line -------------------------------------------------------------------


def _replay_json(config: Path, data: Path) -> dict[str, Any]:
    done = run_hean("engine", "replay", "--config", config, "--data", data, "--json")
    assert done.returncode == 0, done.stderr
    return _one_json_object(done.stdout, done.stderr)


def _one_json_object(stdout: str, stderr: str) -> dict[str, Any]:
    assert stderr == ""
    assert stdout.endswith("\n") and stdout.count("\n") == 1
    summary, end = json.JSONDecoder().raw_decode(stdout)
    assert stdout[end:] == "\n"
    assert isinstance(summary, dict)
    return summary


def _without_timing(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


def _assert_matches_reference(summary: dict[str, Any], ref: Reference) -> None:
    got = [
        (t["timestamp"], t["side"], D(t["price"]), D(t["quantity"]), D(t["fee"]))
        for t in summary["trades"]
    ]
    assert len(got) == len(ref.trades)
    for i, (mine, theirs) in enumerate(zip(got, ref.trades, strict=True)):
        assert mine == theirs, f"trade {i}"
    assert summary["events"] == ref.events
    assert summary["fills"] == summary["orders"] == len(ref.trades)
    assert summary["rejections"] == {}
    assert D(summary["fees"]) == ref.fees
    assert D(summary["starting_equity"]) == ref.starting_equity
    assert D(summary["final_equity"]) == ref.final_equity
    assert D(summary["pnl"]) == ref.final_equity - ref.starting_equity
    assert D(summary["max_drawdown"]) == ref.max_drawdown
    assert D(summary["position"]) == ref.position


def _assert_summary_shape(summary: dict[str, Any]) -> None:
    assert set(summary) >= SUMMARY_KEYS
    for key in ("fees", "final_equity", "pnl", "max_drawdown", "starting_equity", "position"):
        assert isinstance(summary[key], str) and MONEY.match(summary[key]), key
    for key in ("events", "orders", "fills"):
        assert isinstance(summary[key], int)
    assert isinstance(summary["wall_seconds"], float) and summary["wall_seconds"] > 0
    assert isinstance(summary["events_per_second"], float)
    for row in summary["trades"]:
        assert {"timestamp", "side", "price", "quantity", "fee"} <= set(row)
        assert row["side"] in ("buy", "sell")
        datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
        for key in ("price", "quantity", "fee"):
            assert isinstance(row[key], str) and MONEY.match(row[key]), (key, row)
    assert all(MONEY.match(v) for v in summary["balances"].values())


# -- (a) a slice of the shared candles -------------------------------------------------------

SLICE_PARAMS = {"fast": 5, "slow": 20, "quantity": "0.05"}
SLICE_PAPER = {"startingBalances": {"USD": "5000"}, "feeRate": "0.002", "slippageBps": "7"}


@pytest.fixture(scope="module")
def candle_slice(tmp_path_factory: pytest.TempPathFactory, btcusd_candles_file: Path) -> Path:
    """The first 30,000 candles of the shared file (with gaps), as a plain CSV."""
    lines = head_lines(btcusd_candles_file, 30_001)
    assert lines[0] == CANDLE_HEADER
    return write_lines(tmp_path_factory.mktemp("slice") / "btcusd-slice.csv", lines)


@pytest.fixture(scope="module")
def candle_slice_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = spec_dict(
        strategy={"params": SLICE_PARAMS},
        paper=SLICE_PAPER,
        risk={"maxOrdersPerMinute": 30, "maxOpenOrders": 4},
    )
    path = tmp_path_factory.mktemp("config") / "slice.yaml"
    path.write_text(yaml.safe_dump(manifest_dict(spec, name="slice")), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def candle_slice_summary(candle_slice: Path, candle_slice_config: Path) -> dict[str, Any]:
    return _replay_json(candle_slice_config, candle_slice)


def test_slice_replay_matches_the_independent_computation(
    candle_slice: Path, candle_slice_summary: dict[str, Any]
) -> None:
    ref = reference_ema_cross(
        candle_slice,
        fast=5,
        slow=20,
        quantity=D("0.05"),
        fee_rate=D("0.002"),
        slippage_bps=D(7),
        quote=D(5000),
    )
    assert ref.events == 30_000
    assert len(ref.trades) > 500  # enough crossings to mean something
    _assert_matches_reference(candle_slice_summary, ref)
    assert candle_slice_summary["engine"] == "slice"
    assert candle_slice_summary["first_event_time"] == "2017-01-01T00:00:00Z"


def test_json_output_is_one_object_with_decimal_strings(
    candle_slice_summary: dict[str, Any],
) -> None:
    _assert_summary_shape(candle_slice_summary)
    first = candle_slice_summary["trades"][0]
    assert set(first) == {"timestamp", "order_id", "side", "price", "quantity", "fee"}
    assert first["side"] == "buy" and first["quantity"] == "0.05"


def test_replay_is_deterministic(
    candle_slice: Path, candle_slice_config: Path, candle_slice_summary: dict[str, Any]
) -> None:
    again = _replay_json(candle_slice_config, candle_slice)
    assert _without_timing(again) == _without_timing(candle_slice_summary)
    assert set(again) - set(_without_timing(again)) == set(TIMING_KEYS)


def test_gzipped_slice_gives_the_same_result(
    tmp_path: Path,
    candle_slice: Path,
    candle_slice_config: Path,
    candle_slice_summary: dict[str, Any],
) -> None:
    lines = candle_slice.read_text(encoding="utf-8").splitlines()[:5001]
    plain = write_lines(tmp_path / "head.csv", lines[1:])  # and without the header
    gz = write_lines(tmp_path / "head.csv.gz", lines, gz=True)
    from_plain = _without_timing(_replay_json(candle_slice_config, plain))
    from_gz = _without_timing(_replay_json(candle_slice_config, gz))
    assert from_plain == from_gz
    assert from_gz["events"] == 5000
    head = [t for t in candle_slice_summary["trades"] if t["timestamp"] < lines[-1][:20]]
    assert from_gz["trades"][: len(head)] == head


# -- (b) the whole shared candle file with the example manifest ----------------------------


@pytest.mark.slow
def test_full_file_replay_matches_the_independent_computation(btcusd_candles_file: Path) -> None:
    config = EXAMPLES_DIR / "replay-btcusd.yaml"
    # The replay runs in a subprocess while the reference is computed here.
    process = subprocess.Popen(
        [
            hean_executable(),
            "engine",
            "replay",
            "--config",
            str(config),
            "--data",
            str(btcusd_candles_file),
            "--json",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        spec = yaml.safe_load(config.read_text(encoding="utf-8"))["spec"]
        params, paper = spec["strategy"]["params"], spec["paper"]
        ref = reference_ema_cross(
            btcusd_candles_file,
            fast=int(params["fast"]),
            slow=int(params["slow"]),
            quantity=D(str(params["quantity"])),
            fee_rate=D(str(paper["feeRate"])),
            slippage_bps=D(str(paper["slippageBps"])),
            quote=D(str(paper["startingBalances"]["USD"])),
        )
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    summary = _one_json_object(stdout, stderr)
    assert ref.events == 1_025_708
    _assert_matches_reference(summary, ref)
    _assert_summary_shape(summary)
    assert summary["first_event_time"] == "2017-01-01T00:00:00Z"
    assert summary["last_event_time"] == "2018-12-31T23:59:00Z"
    assert summary["risk_state"] == "ACTIVE"


# -- market_maker on a slice of the shared trades -------------------------------------------


@pytest.fixture(scope="module")
def trade_slice(tmp_path_factory: pytest.TempPathFactory, bnteth_trades_file: Path) -> Path:
    lines = head_lines(bnteth_trades_file, 40_001)
    assert lines[0] == TRADE_HEADER
    return write_lines(tmp_path_factory.mktemp("trades") / "bnteth-slice.csv.gz", lines, gz=True)


def test_market_maker_replay_on_a_trade_slice(trade_slice: Path) -> None:
    config = EXAMPLES_DIR / "replay-bnteth-mm.yaml"
    summary = _replay_json(config, trade_slice)
    again = _replay_json(config, trade_slice)
    assert _without_timing(again) == _without_timing(summary)
    _assert_summary_shape(summary)
    assert summary["events"] == 40_000
    assert summary["starting_equity"] == "10"

    # Prints per timestamp, to check each fill against the trades that could have made it.
    prints: dict[str, list[Decimal]] = {}
    last_price = D(0)
    for stamp, _side, price_text, _amount in _rows(trade_slice):
        key = stamp.replace(".000Z", "Z")
        prints.setdefault(key, []).append(D(price_text))
        last_price = D(price_text)

    eth, bnt, fees = D(10), D(0), D(0)
    sides: set[str] = set()
    for row in summary["trades"]:
        price, qty, fee = D(row["price"]), D(row["quantity"]), D(row["fee"])
        assert fee == price * qty * D("0.001")
        assert price % D("0.000001") == 0  # the tick size
        sides.add(row["side"])
        if row["side"] == "buy":
            assert min(prints[row["timestamp"]]) < price  # a print strictly through the bid
            eth -= price * qty + fee
            bnt += qty
        else:
            assert max(prints[row["timestamp"]]) > price
            eth += price * qty - fee
            bnt -= qty
        fees += fee
        assert eth >= 0 and 0 <= bnt <= D(200)  # balances and maxPosition, after every fill
    assert sides == {"buy", "sell"}
    assert summary["fills"] == len(summary["trades"]) > 100
    assert summary["balances"] == {"BNT": _fmt(bnt), "ETH": _fmt(eth)}
    assert D(summary["fees"]) == fees
    assert D(summary["position"]) == bnt
    final = eth + bnt * last_price if bnt else eth
    assert D(summary["final_equity"]) == final
    assert D(summary["pnl"]) == final - D(10)
    assert sum(summary["orders_by_status"].values()) <= summary["orders"]


def _fmt(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
