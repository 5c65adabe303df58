"""A paper engine killed mid-trading and restarted with a changed spec keeps every fill
and continues its account: real `hean engine run` processes on the exchange simulator."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime
from decimal import Decimal
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
    run_hean,
    spec_dict,
    write_lines,
)
from hean_sim.exchange import SimConfig, SimExchange

TOKEN = "history-restart-canary-0b7e55"
START = Decimal(100000)


class EngineProcess:
    """`hean engine run --history ...` with its JSON log lines collected from stderr."""

    def __init__(self, tmp_path: Path, config: Path, *extra: str) -> None:
        self.args = [
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
            str(tmp_path / "token"),
            "--history",
            str(tmp_path / "volume"),
            *extra,
        ]
        self.lines: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

    async def read_until(self, done: Any, what: str) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            async with asyncio.timeout(90):
                while not done(self.lines):
                    raw = await self.proc.stderr.readline()
                    if not raw:
                        raise AssertionError(f"the engine exited before {what}: {self.lines[-5:]}")
                    self.lines.append(json.loads(raw))
        except TimeoutError:
            raise AssertionError(f"no {what} in 90 s: {self.lines[-5:]}") from None

    async def rest(self) -> None:
        """Every line the process wrote before it ended."""
        assert self.proc is not None and self.proc.stderr is not None
        for raw in (await self.proc.stderr.read()).splitlines():
            self.lines.append(json.loads(raw))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["event"] == name]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.events('engine started')[0]['port']}"

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def all_pages(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "1000"} | ({"cursor": cursor} if cursor else {})
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(url, params=params, headers=headers) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
        items += body["items"]
        cursor = body["nextCursor"]
        if cursor is None:
            return items


def balances_after(fills: list[dict[str, Any]]) -> dict[str, Decimal]:
    """The paper account the recorded fills lead to, from the starting balance."""
    usdt, btc = START, Decimal(0)
    for f in fills:
        notional = Decimal(f["price"]) * Decimal(f["quantity"])
        assert f["feeCurrency"] == "USDT"
        if f["side"] == "buy":
            usdt -= notional + Decimal(f["fee"])
            btc += Decimal(f["quantity"])
        else:
            usdt += notional - Decimal(f["fee"])
            btc -= Decimal(f["quantity"])
    return {"BTC": btc, "USDT": usdt}


def write_config(tmp_path: Path, sim: SimExchange, name: str, **changes: Any) -> Path:
    spec = spec_dict(
        exchange={"id": "binance", "endpoint": sim.url},
        market={"symbol": "BTC/USDT", "timeframe": "1m"},
        strategy={"params": {"fast": 2, "slow": 4, "quantity": "0.5"}},
        paper={"feeRate": "0.001"},
        **changes,
    )
    spec["paper"]["startingBalances"] = {"USDT": str(START)}
    config = tmp_path / name
    config.write_text(yaml.safe_dump(manifest_dict(spec, name="paper-history")))
    return config


async def test_a_killed_paper_engine_keeps_every_fill_and_continues_its_account(
    tmp_path: Path,
) -> None:
    data = write_lines(
        tmp_path / "candles.csv", head_lines(require_shared_file(BTCUSD_CANDLES), 3001)
    )
    # Five minutes of data a wall second, from 4 hours into the file (the warm-up's
    # history lies before it); served times are rebased onto the wall clock.
    start = datetime(2017, 1, 1, 4, tzinfo=UTC)  # the file starts at 2017-01-01T00:00Z
    sim = SimExchange(SimConfig(data=data, symbol="BTC/USDT", speed=300.0, start=start))
    await sim.start(host="127.0.0.1", port=0)
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "volume").mkdir()
    first = EngineProcess(
        tmp_path, write_config(tmp_path, sim, "first.yaml"), "--history-books-days", "400"
    )
    second = EngineProcess(tmp_path, write_config(tmp_path, sim, "second.yaml", paused=True))
    try:
        await first.start()
        await first.read_until(lambda lines: sum(x["event"] == "fill" for x in lines) >= 3, "fills")
        await first.kill()  # SIGKILL while trading: no shutdown, no flush
        await first.rest()
        logged = first.events("fill")

        # A changed spec (paused, another strategy parameter) on the same volume.
        await second.start()
        await second.read_until(
            lambda lines: any(x["event"] == "engine started" for x in lines), "start"
        )
        async with aiohttp.ClientSession() as http:
            fills = await all_pages(http, f"{second.base}/fills")
            async with http.get(f"{second.base}/status") as response:
                status = await response.json()
            events = await all_pages(http, f"{second.base}/events")
            equity = await all_pages(http, f"{second.base}/equity")
            # Wait (bounded) for the second run's own first equity point.
            async with asyncio.timeout(60):
                while True:
                    if len(await all_pages(http, f"{second.base}/equity")) > len(equity):
                        break
                    await asyncio.sleep(0.05)  # the engine polls its market every 5 s
        second.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert await asyncio.wait_for(second.proc.wait(), 60) == 0  # type: ignore[union-attr]
        await second.rest()
    finally:
        await first.kill()
        await second.kill()
        await sim.stop()

    # Every fill the first run reported (its log line follows the commit) is kept, exactly.
    by_id = {f["tradeId"]: f for f in fills}
    assert len(logged) >= 3
    for line in logged:
        kept = by_id[line["trade_id"]]
        assert (kept["price"], kept["quantity"], kept["fee"], kept["side"]) == (
            line["price"],
            line["quantity"],
            line["fee"],
            line["side"],
        )
    # Oldest first, numbered without a gap.
    assert [f["tradeId"] for f in fills] == [f"paper-{n}" for n in range(1, len(fills) + 1)]
    assert [f["time"] for f in fills] == sorted(f["time"] for f in fills)
    # The account continues: it is the one the recorded fills lead to, not the spec's.
    expected = balances_after(fills)
    assert {k: Decimal(v) for k, v in status["balances"].items()} == expected
    assert expected != {"BTC": Decimal(0), "USDT": START}
    assert status["paused"] is True
    assert any("paper account continued" in e["detail"] for e in events)
    assert equity and len({p["baseline"] for p in equity}) == 1
    assert any(x["event"] == "history opened" and x["continued"] for x in second.lines)
    opened = first.events("history opened")[0]
    assert opened["retention_days"] == {
        "equity": 90,
        "events": 90,
        "positions": 90,
        "orders": 400,
        "fills": 400,
    }
    assert TOKEN not in json.dumps(first.lines + second.lines)
    # PnL is relative to the first run's baseline, not to the second run's start.
    stopped = second.events("engine stopped")[0]
    baseline = Decimal(equity[0]["baseline"])
    assert baseline == START
    assert Decimal(stopped["pnl"]) == Decimal(stopped["equity"]) - baseline


def test_a_history_path_that_cannot_exist_is_a_configuration_error(tmp_path: Path) -> None:
    spec = spec_dict(exchange={"id": "binance", "endpoint": "http://127.0.0.1:9"})
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(manifest_dict(spec)))
    missing = tmp_path / "no-volume" / "history.sqlite3"
    result = run_hean("engine", "run", "--config", config, "--port", "0", "--history", missing)
    assert result.returncode == 2, result.stderr
    assert f"--history: directory {missing.parent} does not exist" in result.stderr
