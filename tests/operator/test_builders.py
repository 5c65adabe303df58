"""The operator's manifest builders, without a cluster."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from hean_contract.spec import parse_manifest, parse_spec
from hean_operator.builders.approval import approval_data, build_approval_configmap
from hean_operator.builders.common import EngineRef, selector
from hean_operator.builders.config import build_configmap, build_control_secret, engine_manifest
from hean_operator.builders.pod import EngineImage, build_pod, build_service

ENGINE = EngineRef(name="btc", namespace="trading", uid="uid-1", generation=3)


def _spec(**overrides: Any) -> Any:
    spec: dict[str, Any] = {
        "market": {"symbol": "BTC/USDT"},
        "strategy": {"name": "ema_cross", "params": {"quantity": "0.01"}},
        "risk": {
            "maxOrderNotional": "1000",
            "maxPositionNotional": "5000",
            "maxDailyLoss": "500",
            "maxDrawdownPct": "20",
        },
    }
    spec.update(overrides)
    return parse_spec(spec)


def _owned_by_engine(obj: dict[str, Any]) -> None:
    (ref,) = obj["metadata"]["ownerReferences"]
    assert ref == {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "name": "btc",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert obj["metadata"]["namespace"] == "trading"
    assert obj["metadata"]["labels"]["hean.io/engine"] == "btc"


def test_configmap_round_trips_to_the_same_spec() -> None:
    spec = _spec()
    cm = build_configmap(ENGINE, spec)
    _owned_by_engine(cm)
    identity, parsed = parse_manifest(yaml.safe_load(cm["data"]["engine.yaml"]))
    assert parsed == spec
    assert (identity.name, identity.namespace, identity.generation) == ("btc", "trading", 3)
    assert cm["metadata"]["annotations"]["hean.io/spec-generation"] == "3"


def test_control_secret_holds_the_token_base64() -> None:
    secret = build_control_secret(ENGINE, "s3cret-token")
    _owned_by_engine(secret)
    assert base64.b64decode(secret["data"]["token"]) == b"s3cret-token"
    assert "s3cret-token" not in str(secret)


def test_paper_pod_runs_the_engine_with_config_and_token_and_no_credentials() -> None:
    pod = build_pod(ENGINE, _spec(), EngineImage(image="hean-engine:dev"))
    _owned_by_engine(pod)
    assert pod["metadata"]["name"] == "btc-engine"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "hean-engine:dev"
    assert container["command"] == [
        "hean",
        "engine",
        "run",
        "--config",
        "/etc/hean/config/engine.yaml",
        "--port",
        "8080",
        "--control-token-file",
        "/etc/hean/control/token",
        "--history",
        "/var/lib/hean/history",
    ]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "btc-config"
    assert volumes["control"]["secret"]["secretName"] == "btc-control"
    assert "credentials" not in volumes
    # the engine keeps its books and serves them (GET /fills, ...) from a volume of its own
    assert "emptyDir" in volumes["history"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["history"] == "/var/lib/hean/history"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["metadata"]["labels"].items() >= selector(ENGINE).items()


def test_live_pod_mounts_the_credentials_secret_and_a_journal_volume() -> None:
    spec = _spec(mode="live", exchange={"id": "binance", "credentialsSecret": "binance-keys"})
    pod = build_pod(ENGINE, spec, EngineImage())
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == "binance-keys"
    assert "emptyDir" in volumes["journal"]
    container = pod["spec"]["containers"][0]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["journal"]["mountPath"] == "/var/lib/hean/journal"
    assert not mounts["journal"].get("readOnly")
    assert container["command"][-6:] == [
        "--credentials-dir",
        "/etc/hean/credentials",
        "--journal-dir",
        "/var/lib/hean/journal",
        "--approval-dir",
        "/etc/hean/approval",
    ]


def test_live_pod_mounts_its_approval_with_the_trust_files_in_a_subdirectory() -> None:
    spec = _spec(mode="live", exchange={"id": "binance", "credentialsSecret": "binance-keys"})
    data = approval_data({"kind": "LiveApproval"}, {"alice.pub": "PEM", "policy.yaml": "x"})
    assert set(data) == {"approval.yaml", "trust.alice.pub", "trust.policy.yaml"}
    pod = build_pod(ENGINE, spec, EngineImage(), data)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    source = volumes["approval"]["configMap"]
    assert source["name"] == "btc-approval"
    assert source["optional"] is True
    assert {i["key"]: i["path"] for i in source["items"]} == {
        "approval.yaml": "approval.yaml",
        "trust.alice.pub": "trust/alice.pub",
        "trust.policy.yaml": "trust/policy.yaml",
    }
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["approval"] == {
        "name": "approval",
        "mountPath": "/etc/hean/approval",
        "readOnly": True,
    }
    configmap = build_approval_configmap(ENGINE, data)
    _owned_by_engine(configmap)
    assert configmap["data"] == data


def test_paper_pod_has_no_approval() -> None:
    pod = build_pod(ENGINE, _spec(), EngineImage())
    assert "approval" not in {v["name"] for v in pod["spec"]["volumes"]}
    assert "--approval-dir" not in pod["spec"]["containers"][0]["command"]


def test_engine_config_carries_the_uid() -> None:
    manifest = engine_manifest(ENGINE, _spec())
    assert manifest["metadata"]["uid"] == ENGINE.uid


@pytest.mark.parametrize("mode", ["paper", "live"])
def test_pod_is_restricted(mode: str) -> None:
    extra = {"exchange": {"id": "binance", "credentialsSecret": "k"}} if mode == "live" else {}
    pod = build_pod(ENGINE, _spec(mode=mode, **extra), EngineImage())
    security = pod["spec"]["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_service_selects_the_engine_pod() -> None:
    service = build_service(ENGINE)
    _owned_by_engine(service)
    assert service["spec"]["selector"] == selector(ENGINE)
    assert service["spec"]["ports"][0]["port"] == 8080


def test_engine_resources_flags_parse_and_name_bad_pairs() -> None:
    import click
    import pytest

    from hean_operator.cli import _resources

    assert _resources("engine_requests", "cpu=100m, memory=128Mi") == {
        "cpu": "100m",
        "memory": "128Mi",
    }
    assert _resources("engine_limits", "") == {}
    with pytest.raises(click.BadParameter) as info:
        _resources("engine_limits", "memory")
    assert "name=quantity" in str(info.value)
    assert info.value.param_hint == "--engine-limits"
