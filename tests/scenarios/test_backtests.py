"""Backtests on the sandbox: `kubectl apply` runs a Job on the real control plane, and the
statistics in status are those of an independent `hean engine replay --json`.

Sandbox only: the recorded data and the reports live on hostPath
PersistentVolumes, which the sandbox's node maps to this machine's directories
(on kind they would be the kind node's).
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from scenario_support import Scenario, make_sandbox_scenario, stop_recording

from engine_support import BTCUSD_CANDLES, head_lines, require_shared_file, write_lines
from hean_contract.backtest import ENGINE_WARMUP, STATS_FIELDS
from hean_contract.spec import ExchangeSpec
from hean_engine.app.backtest import fetch_ohlcv
from hean_engine.model.timefmt import ms_to_iso
from hean_engine.net.exchange import create_client


def _stamp(ms: int) -> str:
    return ms_to_iso(ms).replace(":", "").replace("-", "")


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "backtest.yaml"
START, END = "2017-01-01T00:00:00Z", "2017-01-04T00:00:00Z"
# The statistics status carries (every field of BacktestStats), as the replay has them.
COMPARED = STATS_FIELDS


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Scenario]:
    current, recorder = await make_sandbox_scenario(tmp_path, exchange=False)
    try:
        yield current
    finally:
        await stop_recording(recorder)
        assert current.box is not None
        await current.box.stop()


def _slice(directory: Path) -> Path:
    """Four days of the shared BTC/USD candles (the Backtest asks for three of them)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = head_lines(require_shared_file(BTCUSD_CANDLES), 1 + 4 * 1440)
    return write_lines(directory / "btcusd.csv.gz", lines, gz=True)


