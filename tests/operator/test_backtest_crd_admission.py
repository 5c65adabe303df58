"""The Backtest CRD on the real apiserver: what it accepts, what it refuses and how it says so."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster_support import cluster_with_crds, namespace_kubeconfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "backtest.yaml"


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    cluster = cluster_with_crds()
    _, kubeconfig = namespace_kubeconfig(cluster, tmp_path_factory.mktemp("bt"))
    return [str(cluster.binaries.kubectl), "--kubeconfig", str(kubeconfig)]


def _backtest(name: str, **spec: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    manifest["metadata"] = {"name": name}
    manifest["spec"].update(spec)
    return dict(manifest)


def _apply(kubectl: list[str], manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*kubectl, "apply", "-f", "-"],
        input=yaml.safe_dump(manifest),
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_example_is_accepted_with_defaults_and_listed_by_short_name(
    kubectl: list[str],
) -> None:
    assert _apply(kubectl, _backtest("ok")).returncode == 0
    got = subprocess.run(
        [*kubectl, "get", "bt", "ok", "-o", "yaml"], capture_output=True, text=True, check=True
    )
    spec = yaml.safe_load(got.stdout)["spec"]
    assert spec["exchange"] == {"id": "binance", "testnet": False}  # defaulted
    assert spec["paper"]["slippageBps"] == "0"
    table = subprocess.run(
        [*kubectl, "get", "backtests"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert table[0].split() == [
        "NAME", "STRATEGY", "MARKET", "FROM", "TO", "PHASE", "RETURN", "MAXDD", "SHARPE",
        "TRADES", "AGE",
    ]  # fmt: skip
    assert table[1].split()[:5] == [
        "ok",
        "ema_cross",
        "BTC/USD",
        "2017-01-01T00:00:00Z",
        "2017-01-04T00:00:00Z",
    ]


@pytest.mark.parametrize(
    ("name", "spec", "says"),
    [
        ("late", {"to": "2016-12-31T00:00:00Z"}, "to: must be later than from"),
        ("notime", {"from": "2017-01-01"}, "spec.from"),
        (
            "twodata",
            {"data": {"volume": {"claimName": "a", "path": "x"}, "fetch": {}}},
            "set exactly one of volume, configMap, fetch",
        ),
        ("nodata", {"data": {}}, "set exactly one of volume, configMap, fetch"),
        (
            "order",
            {"strategy": {"name": "ema_cross", "params": {"fast": 30, "slow": 20}}},
            "ema_cross needs params.fast < params.slow",
        ),
        (
            "nosamples",
            {"sweep": {"params": {"fast": [5]}, "mode": "random"}},
            "samples: required when mode is random",
        ),
        ("noparams", {"sweep": {"params": {}}}, "spec.sweep.params"),
        ("floats", {"sweep": {"params": {"fast": [1.5]}}}, "spec.sweep.params.fast[0]"),
        # a TradingEngine's fields that mean nothing to a Backtest are not in its schema:
        # kubectl's strict field validation refuses them, naming them
        (
            "keys",
            {"exchange": {"id": "binance", "credentialsSecret": "binance-keys"}},
            'unknown field "spec.exchange.credentialsSecret"',
        ),
        (
            "reset",
            {
                "paper": {
                    "startingBalances": {"USD": "10000"},
                    "feeRate": "0.001",
                    "resetRequest": "1",
                }
            },
            'unknown field "spec.paper.resetRequest"',
        ),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(
    kubectl: list[str], name: str, spec: dict[str, Any], says: str
) -> None:
    refused = _apply(kubectl, _backtest(name, **spec))
    assert refused.returncode != 0
    assert says in refused.stderr, refused.stderr


def test_the_spec_cannot_change_after_creation(kubectl: list[str]) -> None:
    assert _apply(kubectl, _backtest("fixed")).returncode == 0
    changed = _apply(kubectl, _backtest("fixed", to="2017-01-05T00:00:00Z"))
    assert changed.returncode != 0
    assert "a Backtest's spec cannot change" in changed.stderr, changed.stderr


def test_a_name_its_job_cannot_carry_is_refused(kubectl: list[str]) -> None:
    refused = _apply(kubectl, _backtest("b" * 55))
    assert refused.returncode != 0 and "at most 54 characters" in refused.stderr
    assert _apply(kubectl, _backtest("b" * 54)).returncode == 0
