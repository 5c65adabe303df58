"""SIGKILL a live engine at random moments while the exchange drops responses.

The engine runs as its own process (the real service path, with a gate that
allows) against the simulator, which executes orders and then drops the
response a quarter of the time (the classic cause of duplicate orders) and
resets a few connections. The engine is killed 50 times at seeded random
points: right after the simulator accepted one to four more orders, plus a
random few milliseconds. After every restart and at the end:

- every order on the simulator is one journaled intent's and no intent has two
  (the journal is read after every kill, before a start compacts it);
- once trading is paused and the order in flight has finished, the books the
  engine reports equal the simulator's exactly.

Once per protocol (Binance's and OKX's, each through ccxt's own client), with
the same seed and the same number of kills. A failing seed is replayed with
HEAN_CRASH_SEED=<seed>.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from live_support import API_KEY, PASSPHRASE, SECRET, Proto, live_spec, make_sim

from hean_sim.exchange import SimExchange
from hean_sim.exchange.faults import FaultPlan

KILLS = int(os.environ.get("HEAN_CRASH_KILLS", "50"))
SCRIPT = Path(__file__).with_name("live_engine_process.py")
TOKEN = "crash-test-control-token-0c9a"
SEED = int(os.environ.get("HEAN_CRASH_SEED", "20261125"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Zygote:
    """Forks engine processes from one process that has imported everything."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--zygote",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert await self._line() == "ready"

    async def fork(self, args: list[str]) -> int:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(args) + "\n").encode())
        await self.proc.stdin.drain()
        return int(await self._line())

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        return line.decode().strip()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Engine:
    """One engine process and its HTTP API."""

    def __init__(self, tmp_path: Path, cycle: int) -> None:
        self.tmp_path = tmp_path
        self.port = _free_port()
        self.stderr_path = tmp_path / f"engine-{cycle}.log"
        self.pid = 0
        self.base = f"http://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        return [
            str(self.tmp_path / "engine.yaml"),
            str(self.tmp_path / "credentials"),
            str(self.tmp_path / "journal"),
            str(self.port),
            str(self.tmp_path / "token"),
            str(self.stderr_path),
        ]

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    async def get(self, http: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
        async with http.get(self.base + path) as response:
            body = await response.text()
            return response.status, (json.loads(body) if path == "/status" else body)

    async def control(self, http: aiohttp.ClientSession, command: str) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with http.post(
            self.base + "/control", json={"command": command}, headers=headers
        ) as response:
            assert response.status == 200, await response.text()

    async def wait(self, http: aiohttp.ClientSession, what: str, check: Any) -> Any:
        """Poll the engine until `check(http)` returns a truthy value (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            if not _alive(self.pid):
                raise AssertionError(f"the engine exited:\n{self.log()}")
            with contextlib.suppress(aiohttp.ClientError):
                result = await check(http)
                if result:
                    return result
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.01)

    async def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while _alive(self.pid):  # reaped by the zygote
            assert loop.time() < deadline, "a SIGKILLed engine did not go away"
            await asyncio.sleep(0.01)


def _write_config(tmp_path: Path, sim: SimExchange, proto: Proto) -> None:
    spec = live_spec(sim.url, proto.name).model_dump(mode="json", by_alias=True)
    manifest = {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": "crash-test", "namespace": "default", "generation": 1},
        "spec": spec,
    }
    (tmp_path / "engine.yaml").write_text(yaml.safe_dump(manifest))
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "apiKey").write_text(API_KEY)
    (credentials / "secret").write_text(SECRET)
    if "password" in proto.credentials():
        (credentials / "password").write_text(PASSPHRASE)
    (tmp_path / "token").write_text(TOKEN)


def _journaled_intents(tmp_path: Path) -> set[str]:
    """Client ids of the intents in the journal now (a start compacts resolved ones away,
    so the test reads it after every kill and keeps what it saw)."""
    path = tmp_path / "journal" / "journal.jsonl"
    if not path.exists():
        return set()
    intents = set()
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a torn last line
            record = json.loads(line)
            if record.get("t") == "intent":
                intents.add(record["cid"])
    return intents


def _one_order_per_intent(sim: SimExchange, intents: set[str]) -> int:
    """Every order on the account is one journaled intent's, and no intent has two."""
    counts = Counter(order.client_order_id for order in sim.orders(API_KEY))
    duplicated = {cid: n for cid, n in counts.items() if n > 1}
    assert not duplicated, f"seed {SEED}: intents that became two orders: {duplicated}"
    unaccounted = set(counts) - intents
    assert not unaccounted, f"seed {SEED}: orders no journaled intent accounts for: {unaccounted}"
    return len(counts)


async def _books_settle_to_the_exchanges(
    engine: Engine, http: aiohttp.ClientSession, sim: SimExchange
) -> None:
    """Pause, let the order in flight finish, then the books must equal the exchange's."""
    await engine.control(http, "pause")

    async def settled(http: aiohttp.ClientSession) -> bool:
        status, body = await engine.get(http, "/status")
        if status != 200 or body["live"]["orders"]["inFlight"]:
            return False
        totals = {asset: b.total for asset, b in sim.balances(API_KEY).items()}
        return all(
            Decimal(body["balances"].get(asset, "0")) == totals.get(asset, Decimal(0))
            for asset in ("BTC", "USDT")
        )

    await engine.wait(http, "the books to equal the exchange's", settled)


async def _ready(engine: Engine, http: aiohttp.ClientSession) -> bool:
    status, _ = await engine.get(http, "/readyz")
    return status == 200


async def test_sigkill_at_random_points_never_duplicates_an_order_or_loses_a_fill(
    tmp_path: Path, proto: Proto
) -> None:
    rng = random.Random(SEED)
    # Requests are not rate limited here (see live_engine_process.py).
    sim = await make_sim(tmp_path, protocol=proto.name, candles=20_000, **proto.unlimited())
    sim.faults = FaultPlan.parse("drop=0.25,reset=0.03", seed=SEED)
    _write_config(tmp_path, sim, proto)
    zygote = Zygote()
    await zygote.start()
    engines: list[Engine] = []
    intents: set[str] = set()
    orders = 0
    try:
        async with aiohttp.ClientSession() as http:
            for cycle in range(KILLS):
                engine = Engine(tmp_path, cycle)
                engines.append(engine)
                engine.pid = await zygote.fork(engine.args())
                await engine.wait(http, "readiness", lambda h, e=engine: _ready(e, h))
                intents |= _journaled_intents(tmp_path)
                _one_order_per_intent(sim, intents)
                await _books_settle_to_the_exchanges(engine, http, sim)
                await engine.control(http, "resume")
                placed = len(sim.orders(API_KEY))
                more = rng.randint(1, 4)

                async def traded(h: aiohttp.ClientSession, n: int = placed + more) -> bool:
                    return len(sim.orders(API_KEY)) >= n

                await engine.wait(http, f"{more} more orders", traded)
                await asyncio.sleep(rng.uniform(0, 0.03))  # a random point of the next step
                await engine.kill()
                intents |= _journaled_intents(tmp_path)
            # The last run: a fresh process that starts, settles and stops cleanly.
            final = Engine(tmp_path, KILLS)
            engines.append(final)
            with final.stderr_path.open("wb") as err:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, str(SCRIPT), *final.args()[:5], stderr=err
                )
            final.pid = proc.pid
            await final.wait(http, "readiness", lambda h: _ready(final, h))
            await _books_settle_to_the_exchanges(final, http, sim)
            orders = _one_order_per_intent(sim, intents | _journaled_intents(tmp_path))
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0, final.log()
    finally:
        for engine in engines:
            if engine.pid and _alive(engine.pid):
                await engine.kill()
        await zygote.stop()
        await sim.stop()
    injected = sim.faults.injected
    # The faults really happened, and orders really were in flight when killed.
    assert injected["drop"] >= 10, injected
    assert orders >= 2 * KILLS
    journal = (tmp_path / "journal" / "journal.jsonl").read_text()
    assert journal.count('"t":"run"') >= 1