async def _volume(scenario: Scenario, name: str, directory: Path) -> None:
    """A hostPath PersistentVolume and a claim bound to it (by name, no provisioner)."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    pv = f"{scenario.namespace}-{name}"
    await scenario.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "hostPath": {"path": str(directory)},
                "claimRef": {"namespace": scenario.namespace, "name": name},
            },
        }
    )
    await scenario.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": scenario.namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": pv,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )


def _backtest(name: str, **spec: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    manifest["metadata"] = {"name": name}
    manifest["spec"]["data"] = {"volume": {"claimName": "market-data", "path": "btcusd.csv.gz"}}
    manifest["spec"].update(spec)
    return dict(manifest)


def _direct_replay(tmp_path: Path, data: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The independent computation: `hean engine replay --json` over the same slice."""
    spec = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text())["spec"])
    spec["strategy"]["params"].update(params)
    engine = {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": "direct"},
        "spec": {k: spec[k] for k in ("market", "strategy", "risk", "paper")},
    }
    config = tmp_path / f"direct-{len(list(tmp_path.glob('direct-*')))}.yaml"
    config.write_text(yaml.safe_dump(engine))
    out = subprocess.run(
        [
            *(sys.executable, "-m", "hean_engine.cli", "engine", "replay"),
            *("--config", str(config), "--data", str(data)),
            *("--from", START, "--to", END, "--json"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    stats: dict[str, Any] = json.loads(out.stdout)["stats"]
    return {key: stats[key] for key in COMPARED}


async def test_a_backtest_runs_as_a_job_and_its_status_matches_a_direct_replay(
    sandbox: Scenario, tmp_path: Path
) -> None:
    data = _slice(tmp_path / "data")
    await _volume(sandbox, "market-data", data.parent)
    await _volume(sandbox, "backtest-results", tmp_path / "results")
    await sandbox.apply(_backtest("ema"))
    await sandbox.wait("backtest/ema", "jsonpath={.status.phase}=Succeeded")
    backtest = await sandbox.get("backtest", "ema")
    status = backtest["status"]
    expected = _direct_replay(tmp_path, data, {})
    assert status["stats"] == expected
    assert status["stats"]["trades"] > 0
    assert status["params"] == {"fast": 5, "slow": 20, "quantity": "0.1"}
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {
        "SpecValid": ("True", "Valid"),
        "JobCreated": ("True", "Created"),
        "Complete": ("True", "Succeeded"),
    }
    # the Job is the Backtest's (garbage-collected with it), one completion
    job = await sandbox.get("job", "ema-backtest")
    owners = job["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"], o["controller"]) for o in owners] == [
        ("Backtest", backtest["metadata"]["uid"], True)
    ]
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (1, 1)
    # the full report is on the output volume, where status says
    report = tmp_path / "results" / status["report"]["path"]
    assert status["report"]["claimName"] == "backtest-results"
    assert report.name == "0.html" and "<html" in report.read_text()[:200].lower()
    full = json.loads(report.with_suffix(".json").read_text())
    assert full["fills"] == expected["fills"] and len(full["trades"]) == expected["fills"]
    # the printer columns, as a user sees them
    table = (await sandbox.kubectl("get", "bt")).stdout.splitlines()
    row = table[1].split()
    assert row[:6] == ["ema", "ema_cross", "BTC/USD", START, END, "Succeeded"]
    assert row[6:10] == [
        expected["totalReturnPct"],
        expected["maxDrawdownPct"],
        expected["sharpe"],
        str(expected["trades"]),
    ]


def _intervals(pods: list[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    out = []
    for pod in pods:
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        out.append(
            (
                datetime.fromisoformat(terminated["startedAt"]),
                datetime.fromisoformat(terminated["finishedAt"]),
            )
        )
    return out


def _most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    return max(sum(1 for s, e in intervals if s <= start < e) for start, _ in intervals)


async def test_a_sweep_ranks_its_runs_within_its_parallelism(
    sandbox: Scenario, tmp_path: Path
) -> None:
    data = _slice(tmp_path / "data")
    await _volume(sandbox, "market-data", data.parent)
    sweep = {"params": {"fast": [5, 10], "slow": [20, 30]}, "parallelism": 2, "top": 3}
    await sandbox.apply(_backtest("grid", output=None, sweep=sweep))
    await sandbox.wait("backtest/grid", "jsonpath={.status.phase}=Succeeded")
    status = (await sandbox.get("backtest", "grid"))["status"]
    combos = [{"fast": f, "slow": s} for f in (5, 10) for s in (20, 30)]
    direct = [_direct_replay(tmp_path, data, combo) for combo in combos]
    by_sharpe = sorted(range(4), key=lambda i: (-float(direct[i]["sharpe"]), i))
    result = status["sweep"]
    assert (result["runs"], result["succeeded"], result["failed"], result["skipped"]) == (
        4,
        4,
        0,
        0,
    )
    assert result["rankBy"] == "sharpe"
    assert [run["index"] for run in result["top"]] == by_sharpe[:3]
    for run in result["top"]:
        assert run["params"] == combos[run["index"]]
        assert run["value"] == direct[run["index"]]["sharpe"]
        assert run["stats"]["totalReturnPct"] == direct[run["index"]]["totalReturnPct"]
    best = by_sharpe[0]
    assert status["stats"]["sharpe"] == direct[best]["sharpe"]
    assert status["params"] == {"quantity": "0.1", **combos[best]}
    assert "report" not in status  # no output volume: only the summary is kept
    job = await sandbox.get("job", "grid-backtest")
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (4, 2)
    pods = (
        await sandbox.kubectl(
            "get", "pods", "-l", "batch.kubernetes.io/job-name=grid-backtest", "-o", "json"
        )
    ).json()["items"]
    assert len(pods) == 4
    assert _most_at_once(_intervals(pods)) <= 2


async def test_a_name_held_by_another_object_is_a_condition_not_an_overwrite(
    sandbox: Scenario,
) -> None:
    await sandbox.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "mine-backtest", "namespace": sandbox.namespace},
            "data": {"owner": "someone else"},
        }
    )
    await sandbox.apply(_backtest("mine"))
    await sandbox.wait("backtest/mine", "jsonpath={.status.phase}=Failed")
    status = (await sandbox.get("backtest", "mine"))["status"]
    created = next(c for c in status["conditions"] if c["type"] == "JobCreated")
    assert (created["status"], created["reason"]) == ("False", "NameTaken")
    assert "ConfigMap mine-backtest" in created["message"]
    assert (await sandbox.get("configmap", "mine-backtest"))["data"] == {"owner": "someone else"}
    found = await sandbox.kubectl("get", "job", "mine-backtest", check=False)
    assert found.returncode != 0  # nothing created under a name that is not the Backtest's


async def test_an_image_the_operator_does_not_allow_fails_naming_the_field(
    sandbox: Scenario,
) -> None:
    await sandbox.apply(_backtest("foreign", image="registry.example.com/someone/engine:1"))
    await sandbox.wait("backtest/foreign", "jsonpath={.status.phase}=Failed")
    status = (await sandbox.get("backtest", "foreign"))["status"]
    (valid,) = [c for c in status["conditions"] if c["type"] == "SpecValid"]
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
    assert valid["message"].startswith("spec.image: the repository")


async def test_a_run_that_fails_fails_the_backtest_with_its_own_reason(
    sandbox: Scenario, tmp_path: Path
) -> None:
    await _volume(sandbox, "market-data", tmp_path / "empty")
    await sandbox.apply(_backtest("missing", output=None))
    await sandbox.wait("backtest/missing", "jsonpath={.status.phase}=Failed")
    status = (await sandbox.get("backtest", "missing"))["status"]
    # exit status 2 (a refused data file) fails the index at once: no retry
    assert status["message"].startswith("FailedIndexes: run 0: bad data file:")
    assert "btcusd.csv.gz" in status["message"] and "no such file" in status["message"]
    complete = next(c for c in status["conditions"] if c["type"] == "Complete")
    assert (complete["status"], complete["reason"]) == ("False", "Failed")
    pods = (
        await sandbox.kubectl(
            "get", "pods", "-l", "batch.kubernetes.io/job-name=missing-backtest", "-o", "json"
        )
    ).json()["items"]
    assert [p["status"]["phase"] for p in pods] == ["Failed"]
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 2


