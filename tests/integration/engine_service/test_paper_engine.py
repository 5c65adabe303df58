"""A paper engine end to end: the real ccxt binance client against the exchange simulator.

The simulator replays recorded BTC/USD candles on a fake clock shared with the
engine's feed, so the test is exact and never sleeps: every poll the engine
makes moves the clock by its poll interval.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine_support import (
    BTCUSD_CANDLES,
    FakeClock,
    head_lines,
    require_shared_file,
    spec_dict,
    write_lines,
)
from hean_contract.spec import EngineIdentity, parse_spec
from hean_engine.app.run import RunOptions, serve
from hean_engine.control.runtime import Runtime
from hean_engine.data.exchange_feed import FeedSettings
from hean_engine.data.files import read_candles
from hean_engine.net.exchange import create_client
from hean_engine.telemetry.logs import REDACTOR, configure_logging
from hean_sim.exchange import SimConfig, SimExchange

TOKEN = "paper-control-canary-91b2"
CANDLES = 240


def file_candles_first_ts(tmp_path: Path) -> int:
    first = next(iter(read_candles(tmp_path / "candles.csv")))
    return first.ts


def ohlcv(c: Any) -> tuple[float, ...]:
    return (c.open, c.high, c.low, c.close, c.volume)


def paper_spec(endpoint: str) -> dict[str, Any]:
    return spec_dict(
        exchange={"id": "binance", "endpoint": endpoint},
        market={"symbol": "BTC/USDT", "timeframe": "1m"},
        strategy={"params": {"fast": 3, "slow": 8, "quantity": "0.5"}},
        paper={"startingBalances": {"USDT": "100000"}},
    )


async def run_paper(
    tmp_path: Path,
    *,
    until: Callable[[Runtime], bool],
    during: Callable[[Runtime, int], Awaitable[None]] | None = None,
    history: int = 20,
) -> tuple[Runtime, list[Any], str]:
    """Run a paper engine against the simulator until `until(runtime)`; return what it saw."""
    data = write_lines(
        tmp_path / "candles.csv", head_lines(require_shared_file(BTCUSD_CANDLES), CANDLES + 1)
    )
    first = next(iter(read_candles(data)))
    clock = FakeClock(first.ts / 1000 + 30 * 60)  # 30 minutes of data already "happened"
    start = datetime.fromtimestamp(first.ts / 1000 + 30 * 60, tz=UTC)
    sim = SimExchange(
        SimConfig(data=data, symbol="BTC/USDT", speed=1.0, clock=clock.now, start=start)
    )
    await sim.start(host="127.0.0.1", port=0)
    spec = parse_spec(paper_spec(sim.url))
    client = create_client(spec.exchange)
    client.enableRateLimit = False  # ccxt's limiter sleeps in real time
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    logs = io.StringIO()
    configure_logging(stream=logs, engine="paper-test", run_id="r1")
    stop = asyncio.Event()
    seen: list[Any] = []
    ready: asyncio.Future[tuple[Runtime, int]] = asyncio.get_running_loop().create_future()

    def on_ready(runtime: Runtime, port: int) -> None:
        kernel = runtime.kernel
        original = kernel.on_candle

        def spy(candle: Any) -> None:
            seen.append(candle)
            original(candle)
            if until(runtime):
                stop.set()

        kernel.on_candle = spy  # type: ignore[method-assign]
        ready.set_result((runtime, port))

    options = RunOptions(
        host="127.0.0.1",
        port=0,
        control_token_file=token_file,
        feed=FeedSettings(poll_interval=20.0, history=history),
        configure_logs=False,
    )
    identity = EngineIdentity(name="paper-test", namespace="default", generation=3)
    task = asyncio.create_task(
        serve(
            identity,
            spec,
            options,
            client=client,
            stop=stop,
            on_ready=on_ready,
            clock=clock,
        )
    )
    try:
        runtime, port = await asyncio.wait_for(asyncio.shield(ready), 30)
        if during is not None:
            await during(runtime, port)
        result = await asyncio.wait_for(task, 60)
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        await sim.stop()
        REDACTOR.clear()
        configure_logging()
    return result, seen, logs.getvalue()


async def test_paper_engine_trades_each_closed_candle_once(tmp_path: Path) -> None:
    runtime, seen, logs = await run_paper(tmp_path, until=lambda rt: len(rt.kernel.fills) >= 4)
    file_candles = {c.ts: c for c in read_candles(tmp_path / "candles.csv")}
    # Live candles follow the warm-up history without a gap or a repeat, and are
    # exactly the recorded candles (the simulator rebases time, not prices).
    # Like Binance, the simulator reports a quiet minute as a zero-volume candle
    # at the previous close: live candles are one per minute, without a repeat.
    stamps = [c.ts for c in seen]
    assert [b - a for a, b in itertools.pairwise(stamps)] == [60_000] * (len(seen) - 1)
    traded = [c for c in seen if c.volume > 0]
    for quiet in (c for c in seen if c.volume == 0):
        assert quiet.open == quiet.high == quiet.low == quiet.close
    recorded = sorted(file_candles.values(), key=lambda c: c.ts)
    live = [ohlcv(c) for c in traded]
    starts = [
        i for i in range(len(recorded)) if [ohlcv(c) for c in recorded[i : i + len(live)]] == live
    ]
    assert len(starts) == 1, "the live candles are one contiguous run of the recorded ones"
    # the simulator shifts time by a constant, never the spacing
    run = recorded[starts[0] : starts[0] + len(live)]
    assert len({c.ts - r.ts for c, r in zip(traded, run, strict=True)}) == 1
    kernel = runtime.kernel
    assert len(kernel.fills) >= 4
    # Warm-up history: events came only from live candles, the strategy saw 20 more.
    assert kernel.events == len(seen)
    assert runtime.feed is not None and runtime.feed.failures == 0
    lines = [json.loads(line) for line in logs.splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == "engine started"
    assert events[-1] == "engine stopped"
    warmed = [line["detail"] for line in lines if line.get("kind") == "warmed_up"]
    assert warmed == ["20 candles, 0 trades of history"]
    # the first live candle is the one right after the last history candle
    assert seen[0].ts == file_candles_first_ts(tmp_path) + 30 * 60_000
    assert all(line["engine"] == "paper-test" and line["run_id"] == "r1" for line in lines)


async def test_paper_engine_serves_status_and_obeys_control(tmp_path: Path) -> None:
    observed: dict[str, Any] = {}

    async def during(runtime: Runtime, port: int) -> None:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/readyz") as response:
                observed["ready_status"] = response.status
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.post(
                f"{base}/control", json={"command": "pause"}, headers=headers
            ) as response:
                observed["pause"] = await response.json()
            async with session.get(f"{base}/status") as response:
                observed["status"] = await response.json()
            async with session.get(f"{base}/metrics") as response:
                observed["metrics"] = await response.text()

    runtime, _, logs = await run_paper(
        tmp_path, until=lambda rt: rt.kernel.events >= 60, during=during
    )
    status = observed["status"]
    assert observed["ready_status"] == 200  # history fetched: data flows
    assert observed["pause"]["paused"] is True
    assert status["paused"] is True
    assert status["generation"] == 3
    assert status["symbol"] == "BTC/USDT"
    assert status["mode"] == "paper"
    # Paused from (almost) the start: the strategy's intents are refused as "paused".
    assert runtime.kernel.orders_submitted == 0
    assert runtime.kernel.risk.rejections.get("paused", 0) >= 1
    assert "hean_engine_info{" in observed["metrics"]
    for surface in (json.dumps(status), observed["metrics"], logs):
        assert TOKEN not in surface


async def test_unknown_symbol_fails_start_up_naming_the_field(tmp_path: Path) -> None:
    from hean_engine.model.errors import ConfigError

    data = write_lines(
        tmp_path / "candles.csv", head_lines(require_shared_file(BTCUSD_CANDLES), 50)
    )
    sim = SimExchange(SimConfig(data=data, symbol="BTC/USDT"))
    await sim.start(host="127.0.0.1", port=0)
    try:
        raw = paper_spec(sim.url)
        raw["market"]["symbol"] = "ETH/USDT"
        spec = parse_spec(raw)
        client = create_client(spec.exchange)
        client.enableRateLimit = False
        with pytest.raises(ConfigError) as info:
            await serve(
                EngineIdentity(),
                spec,
                RunOptions(host="127.0.0.1", port=0, configure_logs=False),
                client=client,
                stop=asyncio.Event(),
            )
        assert info.value.problems == ["spec.market.symbol: ETH/USDT is not a market on binance"]
    finally:
        await sim.stop()


async def test_an_unreachable_exchange_fails_start_up_after_retries() -> None:
    from hean_engine.model.errors import HeanError

    raw = paper_spec("http://127.0.0.1:9")  # nothing listens on the discard port
    spec = parse_spec(raw)
    client = create_client(spec.exchange)
    client.enableRateLimit = False
    clock = FakeClock()
    with pytest.raises(HeanError) as info:
        await serve(
            EngineIdentity(),
            spec,
            RunOptions(host="127.0.0.1", port=0, configure_logs=False),
            client=client,
            stop=asyncio.Event(),
            clock=clock,
        )
    assert str(info.value).startswith("cannot load binance's markets: ")
    assert str(info.value).endswith("after retries")
    assert len(clock.sleeps) == 5  # six attempts
