"""`hean engine run` as a process: starts against an exchange, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from engine_support import (
    BTCUSD_CANDLES,
    head_lines,
    hean_executable,
    manifest_dict,
    require_shared_file,
    spec_dict,
    write_lines,
)
from hean_sim.exchange import SimConfig, SimExchange

CANARY_TOKEN = "cli-control-canary-5d1e0f"


async def read_json_lines_until(
    stream: asyncio.StreamReader, event: str, into: list[dict[str, Any]]
) -> dict[str, Any]:
    while True:
        raw = await stream.readline()
        if not raw:
            raise AssertionError(f"stream ended before {event!r}: {into}")
        line = json.loads(raw)
        into.append(line)
        if line["event"] == event:
            return line


async def test_engine_run_serves_until_sigterm_then_exits_0(tmp_path: Path) -> None:
    data = write_lines(
        tmp_path / "candles.csv", head_lines(require_shared_file(BTCUSD_CANDLES), 200)
    )
    sim = SimExchange(SimConfig(data=data, symbol="BTC/USDT", speed=None))
    await sim.start(host="127.0.0.1", port=0)
    spec = spec_dict(
        exchange={"id": "binance", "endpoint": sim.url},
        market={"symbol": "BTC/USDT"},
        paper={"startingBalances": {"USDT": "1000"}},
    )
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(manifest_dict(spec, name="cli-engine")))
    token = tmp_path / "token"
    token.write_text(CANARY_TOKEN)
    process = await asyncio.create_subprocess_exec(
        hean_executable(),
        "engine",
        "run",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--control-token-file",
        str(token),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[dict[str, Any]] = []
    try:
        assert process.stderr is not None
        started = await asyncio.wait_for(
            read_json_lines_until(process.stderr, "engine started", lines), 60
        )
        base = f"http://127.0.0.1:{started['port']}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with session.get(f"{base}/status") as response:
                status = await response.json()
            async with session.post(
                f"{base}/control",
                json={"command": "halt"},
                headers={"Authorization": f"Bearer {CANARY_TOKEN}"},
            ) as response:
                assert response.status == 200
        assert status["name"] == "cli-engine"
        assert status["mode"] == "paper"
        process.send_signal(signal.SIGTERM)
        stdout, rest = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await sim.stop()
    assert process.returncode == 0, rest.decode()
    assert stdout == b""
    lines += [json.loads(raw) for raw in rest.decode().splitlines()]
    events = [line["event"] for line in lines]
    assert "engine stopping" in events and events[-1] == "engine stopped"
    assert {line["run_id"] for line in lines} == {started["run_id"]}
    assert any(line.get("detail", "").startswith("HALTED: control command") for line in lines)
    assert CANARY_TOKEN not in json.dumps(lines)
