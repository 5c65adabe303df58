"""`hean sim exchange` as a user runs it: a subprocess that serves, trades, and stops.

The process is started through the installed `hean` entry point, waited for
on its `listening on URL` line (no sleeps), traded against with ccxt's real
client and the credentials it wrote, and stopped with SIGTERM/SIGINT. Bad
flags are checked through the same command group in-process (CliRunner).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import pytest
from click.testing import CliRunner
from sim_support import CANDLES, ROOT, SHARED, slice_file

from hean_engine.cli import main
from hean_sim.exchange import load_keys, point_ccxt_at

HEAN = Path(sys.executable).parent / "hean"
START_TIMEOUT = 60.0
DOC = ROOT / "docs" / "exchange-simulator.md"


class SimProcess:
    """A running `hean sim exchange`; stdout read line by line, stderr to a file."""

    def __init__(self, command: list[str] | str, cwd: Path, log: Path) -> None:
        self.log = log
        self._stderr = log.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            shell=isinstance(command, str),
        )
        self.lines: list[str] = []
        self._partial = b""

    def wait_listening(self) -> str:
        """The URL of the `listening on` line; fails if the process ends first.

        Reads the pipe's raw bytes (a buffered reader would swallow lines the
        selector then never reports)."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                self.process.wait()
                pytest.fail(f"the simulator exited {self.process.returncode}:\n{self.output()}")
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            for raw in complete:
                line = raw.decode()
                self.lines.append(line)
                if line.startswith("listening on "):
                    return line.split()[-1]
        pytest.fail(f"no 'listening on' line within {START_TIMEOUT}s:\n{self.output()}")

    def said(self, prefix: str) -> str:
        return next(line[len(prefix) :] for line in self.lines if line.startswith(prefix))

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        try:
            rest, _ = self.process.communicate(timeout=30)
        finally:
            self._stderr.close()
        self.lines += (self._partial + rest).decode().splitlines()
        self._partial = b""
        return self.process.returncode

    def output(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return "\n".join(self.lines) + "\n--- stderr\n" + self.log.read_text()


@pytest.fixture
def candles(tmp_path: Path) -> Path:
    path = tmp_path / "candles.csv.gz"
    slice_file(CANDLES, path, 3000)
    return path


@pytest.fixture
def processes() -> Iterator[list[SimProcess]]:
    started: list[SimProcess] = []
    yield started
    for proc in started:  # a failed test's: SIGTERM lets it remove its credentials
        if proc.process.poll() is None:
            proc.process.terminate()
            try:
                proc.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()


def _private_credentials(directory: Path) -> tuple[str, str]:
    """apiKey and secret of a generated credentials directory, whose modes are private."""
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("apiKey", "secret", "keys.json"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    api_key = (directory / "apiKey").read_text()
    secret = (directory / "secret").read_text()
    assert len(api_key) == len(secret) == 64
    assert load_keys(directory / "keys.json")[0].secret == secret
    return api_key, secret


def _exists(path: Path) -> bool:
    return path.exists()


def _client(url: str, api_key: str, secret: str) -> Any:
    exchange = ccxt_async.binance(
        {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": False,
            "options": {"defaultType": "spot", "fetchMarkets": ["spot"]},
        }
    )
    point_ccxt_at(exchange, url)
    return exchange


def _okx_client(url: str, api_key: str, secret: str, passphrase: str) -> Any:
    exchange = ccxt_async.okx(
        {
            "apiKey": api_key,
            "secret": secret,
            "password": passphrase,
            "enableRateLimit": False,
            "options": {"fetchMarkets": {"types": ["spot"]}},
        }
    )
    point_ccxt_at(exchange, url)
    return exchange


async def test_serves_trades_and_stops_on_sigterm(
    tmp_path: Path, candles: Path, processes: list[SimProcess]
) -> None:
    args = [
        *("sim", "exchange", "--port", "0", "--data", str(candles), "--speed", "max"),
        *("--balances", "USDT=5000,BTC=0.5", "--faults", "latency=1ms", "--seed", "3"),
    ]
    sim = SimProcess([str(HEAN), *args], tmp_path, tmp_path / "stderr.log")
    processes.append(sim)
    url = sim.wait_listening()
    assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+", url)
    credentials = Path(sim.said("credentials: "))
    api_key, secret = _private_credentials(credentials)

    exchange = _client(url, api_key, secret)
    try:
        await exchange.load_markets()
        balance = await exchange.fetch_balance()
        assert (balance["USDT"]["free"], balance["BTC"]["free"]) == (5000.0, 0.5)
        await exchange.fetch_ohlcv("BTC/USDT", "1m", limit=5)  # moves the replay on
        order = await exchange.create_order("BTC/USDT", "market", "buy", 0.01)
        assert order["status"] == "closed"
        (trade,) = await exchange.fetch_my_trades("BTC/USDT")
        assert trade["order"] == order["id"]
    finally:
        await exchange.close()

    assert sim.stop() == 0, sim.output()
    output = sim.output()
    assert secret not in output
    assert "stopping the exchange simulator" in output
    assert not _exists(credentials)  # a generated directory goes with the process


async def test_keys_file_gives_one_account_per_pair(
    tmp_path: Path, candles: Path, processes: list[SimProcess]
) -> None:
    pairs = [{"apiKey": f"key{n}" + "k" * 60, "secret": f"secret{n}" + "s" * 58} for n in (1, 2)]
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(pairs))
    command = [str(HEAN), "sim", "exchange", "--port", "0", "--data", str(candles)]
    sim = SimProcess([*command, "--keys", str(keys)], tmp_path, tmp_path / "stderr.log")
    processes.append(sim)
    url = sim.wait_listening()
    assert sim.said("accounts: ") == f"2 from {keys}"
    first = _client(url, pairs[0]["apiKey"], pairs[0]["secret"])
    second = _client(url, pairs[1]["apiKey"], pairs[1]["secret"])
    try:
        await first.create_order("BTC/USDT", "market", "buy", 0.01)
        assert len(await first.fetch_my_trades("BTC/USDT")) == 1
        assert await second.fetch_my_trades("BTC/USDT") == []
        assert (await second.fetch_balance())["USDT"]["free"] == 10000.0
    finally:
        await first.close()
        await second.close()
    assert sim.stop(signal.SIGINT) == 0, sim.output()
    output = sim.output()
    assert all(pair["secret"] not in output for pair in pairs)


def test_a_chosen_credentials_dir_is_kept(
    tmp_path: Path, candles: Path, processes: list[SimProcess]
) -> None:
    target = tmp_path / "creds"
    command = [str(HEAN), "sim", "exchange", "--port", "0", "--data", str(candles)]
    sim = SimProcess([*command, "--credentials-dir", str(target)], tmp_path, tmp_path / "err")
    processes.append(sim)
    sim.wait_listening()
    assert sim.said("credentials: ") == str(target)
    assert sim.stop() == 0, sim.output()
    (key,) = load_keys(target / "keys.json")
    assert (target / "apiKey").read_text() == key.api_key
    assert (target / "secret").read_text() == key.secret
    assert key.secret not in sim.output()


def _doc_commands() -> list[str]:
    """The long-running `hean sim exchange` commands of the simulator's page."""
    found, fenced = [], False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = line.strip() in ("```bash", "```sh", "```shell")
            continue
        command = line.strip()
        if fenced and re.match(
            r"(\.venv/bin/)?hean sim exchange (--protocol [a-z]+ )?--port ", command
        ):
            found.append(command)
    return found


def test_the_page_has_commands() -> None:
    assert len(_doc_commands()) >= 2


@pytest.mark.parametrize("command", _doc_commands())
async def test_documented_commands_serve(
    command: str, tmp_path: Path, processes: list[SimProcess]
) -> None:
    """Each documented command, as written but on a free port, from a copy of the root."""
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "shared").symlink_to(SHARED.parent)
    runnable = re.sub(r"--port [0-9]+", "--port 0", command)
    sim = SimProcess(f"exec {runnable}", work, tmp_path / "stderr.log")
    processes.append(sim)
    url = sim.wait_listening()
    credentials = Path(sim.said("credentials: "))
    api_key, secret = _private_credentials(credentials)
    if "--protocol okx" in command:
        exchange = _okx_client(url, api_key, secret, (credentials / "password").read_text())
    else:
        exchange = _client(url, api_key, secret)
    exchange.timeout = 30_000  # the fault spec may hold a request for up to 2 s
    try:
        for _ in range(10):
            try:
                await exchange.fetch_balance()
                break
            except ccxt_async.OperationFailed:
                continue  # an injected fault: the documented spec has some
    finally:
        await exchange.close()
    assert sim.stop() == 0, sim.output()
    assert shlex.split(command)[0].endswith("hean")


