"""`fetch_engine`: the TradingEngine that `hean approval sign --engine` signs, from a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client
from kubernetes import config as kube_config

from cluster_support import cluster_with_crds, namespace_kubeconfig
from hean_contract.spec import parse_spec
from hean_engine.approval.payload import spec_hash
from hean_engine.cli import main
from hean_engine.model.errors import ConfigError
from hean_operator.approval_cli import fetch_engine


def test_fetch_engine_reads_the_stored_engine_with_its_uid(tmp_path: Path) -> None:
    namespace, kubeconfig = namespace_kubeconfig(cluster_with_crds(), tmp_path)
    api = kube_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    body = {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": "btc"},
        "spec": {
            "market": {"symbol": "BTC/USDT"},
            "strategy": {"name": "ema_cross", "params": {"quantity": "0.01"}},
            "risk": {
                "maxOrderNotional": "1000",
                "maxPositionNotional": "5000",
                "maxDailyLoss": "500",
                "maxDrawdownPct": "20",
            },
        },
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "hean.io", "v1alpha1", namespace, "tradingengines", body
    )
    engine = fetch_engine("btc", namespace, str(kubeconfig))
    assert engine["metadata"]["uid"]
    assert engine["spec"]["exchange"]["id"] == "binance"  # as stored: defaults applied
    with pytest.raises(ConfigError, match=f"no TradingEngine 'eth' in namespace '{namespace}'"):
        fetch_engine("eth", namespace, str(kubeconfig))

    # `hean approval sign --engine` reads it through fetch_engine
    runner = CliRunner()
    keys = tmp_path / "keys"
    assert runner.invoke(main, ["approval", "keygen", "--out", str(keys), "--key-id", "a"])
    signed = runner.invoke(
        main,
        [
            "approval",
            "sign",
            "--key",
            str(keys / "a.key"),
            "--engine",
            "btc",
            "-n",
            namespace,
            "--kubeconfig",
            str(kubeconfig),
            "--ttl",
            "1h",
        ],
    )
    assert signed.exit_code == 0, signed.output
    approval = yaml.safe_load(signed.stdout)
    assert approval["spec"]["engineUid"] == engine["metadata"]["uid"]
    assert approval["spec"]["specHash"] == spec_hash(parse_spec(engine["spec"]))
    args = ["approval", "sign", "--key", str(keys / "a.key"), "--ttl", "1h"]
    missing = runner.invoke(
        main, [*args, "--engine", "eth", "-n", namespace, "--kubeconfig", str(kubeconfig)]
    )
    assert missing.exit_code != 0 and "no TradingEngine 'eth'" in missing.output


def test_fetch_engine_names_a_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--kubeconfig"):
        fetch_engine("btc", "default", str(tmp_path / "missing"))
