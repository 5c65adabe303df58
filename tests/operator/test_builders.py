"""The operator's manifest builders, without a cluster."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from hean_contract.spec import parse_manifest, parse_spec
from hean_operator.builders.approval import approval_data, build_approval_configmap
from hean_operator.builders.common import LABEL_COMPONENT, LABEL_ENGINE, EngineRef
from hean_operator.builders.config import (
    build_configmap,
    build_control_secret,
    engine_manifest,
    spec_revision,
)
from hean_operator.builders.pod import EngineImage, build_pod
from hean_operator.builders.storage import build_history_claim

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
    # the engine keeps its books and serves them (GET /fills, ...) from its own claim
    assert volumes["history"] == {
        "name": "history",
        "persistentVolumeClaim": {"claimName": "btc-history"},
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["history"] == "/var/lib/hean/history"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert (
        pod["metadata"]["labels"].items()
        >= {
            LABEL_ENGINE: ENGINE.name,
            LABEL_COMPONENT: "engine",
        }.items()
    )


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


# -- issue 15: the engine's history on its own claim, or in PostgreSQL ------------------


def test_the_history_claim_is_owned_and_asks_for_the_default_class_unless_one_is_named() -> None:
    claim = build_history_claim(ENGINE, _spec().storage)
    _owned_by_engine(claim)
    assert claim["metadata"]["name"] == "btc-history"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }  # no storageClassName at all: the cluster's default StorageClass
    named = _spec(storage={"storageClassName": "fast-ssd", "size": "5Gi"}).storage
    spec = build_history_claim(ENGINE, named)["spec"]
    assert (spec["storageClassName"], spec["resources"]["requests"]["storage"]) == (
        "fast-ssd",
        "5Gi",
    )


def test_a_longest_engine_name_keeps_the_claims_name_within_63() -> None:
    from hean_operator.builders.common import MAX_NAME_LENGTH, name_problems

    name = "e" * MAX_NAME_LENGTH
    assert name_problems(name) == []
    engine = EngineRef(name=name, namespace="trading", uid="u", generation=1)
    assert len(engine.history_claim_name) <= 63


POSTGRES_URL = "postgresql://hean:pa55-w0rd@db.example:5432/hean"


def test_with_postgres_the_url_comes_from_the_secret_by_reference_and_there_is_no_claim() -> None:
    spec = _spec(storage={"postgres": {"secretName": "history-db", "key": "url"}})
    pod = build_pod(ENGINE, spec, EngineImage())
    (container,) = pod["spec"]["containers"]
    assert "--history" not in container["command"]  # the CLI reads HEAN_HISTORY instead
    (env,) = [e for e in container["env"] if e["name"] == "HEAN_HISTORY"]
    assert env == {
        "name": "HEAN_HISTORY",
        "valueFrom": {"secretKeyRef": {"name": "history-db", "key": "url"}},
    }
    assert "history" not in {v["name"] for v in pod["spec"]["volumes"]}
    assert "history" not in {m["name"] for m in container["volumeMounts"]}
    # CloudNativePG's app Secret keeps its URL under `uri`: the default key
    default = _spec(storage={"postgres": {"secretName": "cluster-app"}})
    (env,) = [
        e
        for e in build_pod(ENGINE, default, EngineImage())["spec"]["containers"][0]["env"]
        if e["name"] == "HEAN_HISTORY"
    ]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "cluster-app", "key": "uri"}


def test_the_postgres_url_is_never_in_anything_the_operator_builds() -> None:
    """Only the Secret's name is in the spec; whatever the Secret holds, the pod, the
    ConfigMap and the claim-less children carry a reference, never a value."""
    spec = _spec(storage={"postgres": {"secretName": "history-db"}})
    built = [build_pod(ENGINE, spec, EngineImage()), build_configmap(ENGINE, spec)]
    for obj in built:
        text = str(obj)
        assert "postgresql://" not in text and "pa55-w0rd" not in text
    assert "HEAN_HISTORY" not in str(built[0]["spec"]["containers"][0]["command"])


def test_storage_refuses_a_class_with_postgres_and_a_bad_size() -> None:
    from hean_contract.errors import ConfigError

    with pytest.raises(ConfigError, match=r"storage\.storageClassName: not used with postgres"):
        _spec(storage={"storageClassName": "x", "postgres": {"secretName": "db"}})
    with pytest.raises(ConfigError, match=r"storage\.size"):
        _spec(storage={"size": "lots"})


def test_a_reset_request_and_the_claims_size_restart_nothing_postgres_does() -> None:
    base = spec_revision(_spec())
    assert spec_revision(_spec(paper={"resetRequest": "2026-12-06"})) == base
    assert spec_revision(_spec(storage={"size": "5Gi"})) == base
    assert spec_revision(_spec(storage={"postgres": {"secretName": "db"}})) != base
