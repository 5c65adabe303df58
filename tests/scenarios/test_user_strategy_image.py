"""A user's strategy in a user's image, run by the real operator in the sandbox.

The example package (examples/strategies/hean-rsi) is installed into a virtual
environment that plays the image `registry.example.com/quant/hean-rsi` on the
sandbox's node (`--image-venv`), which also allows that repository in the
chart. A TradingEngine naming the image and `rsi_mean_reversion` becomes
Running, in a pod of that image, and trades on the exchange simulator.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from scenario_support import make_sandbox_scenario, stop_recording

from strategy_support import RSI_EXAMPLE, venv_with_project

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