# -- bad flags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag", "detail"),
    [
        (["--speed", "fast"], "'--speed'", "neither a positive number nor 'max'"),
        (["--speed", "0"], "'--speed'", "neither a positive number nor 'max'"),
        (["--faults", "reset=2"], "'--faults'", "'reset=2': probability '2'"),
        (["--faults", "boom=0.1"], "'--faults'", "unknown fault 'boom'"),
        (["--balances", "USDT=lots"], "'--balances'", "'lots' is not a decimal amount"),
        (["--balances", "USDT=-1"], "'--balances'", "not a non-negative amount"),
        (["--balances", "USDT"], "'--balances'", "expected ASSET=AMOUNT"),
        (["--symbol", "BTCUSDT"], "'--symbol'", "BASE/QUOTE"),
        (["--start", "2017-01-01"], "'--start'", "not in UTC"),
        (["--maker-fee", "2"], "'--maker-fee'", "not a rate"),
        (["--port", "70000"], "'--port'", "70000"),
        (["--data", "nowhere.csv"], "'--data'", "no such file: nowhere.csv"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    args: list[str], flag: str, detail: str, candles: Path
) -> None:
    base = ["sim", "exchange", "--port", "0", "--data", str(candles)]
    result = CliRunner().invoke(main, [*base, *args])
    assert result.exit_code == 2, result.output
    assert flag in result.output and detail in result.output, result.output


def test_bad_keys_files_name_the_file_and_entry_never_the_secret(
    tmp_path: Path, candles: Path
) -> None:
    keys = tmp_path / "keys.json"
    base = ["sim", "exchange", "--port", "0", "--data", str(candles), "--keys", str(keys)]
    cases = [
        ("[]", "expected a non-empty JSON list"),
        ("{nope", "not JSON"),
        ('[{"apiKey": "a", "secret": "hush-hush-1"}, {"apiKey": "b"}]', "entry 2: 'secret'"),
        ('[{"apiKey": "a", "secret": "hush-hush-2", "extra": 1}]', "entry 1: unknown field"),
        (
            '[{"apiKey": "a", "secret": "hush-hush-3"}, {"apiKey": "a", "secret": "x"}]',
            "entry 2: apiKey 'a' is listed twice",
        ),
        ('[{"apiKey": "a", "secret": "hush hush"}]', "entry 1: 'secret' contains whitespace"),
    ]
    for text, detail in cases:
        keys.write_text(text)
        result = CliRunner().invoke(main, base)
        assert result.exit_code == 2, result.output
        assert "'--keys'" in result.output and str(keys) in result.output, result.output
        assert detail in result.output, result.output
        assert "hush" not in result.output
    result = CliRunner().invoke(main, [*base[:-2], "--keys", str(keys), "--credentials-dir", "x"])
    assert result.exit_code == 2 and "'--credentials-dir'" in result.output


def test_a_bad_flag_exits_2_from_the_installed_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(HEAN), "sim", "exchange", "--port", "0", "--data", str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Invalid value for '--data'" in done.stderr


async def test_speaks_okx_with_the_passphrase_it_wrote(
    tmp_path: Path, candles: Path, processes: list[SimProcess]
) -> None:
    args = [
        *("sim", "exchange", "--protocol", "okx", "--port", "0", "--data", str(candles)),
        *("--speed", "max", "--balances", "USDT=5000,BTC=0.5"),
    ]
    sim = SimProcess([str(HEAN), *args], tmp_path, tmp_path / "stderr.log")
    processes.append(sim)
    url = sim.wait_listening()
    assert any(line.startswith("simulated OKX spot BTC/USDT") for line in sim.lines)
    credentials = Path(sim.said("credentials: "))
    api_key, secret = _private_credentials(credentials)
    # OKX's third credential, under ccxt's name for it: a Secret's `password` key.
    assert stat.S_IMODE((credentials / "password").stat().st_mode) == 0o600
    passphrase = (credentials / "password").read_text()
    assert load_keys(credentials / "keys.json")[0].passphrase == passphrase
    exchange = _okx_client(url, api_key, secret, passphrase)
    try:
        await exchange.load_markets()
        balance = await exchange.fetch_balance()
        assert (balance["USDT"]["free"], balance["BTC"]["free"]) == (5000.0, 0.5)
        order = await exchange.create_order("BTC/USDT", "market", "buy", 0.01, None)
        assert (await exchange.fetch_order(order["id"], "BTC/USDT"))["status"] == "closed"
    finally:
        await exchange.close()
    assert sim.stop() == 0, sim.output()
    output = sim.output()
    assert secret not in output and passphrase not in output
