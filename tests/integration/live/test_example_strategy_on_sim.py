"""The example strategy package (examples/strategies/hean-rsi) in paper and live mode.

Both run the real service path in-process (`serve`: the node, the control
server, the feed) against the exchange simulator through ccxt's binance
client; the package is installed into a throwaway directory put on sys.path,
so the engine finds `rsi_mean_reversion` only through its entry point.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from live_support import (
    API_KEY,
    FAST_RETRY,
    LiveRun,
    live_spec,
    make_sim,
    run_live,
    until,
)

from hean_contract.spec import EngineIdentity
from hean_engine.app.run import RunOptions, serve
from hean_engine.control.runtime import Runtime
from hean_engine.data.exchange_feed import FeedSettings
from hean_engine.net.exchange import create_client
from strategy_support import RSI_EXAMPLE, install_project

# Short and eager, so that a few hundred candles trade several times.
RSI = {"name": "rsi_mean_reversion", "params": {"period": 3, "oversold": 40, "overbought": 60}}


@pytest.fixture
def rsi_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = install_project(RSI_EXAMPLE, tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))


async def _status(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/status") as response,
    ):
        result: dict[str, Any] = await response.json()
        return result


@pytest.mark.usefixtures("rsi_installed")
async def test_the_example_trades_in_paper_mode(tmp_path: Path) -> None:
    sim = await make_sim(tmp_path)
    spec = live_spec(
        sim.url,
        mode="paper",
        strategy={**RSI, "params": {**RSI["params"], "quantity": "0.01"}},
        paper={"startingBalances": {"USDT": "10000"}},
    )
    client = create_client(spec.exchange)
    client.enableRateLimit = False
    stop = asyncio.Event()
    ready: asyncio.Future[tuple[Runtime, int]] = asyncio.get_running_loop().create_future()
    options = RunOptions(
        host="127.0.0.1",
        port=0,
        feed=FeedSettings(poll_interval=0.01, history=20, close_grace=0.0),
        retry=FAST_RETRY,
        configure_logs=False,
    )
    task = asyncio.create_task(
        serve(
            EngineIdentity(name="rsi-paper"),
            spec,
            options,
            client=client,
            stop=stop,
            on_ready=lambda runtime, port: ready.set_result((runtime, port)),
        )
    )
    try:
        runtime, port = await asyncio.wait_for(asyncio.shield(ready), 30)
        kernel = runtime.kernel
        await until(lambda: len(kernel.fills) >= 4, "four paper fills")
        status = await _status(port)
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        await sim.stop()
    assert type(kernel.strategy).__name__ == "RsiMeanReversion"
    assert status["strategy"] == "rsi_mean_reversion" and status["mode"] == "paper"
    sides = [fill.side.value for fill in kernel.fills]
    # Long only, one position at a time: buys and sells alternate, buying first.
    assert sides[:4] == ["buy", "sell", "buy", "sell"]
    assert kernel.fills[0].quantity == Decimal("0.01")


@pytest.mark.usefixtures("rsi_installed")
async def test_the_example_trades_live_and_the_books_equal_the_exchange(tmp_path: Path) -> None:
    sim = await make_sim(tmp_path)
    spec = live_spec(sim.url, strategy={**RSI, "params": {**RSI["params"], "quantity": "0.01"}})
    run = LiveRun(sim, spec, tmp_path / "journal")
    observed: dict[str, Any] = {}

    async def during(run: LiveRun) -> None:
        assert run.runtime is not None
        kernel = run.runtime.kernel
        await until(lambda: len(kernel.fills) >= 4, "four live fills")
        kernel.pause()
        venue = run.session.venue
        await until(lambda: venue.idle.is_set() and not venue.in_flight, "orders to drain")
        observed["reconcile"] = await run.session.reconcile_once()
        observed["status"] = await _status(run.port)

    try:
        runtime = await run_live(run, during)
    finally:
        await sim.stop()
    assert type(runtime.kernel.strategy).__name__ == "RsiMeanReversion"
    assert observed["reconcile"] == "ok"
    assert observed["status"]["strategy"] == "rsi_mean_reversion"
    ledger = runtime.kernel.ledger
    totals = run.exchange_totals()
    assert ledger.position == totals["BTC"] and ledger.quote == totals["USDT"]
    assert len(runtime.kernel.fills) == len(sim.trades(API_KEY))
