"""A user's strategy makes the same fills in a Backtest's run as in a paper engine.

The paper engine is the real service path in-process (`serve`: the node, its
feed polling the exchange simulator through ccxt's binance client, the
kernel), trading the example package's `rsi_mean_reversion`, found only
through its entry point. The simulator replays recorded candles on a fake
clock shared with the engine's feed, so every run is the same and nothing
sleeps. Then one run of a Backtest (`run_backtest`, what each Job pod runs)
fetches the same candles from the same simulator through `fetch_ohlcv` for
the range the engine traded, with the engine's warm-up before it, and must
make the engine's fills, one by one (time, order, side, price, quantity,
fee), and end with its equity. A cold start (no warm-up) is the control: it
trades differently, which is why a Backtest warms up as an engine does.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine_support import BTCUSD_CANDLES, FakeClock, head_lines, require_shared_file, write_lines
from hean_contract.backtest import ENGINE_WARMUP
from hean_contract.spec import EngineIdentity, parse_spec
from hean_engine.app.backtest import RunOptions, run_backtest
from hean_engine.app.run import RunOptions as ServeOptions
from hean_engine.app.run import serve
from hean_engine.control.runtime import Runtime
from hean_engine.data.exchange_feed import FeedSettings
from hean_engine.data.files import read_candles
from hean_engine.model.money import fmt
from hean_engine.model.timefmt import ms_to_iso
from hean_engine.net.exchange import create_client
from hean_engine.telemetry.logs import REDACTOR, configure_logging
from hean_sim.exchange import SimConfig, SimExchange
from strategy_support import RSI_EXAMPLE, install_project

MINUTE = 60_000
LIVE_CANDLES = 150  # candles the engine trades on, after its warm-up
HISTORY_MINUTES = ENGINE_WARMUP + 60  # served before the engine starts: more than it warms up on
SPEC: dict[str, Any] = {
    "mode": "paper",
    "market": {"symbol": "BTC/USDT", "timeframe": "1m"},
    "strategy": {
        "name": "rsi_mean_reversion",
        "params": {"period": 3, "oversold": 40, "overbought": 60, "quantity": "0.5"},
    },
    "risk": {
        "maxOrderNotional": "100000",
        "maxPositionNotional": "100000",
        "maxDailyLoss": "100000",
        "maxDrawdownPct": "90",
    },
    "paper": {"startingBalances": {"USDT": "100000"}, "feeRate": "0.001", "slippageBps": "3"},
}


@pytest.fixture
def rsi_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(install_project(RSI_EXAMPLE, tmp_path / "site")))


async def _paper_engine(sim: SimExchange, clock: FakeClock) -> tuple[Runtime, list[Any]]:
    """Run a paper engine on the simulator for LIVE_CANDLES candles; its runtime and candles."""
    spec = parse_spec({**SPEC, "exchange": {"id": "binance", "endpoint": sim.url}})
    client = create_client(spec.exchange)
    client.enableRateLimit = False  # ccxt's limiter sleeps in real time
    stop = asyncio.Event()
    seen: list[Any] = []

    def on_ready(runtime: Runtime, port: int) -> None:
        kernel = runtime.kernel
        original = kernel.on_candle

        def spy(candle: Any) -> None:
            seen.append(candle)
            original(candle)
            if len(seen) >= LIVE_CANDLES:
                stop.set()

        kernel.on_candle = spy  # type: ignore[method-assign]

    options = ServeOptions(
        host="127.0.0.1",
        port=0,
        # one poll a minute: each poll finds the candle that closed since
        feed=FeedSettings(poll_interval=60.0, history=ENGINE_WARMUP),
        configure_logs=False,
    )
    identity = EngineIdentity(name="parity", namespace="default")
    try:
        runtime = await asyncio.wait_for(
            serve(
                identity, spec, options, client=client, stop=stop, on_ready=on_ready, clock=clock
            ),
            120,
        )
    finally:
        REDACTOR.clear()
        configure_logging()
    return runtime, seen


def _backtest(tmp_path: Path, url: str, start_ms: int, end_ms: int, warmup: int) -> dict[str, Any]:
    """One Backtest run over [start, end) with candles fetched from the simulator; its full
    summary (every fill) as the Job writes it to the output volume."""
    manifest = {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": "parity"},
        "spec": {**SPEC, "exchange": {"id": "binance", "endpoint": url}},
    }
    config = tmp_path / f"backtest-{warmup}.yaml"
    config.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    out = tmp_path / f"out-{warmup}"
    options = RunOptions(
        config=config,
        start_ms=start_ms,
        end_ms=end_ms,
        data=None,  # fetch, as `data.fetch` does
        cache_dir=tmp_path / "cache",
        output_dir=out,
        warmup=warmup,
    )
    short = run_backtest(options, tmp_path)
    full: dict[str, Any] = json.loads((out / "0.json").read_text(encoding="utf-8"))
    assert short["stats"]["fills"] == full["fills"]
    return full


def _fills(trades: list[dict[str, str]]) -> list[tuple[str, str, str, Decimal, Decimal, Decimal]]:
    return [
        (
            t["timestamp"],
            t["order_id"],
            t["side"],
            Decimal(t["price"]),
            Decimal(t["quantity"]),
            Decimal(t["fee"]),
        )
        for t in trades
    ]


@pytest.mark.usefixtures("rsi_installed")
async def test_a_backtest_of_the_range_a_paper_engine_traded_makes_its_fills(
    tmp_path: Path,
) -> None:
    lines = head_lines(require_shared_file(BTCUSD_CANDLES), 1 + HISTORY_MINUTES + LIVE_CANDLES + 30)
    data = write_lines(tmp_path / "candles.csv", lines)
    first = next(iter(read_candles(data)))
    started = first.ts / 1000 + HISTORY_MINUTES * 60
    clock = FakeClock(started)
    sim = SimExchange(
        SimConfig(
            data=data,
            symbol="BTC/USDT",
            speed=1.0,
            clock=clock.now,
            start=datetime.fromtimestamp(started, tz=UTC),
        )
    )
    await sim.start(host="127.0.0.1", port=0)
    try:
        runtime, seen = await _paper_engine(sim, clock)
        kernel = runtime.kernel
        start_ms, end_ms = seen[0].ts, seen[-1].ts + MINUTE
        engine_fills = [
            (ms_to_iso(f.ts), f.order_id, f.side.value, f.price, f.quantity, f.fee)
            for f in kernel.fills
        ]
        assert len(engine_fills) >= 10, "too few fills for the comparison to mean much"
        # the engine warmed up on exactly ENGINE_WARMUP candles (more were served)
        warmed = [e.detail for e in kernel.recent_events if e.kind == "warmed_up"]
        assert warmed == [f"{ENGINE_WARMUP} candles, 0 trades of history"]

        backtest = await asyncio.to_thread(
            _backtest, tmp_path, sim.url, start_ms, end_ms, ENGINE_WARMUP
        )
        assert backtest["events"] == len(seen) == LIVE_CANDLES
        assert _fills(backtest["trades"]) == engine_fills  # fill by fill
        assert backtest["final_equity"] == fmt(kernel.ledger.equity)
        assert backtest["starting_equity"] == fmt(kernel.ledger.starting_equity or Decimal(0))
        assert backtest["position"] == fmt(kernel.ledger.position)
        assert backtest["orders"] == kernel.orders_submitted

        # the control: the same range started cold trades otherwise
        cold = await asyncio.to_thread(_backtest, tmp_path, sim.url, start_ms, end_ms, 0)
        assert _fills(cold["trades"]) != engine_fills
    finally:
        await sim.stop()