@pytest.fixture
async def sandbox_with_exchange(tmp_path: Path) -> AsyncIterator[Scenario]:
    current, recorder = await make_sandbox_scenario(tmp_path, exchange=True)
    try:
        yield current
    finally:
        await stop_recording(recorder)
        assert current.box is not None
        await current.box.stop()


async def _served_candles(url: str, start_ms: int, end_ms: int) -> list[list[Any]]:
    """The simulator's closed candles of [start, end), through ccxt as any client fetches them.

    The simulator serves its recorded candles at 60x from when it started: this
    waits (polling its klines, with a deadline) until a candle at or after `end`
    has begun, so every candle before it is closed."""
    client = create_client(ExchangeSpec(id="binance", endpoint=url))
    try:
        for _ in range(240):
            rows = await fetch_ohlcv(client, "BTC/USDT", "1m", 60_000, start_ms, end_ms + 60_000)
            if rows and rows[-1][0] >= end_ms:
                return [row for row in rows if row[0] < end_ms]
            await asyncio.sleep(0.5)
        raise AssertionError(f"the simulator served no candle at {end_ms} within 120 s")
    finally:
        await client.close()


def _replay(config: Path, data: Path, start: str, end: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "hean_engine.cli", "engine", "replay"),
            *("--config", str(config), "--data", str(data)),
            *("--from", start, "--to", end, "--json"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )


async def _first_served(url: str) -> int:
    client = create_client(ExchangeSpec(id="binance", endpoint=url))
    try:
        (first,) = await client.fetch_ohlcv("BTC/USDT", "1m", since=0, limit=1)
        return int(first[0])
    finally:
        await client.close()


async def test_fetched_candles_are_cached_and_give_a_direct_replays_stats(
    sandbox_with_exchange: Scenario, tmp_path: Path
) -> None:
    scenario = sandbox_with_exchange
    assert scenario.exchange_url is not None
    start = await _first_served(scenario.exchange_url)
    end = start + 25 * 60_000
    rows = await _served_candles(scenario.exchange_url, start, end)
    await _volume(scenario, "candle-cache", tmp_path / "cache")
    spec: dict[str, Any] = {
        "exchange": {"id": "binance", "endpoint": scenario.exchange_url},
        "market": {"symbol": "BTC/USDT", "timeframe": "1m"},
        "strategy": {"name": "ema_cross", "params": {"fast": 3, "slow": 8, "quantity": "0.5"}},
        "paper": {"startingBalances": {"USDT": "100000"}, "feeRate": "0.001"},
        "from": ms_to_iso(start),
        "to": ms_to_iso(end),
        "data": {"fetch": {"cacheClaimName": "candle-cache"}},
        "output": None,
    }
    await scenario.apply(_backtest("fetched", **spec))
    await scenario.wait("backtest/fetched", "jsonpath={.status.phase}=Succeeded")
    status = (await scenario.get("backtest", "fetched"))["status"]
    # the cache holds exactly the candles a client fetches
    cached = tmp_path / "cache" / "candles" / "binance" / "BTC-USDT" / "1m"
    (path,) = cached.iterdir()
    # named by the range fetched: the default warm-up's 200 minutes before `from` too
    # (the simulator has nothing before `start`, so the candles are those of the range)
    assert path.name == f"{_stamp(start - ENGINE_WARMUP * 60_000)}_{_stamp(end)}.csv.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == [ms_to_iso(int(r[0])) for r in rows]
    # the independent computation: those candles written by the test, replayed directly
    data = tmp_path / "direct.csv"
    data.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "".join(f"{ms_to_iso(int(r[0]))},{','.join(repr(v) for v in r[1:])}\n" for r in rows)
    )
    engine = {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": "direct"},
        "spec": {
            **{k: spec[k] for k in ("market", "strategy", "paper")},
            "risk": yaml.safe_load(EXAMPLE.read_text())["spec"]["risk"],
        },
    }
    config = tmp_path / "direct.yaml"
    config.write_text(yaml.safe_dump(engine))
    replayed = await asyncio.to_thread(_replay, config, data, ms_to_iso(start), ms_to_iso(end))
    stats = json.loads(replayed.stdout)["stats"]
    assert status["stats"] == {key: stats[key] for key in COMPARED}
    # a second Backtest of the same range reads the cache: its exchange is unreachable
    await scenario.apply(
        _backtest(
            "cached", **{**spec, "exchange": {"id": "binance", "endpoint": "http://127.0.0.1:9"}}
        )
    )
    await scenario.wait("backtest/cached", "jsonpath={.status.phase}=Succeeded")
    again = (await scenario.get("backtest", "cached"))["status"]
    assert again["stats"] == status["stats"]
    assert list(cached.iterdir()) == [path]
