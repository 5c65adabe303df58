"""A user's strategy in a user's image, run by the real operator in the sandbox.

The example package (examples/strategies/hean-rsi) is installed into a virtual
environment that plays the image `registry.example.com/quant/hean-rsi` on the
sandbox's node (`--image-venv`), which also allows that repository in the
chart. A TradingEngine naming the image and `rsi_mean_reversion` becomes
Running, in a pod of that image, and trades on the exchange simulator; a
Backtest in the same image over the range the engine traded makes its fills.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from scenario_support import Scenario, make_sandbox_scenario, stop_recording
from test_backtests import _volume
from test_kubectl_hean import hean

from hean_engine.model.timefmt import ms_to_iso
from strategy_support import RSI_EXAMPLE, venv_with_project

MINUTE = 60_000
REPOSITORY = "registry.example.com/quant/hean-rsi"
RSI = {
    "name": "rsi_mean_reversion",
    "params": {"period": 3, "oversold": 45, "overbought": 55, "quantity": "0.01"},
}


async def test_an_engine_runs_a_users_strategy_from_its_image(tmp_path: Path) -> None:
    venv = await asyncio.to_thread(venv_with_project, RSI_EXAMPLE, tmp_path)
    scenario, recorder = await make_sandbox_scenario(tmp_path, image_venvs={REPOSITORY: venv})
    try:
        await scenario.apply(scenario.engine("rsi", image=f"{REPOSITORY}:1.0", strategy=RSI))
        await scenario.wait("tradingengine/rsi", "condition=Ready")
        pod = await scenario.get("pod", "rsi-engine")
        assert pod["spec"]["containers"][0]["image"] == f"{REPOSITORY}:1.0"
        # It trades: a paper account's equity moves off its starting balance only
        # through fills (the simulator replays a candle a second).
        await scenario.wait("tradingengine/rsi", "jsonpath={.status.phase}=Running", limit="60s")
        for _ in range(120):
            status = (await scenario.get("tradingengine", "rsi"))["status"]
            if status.get("equity") not in (None, "100000"):
                break
            await asyncio.sleep(1)
        assert status["equity"] != "100000", status
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions["SpecValid"] == "True" and conditions["Ready"] == "True"
    finally:
        await stop_recording(recorder)
        if scenario.box is not None:
            await scenario.box.stop()


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def _history(scenario: Scenario, what: str, engine: str) -> list[dict[str, Any]]:
    """`kubectl hean trades|pnl ENGINE -o json`: the engine's durable books, every page."""
    run = await hean(scenario.kubeconfig, what, engine, "-n", scenario.namespace, "-o", "json")
    assert run.returncode == 0, run.stderr
    rows: list[dict[str, Any]] = run.json()  # type: ignore[assignment]
    return rows


async def test_a_backtest_in_the_users_image_makes_the_fills_its_engine_made(
    tmp_path: Path,
) -> None:
    """The Done-when of issue 16: the same user's code, in the same image, makes the same
    fills in a Backtest (a Job on the real control plane) as in a paper TradingEngine.

    The engine trades the exchange simulator's candles (its paper feed, after warming up
    on the candles served before it started); the Backtest fetches the same candles from
    the same simulator (`data.fetch`) for the range the engine traded, its warm-up
    (default 200, the engine's) before it. Fill by fill (time, order, side, price,
    quantity, fee) from the engine's history and the Backtest's full summary on its
    output volume, and the equity at the range's end."""
    venv = await asyncio.to_thread(venv_with_project, RSI_EXAMPLE, tmp_path)
    scenario, recorder = await make_sandbox_scenario(tmp_path, image_venvs={REPOSITORY: venv})
    try:
        assert scenario.exchange_url is not None
        engine = scenario.engine("rsi", image=f"{REPOSITORY}:1.0", strategy=RSI)
        await scenario.apply(engine)
        await scenario.wait("tradingengine/rsi", "condition=Ready")
        # at 60x the simulator serves a candle a second: wait for enough fills
        for _ in range(240):
            fills = await _history(scenario, "trades", "rsi")
            if len(fills) >= 8:
                break
            await asyncio.sleep(1)
        assert len(fills) >= 8, fills
        # The range: from the first candle the engine traded on to the close of the
        # latest one its history valued (each candle's point is written after the
        # fills at its open, so every fill before that close is there when read after).
        points = await _history(scenario, "pnl", "rsi")
        start_ms, end_ms = _ms(points[0]["time"]) - MINUTE, _ms(points[-1]["time"])
        fills = [f for f in await _history(scenario, "trades", "rsi") if _ms(f["time"]) < end_ms]
        assert len(fills) >= 8
        assert {f["runId"] for f in fills} == {fills[0]["runId"]}  # one run: no restart

        await _volume(scenario, "results", tmp_path / "results")
        spec = engine["spec"]
        backtest = {
            "apiVersion": "hean.io/v1alpha1",
            "kind": "Backtest",
            "metadata": {"name": "rsi-parity"},
            "spec": {
                "image": f"{REPOSITORY}:1.0",
                "exchange": {"id": "binance", "endpoint": scenario.exchange_url},
                **{key: spec[key] for key in ("market", "strategy", "risk", "paper")},
                "from": ms_to_iso(start_ms),
                "to": ms_to_iso(end_ms),
                "data": {"fetch": {}},
                "output": {"claimName": "results"},
            },
        }
        await scenario.apply(backtest)
        await scenario.wait("backtest/rsi-parity", "jsonpath={.status.phase}=Succeeded")
        status = (await scenario.get("backtest", "rsi-parity"))["status"]
        pods = (
            await scenario.kubectl(
                "get",
                "pods",
                "-l",
                "batch.kubernetes.io/job-name=rsi-parity-backtest",
                "-o",
                "json",
            )
        ).json()["items"]
        assert [p["spec"]["containers"][0]["image"] for p in pods] == [f"{REPOSITORY}:1.0"]
        full = json.loads(
            (tmp_path / "results" / status["report"]["path"]).with_suffix(".json").read_text()
        )
        assert [
            (
                _ms(f["time"]),
                f["clientOrderId"],
                f["side"],
                Decimal(f["price"]),
                Decimal(f["quantity"]),
                Decimal(f["fee"]),
            )
            for f in fills
        ] == [
            (
                _ms(t["timestamp"]),
                t["order_id"],
                t["side"],
                Decimal(t["price"]),
                Decimal(t["quantity"]),
                Decimal(t["fee"]),
            )
            for t in full["trades"]
        ]
        assert status["stats"]["fills"] == len(fills)
        assert Decimal(full["final_equity"]) == Decimal(points[-1]["equity"])
        assert full["events"] == len(points)  # one candle per point: the same candles
    finally:
        await stop_recording(recorder)
        if scenario.box is not None:
            await scenario.box.stop()
