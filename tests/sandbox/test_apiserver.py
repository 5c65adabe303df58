"""The sandbox apiserver emulator against raw HTTP, kubectl, the kubernetes client and kopf."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from hean_sandbox.apiserver import ApiServer, ServerThread, cel, patch, selectors, tables
from hean_sandbox.apiserver.resources import builtin_resources

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "tradingengines.hean.io.yaml"
TE = "/apis/hean.io/v1alpha1/namespaces/default/tradingengines"
PODS = "/api/v1/namespaces/default/pods"
CMS = "/api/v1/namespaces/default/configmaps"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def engine(name: str = "btc", **spec: Any) -> dict[str, Any]:
    """A valid TradingEngine (spec fields given override the defaults here)."""
    body: dict[str, Any] = {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": name},
        "spec": {
            "market": {"symbol": "BTC/USDT"},
            "strategy": {"name": "ema_cross", "params": {"fast": 5, "slow": 20}},
            "risk": {
                "maxOrderNotional": "100",
                "maxPositionNotional": "1000",
                "maxDailyLoss": "50",
                "maxDrawdownPct": "10",
            },
        },
    }
    body["spec"].update(spec)
    return body


def pod(name: str = "p1", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **meta},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }


def configmap(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, **meta},
        "data": {"k": "v"},
    }


def causes(status: dict[str, Any]) -> dict[str, str]:
    return {c["field"]: c["reason"] for c in status["details"]["causes"]}


# -- discovery ---------------------------------------------------------------------------


async def test_discovery_documents(http: Any) -> None:
    code, version, _ = await http.get("/version")
    assert code == 200 and version["major"] == "1" and version["minor"] == "32"
    _, api, _ = await http.get("/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    _, core, _ = await http.get("/api/v1")
    names = {r["name"] for r in core["resources"]}
    assert {
        "pods",
        "pods/status",
        "namespaces",
        "services",
        "configmaps",
        "secrets",
        "events",
        "serviceaccounts",
    } <= names
    _, groups, _ = await http.get("/apis")
    group_names = {g["name"] for g in groups["groups"]}
    assert {"hean.io", "apiextensions.k8s.io", "events.k8s.io", "coordination.k8s.io"} <= (
        group_names
    )
    _, group, _ = await http.get("/apis/hean.io")
    assert group["preferredVersion"]["version"] == "v1alpha1"
    _, resources, _ = await http.get("/apis/hean.io/v1alpha1")
    te = next(r for r in resources["resources"] if r["name"] == "tradingengines")
    assert te["kind"] == "TradingEngine" and te["namespaced"] and te["shortNames"] == ["te"]
    assert any(r["name"] == "tradingengines/status" for r in resources["resources"])
    code, _, _ = await http.get("/apis/nope.io/v1")
    assert code == 404


async def test_aggregated_discovery(http: Any) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    code, doc, headers = await http.get("/apis", headers={"Accept": accept})
    assert code == 200
    assert "as=APIGroupDiscoveryList" in headers["Content-Type"]
    assert doc["kind"] == "APIGroupDiscoveryList"
    hean = next(i for i in doc["items"] if i["metadata"].get("name") == "hean.io")
    resource = hean["versions"][0]["resources"][0]
    assert resource["resource"] == "tradingengines" and resource["scope"] == "Namespaced"
    assert resource["subresources"][0]["subresource"] == "status"
    _, legacy, _ = await http.get("/api", headers={"Accept": accept})
    assert legacy["items"][0]["versions"][0]["version"] == "v1"


async def test_kubectl_discovers_builtins_and_crds(kubectl: Any) -> None:
    result = await kubectl("api-resources")
    assert "tradingengines" in result.stdout and "hean.io/v1alpha1" in result.stdout
    assert "leases" in result.stdout and "events.k8s.io/v1" in result.stdout
    result = await kubectl("version", "-o", "json")
    assert json.loads(result.stdout)["serverVersion"]["minor"] == "32"
    result = await kubectl("get", "namespaces")
    assert "default" in result.stdout and "Active" in result.stdout


async def test_crd_registered_by_kubectl_apply(tmp_path: Path) -> None:
    api = ApiServer(port=0)
    await api.start()
    try:
        kubeconfig = tmp_path / "kc"
        api.write_kubeconfig(kubeconfig)
        process = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "--cache-dir",
            str(tmp_path / "c"),
            "apply",
            "-f",
            str(CRD_FILE),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err
        assert b"customresourcedefinition.apiextensions.k8s.io/tradingengines.hean.io created" in (
            out
        )
        assert api.store.registry.get("hean.io", "v1alpha1", "tradingengines") is not None
        crd = api.store.get(
            ("apiextensions.k8s.io", "customresourcedefinitions"), None, "tradingengines.hean.io"
        )
        assert crd is not None
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True"
        assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    finally:
        await api.stop()


async def test_crd_deletion_removes_custom_resources(server: ApiServer, http: Any) -> None:
    await http.post(TE, engine("a"))
    code, _, _ = await http.delete(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tradingengines.hean.io"
    )
    assert code == 200
    assert server.store.registry.get("hean.io", "v1alpha1", "tradingengines") is None
    assert server.store.items(("hean.io", "tradingengines")) == []
    code, _, _ = await http.get(TE)
    assert code == 404


# -- schema: pruning, defaults, validation, CEL ------------------------------------------


async def test_defaults_and_pruning(http: Any) -> None:
    body = engine()
    body["spec"]["bogus"] = 1
    body["spec"]["risk"]["alsoBogus"] = "x"
    body["metadata"]["notMeta"] = True
    code, obj, headers = await http.post(TE, body)
    assert code == 201, obj
    spec = obj["spec"]
    assert "bogus" not in spec and "alsoBogus" not in spec["risk"]
    assert "notMeta" not in obj["metadata"]
    assert spec["mode"] == "paper" and spec["paused"] is False and spec["halt"] is False
    assert spec["exchange"]["id"] == "binance"  # default {} then its own defaults
    assert spec["market"]["timeframe"] == "1m"
    assert spec["risk"]["maxOpenOrders"] == 4 and spec["paper"]["feeRate"] == "0.001"
    assert spec["strategy"]["params"] == {"fast": 5, "slow": 20}  # preserve-unknown-fields
    assert 'unknown field \\"spec.bogus\\"' in headers["Warning"]


async def test_strict_field_validation_rejects_unknown_fields(http: Any) -> None:
    body = engine()
    body["spec"]["bogus"] = 1
    code, status, _ = await http.post(TE, body, params={"fieldValidation": "Strict"})
    assert code == 400 and status["reason"] == "BadRequest"
    assert 'unknown field "spec.bogus"' in status["message"]
    code, _, headers = await http.post(TE, body, params={"fieldValidation": "Ignore"})
    assert code == 201 and "Warning" not in headers


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"mode": "dry"}, "spec.mode", "FieldValueNotSupported"),
        ({"market": {"symbol": "btc-usdt"}}, "spec.market.symbol", "FieldValueInvalid"),
        ({"market": {}}, "spec.market.symbol", "FieldValueRequired"),
        ({"exchange": {"id": "x" * 65}}, "spec.exchange.id", "FieldValueTooLong"),
        ({"exchange": {"id": ""}}, "spec.exchange.id", "FieldValueInvalid"),
        ({"paused": "yes"}, "spec.paused", "FieldValueTypeInvalid"),
    ],
)
async def test_schema_validation_errors(
    http: Any, change: dict[str, Any], field: str, reason: str
) -> None:
    code, status, _ = await http.post(TE, engine(**change))
    assert code == 422, status
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    assert status["details"]["kind"] == "TradingEngine"
    assert status["details"]["group"] == "hean.io"
    assert causes(status)[field] == reason
    assert status["message"].startswith('TradingEngine.hean.io "btc" is invalid: ')


async def test_minimum_maximum_and_required(http: Any) -> None:
    body = engine()
    body["spec"]["risk"]["maxOpenOrders"] = 0
    body["spec"]["risk"]["maxOrdersPerMinute"] = 100_001
    del body["spec"]["strategy"]
    code, status, _ = await http.post(TE, body)
    assert code == 422
    found = causes(status)
    assert found["spec.risk.maxOpenOrders"] == "FieldValueInvalid"
    assert found["spec.risk.maxOrdersPerMinute"] == "FieldValueInvalid"
    assert found["spec.strategy"] == "FieldValueRequired"
    assert "should be greater than or equal to 1" in status["message"]


async def test_cel_rules(http: Any) -> None:
    code, status, _ = await http.post(TE, engine(mode="live"))
    assert code == 422
    cause = status["details"]["causes"][0]
    assert cause == {
        "reason": "FieldValueRequired",
        "message": "Required value: live mode needs exchange.credentialsSecret",
        "field": "spec.exchange.credentialsSecret",
    }
    code, _, _ = await http.post(
        TE, engine(mode="live", exchange={"id": "binance", "credentialsSecret": "keys"})
    )
    assert code == 201
    code, status, _ = await http.post(
        TE, engine("slow", strategy={"name": "ema_cross", "params": {"fast": 30, "slow": 20}})
    )
    assert code == 422
    assert causes(status) == {"spec.strategy.params": "FieldValueInvalid"}
    assert "ema_cross needs params.fast < params.slow" in status["message"]
    # Defaults inside the rule: fast=30 against the default slow 26.
    code, _, _ = await http.post(
        TE, engine("dflt", strategy={"name": "ema_cross", "params": {"fast": 30}})
    )
    assert code == 422
    code, status, _ = await http.post(TE, engine("odd", strategy={"name": "martingale"}))
    assert causes(status) == {"spec.strategy.name": "FieldValueInvalid"}


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("self.fast < self.slow", {"fast": 1, "slow": 2}, True),
        (
            "self.mode != 'live' || has(self.exchange.credentialsSecret)",
            {"mode": "live", "exchange": {}},
            False,
        ),
        ("self.name in ['a', 'b']", {"name": "b"}, True),
        ("(has(self.f) ? int(self.f) : 12) < 26", {"f": "30"}, False),
        ("self.items.all(i, i > 0) && size(self.items) == 2", {"items": [1, 2]}, True),
        ("self.items.exists(i, i == 3)", {"items": [1, 2]}, False),
        ("self.s.startsWith('BTC') && self.s.matches('^[A-Z]+/')", {"s": "BTC/USDT"}, True),
        ("self.a.b || true", {"a": {}}, True),  # error absorbed by ||
        ("-self.x + 2 * 3 % 4 == 1", {"x": 1}, True),
        ("self.x / 2 == 2 && 7 / -2 == -3", {"x": 5}, True),
    ],
)
def test_cel_evaluator(rule: str, value: Any, expected: bool) -> None:
    assert cel.compile_rule(rule).evaluate(value) is expected


def test_cel_errors_and_unsupported() -> None:
    with pytest.raises(cel.CelError, match="no such key"):
        cel.compile_rule("self.a.b == 1").evaluate({"a": {}})
    with pytest.raises(cel.CelUnsupported):
        cel.compile_rule("self.t > timestamp('2024-01-01T00:00:00Z')")
    assert cel.compile_rule("self == oldSelf").uses_old_self


# -- metadata, conflicts, errors ---------------------------------------------------------


async def test_metadata_and_generation(http: Any) -> None:
    _, created, _ = await http.post(TE, engine())
    meta = created["metadata"]
    assert meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    rv1 = int(meta["resourceVersion"])
    _, labelled, _ = await http.patch(f"{TE}/btc", {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > rv1
    _, with_status, _ = await http.patch(f"{TE}/btc/status", {"status": {"phase": "Running"}})
    assert with_status["metadata"]["generation"] == 1
    _, changed, _ = await http.patch(f"{TE}/btc", {"spec": {"paused": True}})
    assert changed["metadata"]["generation"] == 2
    # A no-op write changes nothing: same resourceVersion, no event.
    _, same, _ = await http.patch(f"{TE}/btc", {"spec": {"paused": True}})
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]
    # generateName
    body = engine()
    body["metadata"] = {"generateName": "eng-"}
    code, generated, _ = await http.post(TE, body)
    assert code == 201 and generated["metadata"]["name"].startswith("eng-")
    assert len(generated["metadata"]["name"]) == len("eng-") + 5
    # The resourceVersion is one global counter.
    _, cm, _ = await http.post(CMS, configmap("c"))
    assert int(cm["metadata"]["resourceVersion"]) > int(generated["metadata"]["resourceVersion"])


async def test_conflicts_and_not_found(http: Any) -> None:
    _, first, _ = await http.post(CMS, configmap("c"))
    code, status, _ = await http.post(CMS, configmap("c"))
    assert code == 409 and status["reason"] == "AlreadyExists"
    assert status["message"] == 'configmaps "c" already exists'
    assert status["details"] == {"name": "c", "kind": "configmaps"}
    update = dict(first, data={"k": "new"})
    code, _second, _ = await http.put(f"{CMS}/c", update)
    assert code == 200
    code, status, _ = await http.put(f"{CMS}/c", update)  # stale resourceVersion
    assert code == 409 and status["reason"] == "Conflict"
    assert "the object has been modified" in status["message"]
    code, status, _ = await http.patch(
        f"{CMS}/c", {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}}
    )
    assert code == 409
    code, status, _ = await http.get(f"{CMS}/missing")
    assert code == 404
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "kind": "configmaps"},
        "code": 404,
    }
    code, status, _ = await http.get(f"{TE}/missing")
    assert status["message"] == 'tradingengines.hean.io "missing" not found'
    code, status, _ = await http.post("/api/v1/namespaces/nowhere/configmaps", configmap("c"))
    assert code == 404 and status["message"] == 'namespaces "nowhere" not found'
    code, status, _ = await http.get("/api/v1/nothings")
    assert code == 404 and status["kind"] == "Status"


async def test_status_subresource_isolation(http: Any) -> None:
    body = engine()
    body["status"] = {"phase": "Running"}
    _, created, _ = await http.post(TE, body)
    assert "status" not in created  # dropped on create
    _, obj, _ = await http.patch(
        f"{TE}/btc", {"status": {"phase": "Failed"}, "spec": {"paused": True}}
    )
    assert "status" not in obj and obj["spec"]["paused"] is True
    _, obj, _ = await http.patch(
        f"{TE}/btc/status", {"status": {"phase": "Running"}, "spec": {"paused": False}}
    )
    assert obj["status"] == {"phase": "Running"} and obj["spec"]["paused"] is True
    obj["status"]["phase"] = "Paused"
    obj["metadata"]["labels"] = {"ignored": "yes"}
    code, obj, _ = await http.put(f"{TE}/btc/status", obj)
    assert code == 200 and obj["status"]["phase"] == "Paused"
    assert "labels" not in obj["metadata"]
    obj["status"]["phase"] = "Bogus"
    code, status, _ = await http.put(f"{TE}/btc/status", obj)
    assert code == 422 and causes(status) == {"status.phase": "FieldValueNotSupported"}


# -- deletion: finalizers, grace, preconditions, garbage collection ----------------------


async def test_finalizers_hold_deletion(http: Any) -> None:
    body = engine()
    body["metadata"]["finalizers"] = ["hean.io/cleanup"]
    await http.post(TE, body)
    code, obj, _ = await http.delete(f"{TE}/btc")
    assert code == 200
    assert obj["metadata"]["deletionTimestamp"]
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 0
    assert obj["metadata"]["generation"] == 2
    code, still, _ = await http.get(f"{TE}/btc")
    assert code == 200 and still["metadata"]["deletionTimestamp"]
    code, status, _ = await http.patch(
        f"{TE}/btc", {"metadata": {"finalizers": ["hean.io/cleanup", "new"]}}
    )
    assert code == 422 and "no new finalizers" in status["message"]
    code, _, _ = await http.patch(f"{TE}/btc", {"metadata": {"finalizers": None}})
    assert code == 200
    code, _, _ = await http.get(f"{TE}/btc")
    assert code == 404


async def test_pod_graceful_deletion(http: Any) -> None:
    _, created, _ = await http.post(PODS, pod())
    assert created["status"]["phase"] == "Pending"
    _, bound, _ = await http.get(f"{PODS}/p1")
    assert bound["spec"]["nodeName"] == "sandbox"  # the emulated scheduler bound it
    code, obj, _ = await http.delete(f"{PODS}/p1")
    assert code == 200 and obj["metadata"]["deletionGracePeriodSeconds"] == 30
    _, obj, _ = await http.delete(f"{PODS}/p1", params={"gracePeriodSeconds": "10"})
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 10
    code, _, _ = await http.get(f"{PODS}/p1")
    assert code == 200
    code, status, _ = await http.delete(
        f"{PODS}/p1",
        {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "not-the-uid"},
        },
    )
    assert code == 409 and "Precondition failed: UID in precondition" in status["message"]
    code, gone, _ = await http.delete(
        f"{PODS}/p1",
        {"gracePeriodSeconds": 0, "preconditions": {"uid": created["metadata"]["uid"]}},
    )
    assert code == 200 and gone["kind"] == "Pod"
    code, _, _ = await http.get(f"{PODS}/p1")
    assert code == 404


async def test_unscheduled_pod_is_deleted_at_once() -> None:
    api = ApiServer(port=0, node_name=None)  # no scheduler: pods stay unbound
    await api.start()
    try:
        async with aiohttp.ClientSession() as session:
            await session.post(api.url + PODS, json=pod())
            async with session.delete(api.url + f"{PODS}/p1") as response:
                assert response.status == 200
            async with session.get(api.url + f"{PODS}/p1") as response:
                assert response.status == 404
    finally:
        await api.stop()


async def test_delete_precondition_resource_version(http: Any) -> None:
    _, cm, _ = await http.post(CMS, configmap("c"))
    await http.patch(f"{CMS}/c", {"data": {"k": "2"}})
    code, status, _ = await http.delete(
        f"{CMS}/c", {"preconditions": {"resourceVersion": cm["metadata"]["resourceVersion"]}}
    )
    assert code == 409 and "ResourceVersion in precondition" in status["message"]
    code, status, _ = await http.delete(f"{CMS}/c")
    assert code == 200 and status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "c"


def _owned(name: str, owner: dict[str, Any], **extra: Any) -> dict[str, Any]:
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        **extra,
    }
    return configmap(name, ownerReferences=[ref])


async def test_garbage_collection_background_and_recursive(http: Any) -> None:
    _, owner, _ = await http.post(TE, engine())
    _, child, _ = await http.post(CMS, _owned("child", owner))
    _, _grandchild, _ = await http.post(CMS, _owned("grandchild", child))
    await http.post(CMS, configmap("bystander"))
    code, _, _ = await http.delete(f"{TE}/btc")
    assert code == 200
    for name in ("child", "grandchild"):
        code, _, _ = await http.get(f"{CMS}/{name}")
        assert code == 404, name
    code, _, _ = await http.get(f"{CMS}/bystander")
    assert code == 200


async def test_garbage_collection_dangling_owner_and_orphan(http: Any) -> None:
    ghost = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ghost", "uid": "00000000-dead"},
    }
    code, _, _ = await http.post(CMS, _owned("orphaned", ghost))
    assert code == 201
    code, _, _ = await http.get(f"{CMS}/orphaned")
    assert code == 404  # its owner never existed: collected
    _, owner, _ = await http.post(CMS, configmap("owner"))
    await http.post(CMS, _owned("kept", owner))
    await http.delete(f"{CMS}/owner", {"propagationPolicy": "Orphan"})
    code, kept, _ = await http.get(f"{CMS}/kept")
    assert code == 200 and "ownerReferences" not in kept["metadata"]


async def test_garbage_collection_foreground(server: ApiServer, http: Any) -> None:
    _, owner, _ = await http.post(CMS, configmap("owner"))
    child = _owned("child", owner, blockOwnerDeletion=True)
    child["metadata"]["finalizers"] = ["hold"]
    await http.post(CMS, child)
    code, obj, _ = await http.delete(f"{CMS}/owner", {"propagationPolicy": "Foreground"})
    assert code == 200 and "foregroundDeletion" in obj["metadata"]["finalizers"]
    _, held, _ = await http.get(f"{CMS}/child")
    assert held["metadata"]["deletionTimestamp"]
    code, _, _ = await http.get(f"{CMS}/owner")
    assert code == 200  # waits for its dependents
    await http.patch(f"{CMS}/child", {"metadata": {"finalizers": None}})
    for name in ("owner", "child"):
        code, _, _ = await http.get(f"{CMS}/{name}")
        assert code == 404, name
    assert server.store.write_count("delete", "configmaps", actor="garbage-collector") == 1


async def test_namespace_deletion_removes_content(http: Any) -> None:
    code, ns, _ = await http.post("/api/v1/namespaces", {"metadata": {"name": "team"}})
    assert code == 201 and ns["status"]["phase"] == "Active"
    await http.post("/api/v1/namespaces/team/configmaps", configmap("c"))
    _, sa, _ = await http.get("/api/v1/namespaces/team/serviceaccounts/default")
    assert sa["metadata"]["name"] == "default"
    await http.delete("/api/v1/namespaces/team")
    code, _, _ = await http.get("/api/v1/namespaces/team")
    assert code == 404
    code, _, _ = await http.get("/api/v1/namespaces/team/configmaps/c")
    assert code == 404


async def test_namespace_terminating_refuses_new_content(http: Any) -> None:
    await http.post("/api/v1/namespaces", {"metadata": {"name": "busy"}})
    await http.post("/api/v1/namespaces/busy/pods", pod())  # graceful: holds the namespace
    _, ns, _ = await http.delete("/api/v1/namespaces/busy")
    assert ns["status"]["phase"] == "Terminating"
    code, status, _ = await http.post("/api/v1/namespaces/busy/configmaps", configmap("c"))
    assert code == 403 and status["reason"] == "Forbidden"
    await http.delete("/api/v1/namespaces/busy/pods/p1", params={"gracePeriodSeconds": "0"})
    code, _, _ = await http.get("/api/v1/namespaces/busy")
    assert code == 404


# -- selectors ---------------------------------------------------------------------------


def test_label_selector_parsing() -> None:
    labels = {"metadata": {"labels": {"app": "web", "tier": "front", "n": "5"}}}

    def match(text: str) -> bool:
        return selectors.LabelSelector.parse(text).matches(labels)

    assert match("app=web") and match("app==web") and not match("app!=web")
    assert match("app in (web, db),tier notin (back)") and not match("app notin (web)")
    assert match("tier") and not match("!tier") and match("!missing")
    assert match("n>3") and not match("n<3")
    assert match("missing!=x")


async def test_label_and_field_selectors_on_list(http: Any) -> None:
    for name, labels in (("a", {"app": "web"}), ("b", {"app": "db"}), ("c", {})):
        await http.post(CMS, configmap(name, labels=labels))

    async def names(**params: str) -> list[str]:
        code, body, _ = await http.get(CMS, params=params)
        assert code == 200, body
        return sorted(i["metadata"]["name"] for i in body["items"])

    assert await names(labelSelector="app=web") == ["a"]
    assert await names(labelSelector="app!=web") == ["b", "c"]
    assert await names(labelSelector="app in (web,db)") == ["a", "b"]
    assert await names(labelSelector="app notin (web)") == ["b", "c"]
    assert await names(labelSelector="app") == ["a", "b"]
    assert await names(labelSelector="!app") == ["c"]
    assert await names(fieldSelector="metadata.name=b") == ["b"]
    assert await names(fieldSelector="metadata.name!=b,metadata.namespace=default") == ["a", "c"]
    code, status, _ = await http.get(CMS, params={"fieldSelector": "data.k=v"})
    assert code == 400 and "field label not supported: data.k" in status["message"]


async def test_pod_and_event_field_selectors(http: Any) -> None:
    await http.post(PODS, pod("p1"))
    await http.patch(f"{PODS}/p1/status", {"status": {"phase": "Running"}})
    await http.post(PODS, pod("p2"))
    _, body, _ = await http.get("/api/v1/pods", params={"fieldSelector": "status.phase=Running"})
    assert [i["metadata"]["name"] for i in body["items"]] == ["p1"]
    _, body, _ = await http.get(PODS, params={"fieldSelector": "spec.nodeName=sandbox"})
    assert len(body["items"]) == 2
    event = {
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default"},
        "reason": "Started",
        "message": "hi",
        "type": "Normal",
    }
    await http.post("/api/v1/namespaces/default/events", event)
    _, body, _ = await http.get(
        "/api/v1/namespaces/default/events",
        params={"fieldSelector": "involvedObject.kind=Pod,involvedObject.name=p1"},
    )
    assert [i["metadata"]["name"] for i in body["items"]] == ["e1"]
    _, body, _ = await http.get(
        "/apis/events.k8s.io/v1/namespaces/default/events",
        params={"fieldSelector": "regarding.name=p1"},
    )
    assert body["items"][0]["note"] == "hi" and body["items"][0]["regarding"]["name"] == "p1"


# -- watch -------------------------------------------------------------------------------


async def test_watch_from_list_resource_version(http: Any) -> None:
    await http.post(CMS, configmap("before"))
    _, listed, _ = await http.get(CMS)
    rv = listed["metadata"]["resourceVersion"]
    watch = await http.watch(CMS, {"resourceVersion": rv})
    try:
        await http.post(CMS, configmap("after"))
        await http.patch(f"{CMS}/after", {"data": {"k": "2"}})
        await http.delete(f"{CMS}/after")
        events = [await watch.next() for _ in range(3)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
            ("ADDED", "after"),
            ("MODIFIED", "after"),
            ("DELETED", "after"),
        ]
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        assert rvs == sorted(rvs) and rvs[0] > int(rv)
    finally:
        watch.close()


async def test_watch_without_resource_version_sends_current_state(http: Any) -> None:
    await http.post(CMS, configmap("existing"))
    watch = await http.watch(CMS, {})
    try:
        event = await watch.next()
        assert event is not None
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "existing")
    finally:
        watch.close()


async def test_watch_replays_history_and_expires_with_410() -> None:
    api = ApiServer(port=0, history_size=3)
    await api.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(api.url + CMS) as response:
                rv = int((await response.json())["metadata"]["resourceVersion"])
            await session.post(api.url + CMS, json=configmap("one"))
            async with session.get(
                api.url + CMS, params={"watch": "1", "resourceVersion": str(rv)}
            ) as response:
                event = json.loads(await response.content.readline())
                assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "one"
            for index in range(5):
                await session.post(api.url + CMS, json=configmap(f"more{index}"))
            async with session.get(
                api.url + CMS, params={"watch": "1", "resourceVersion": str(rv)}
            ) as response:
                assert response.status == 200
                event = json.loads(await response.content.readline())
                assert event["type"] == "ERROR"
                assert event["object"]["code"] == 410
                assert event["object"]["reason"] == "Expired"
                assert event["object"]["message"].startswith(f"too old resource version: {rv}")
                assert await response.content.readline() == b""
    finally:
        await api.stop()


async def test_watch_bookmarks_and_timeout(server: ApiServer, http: Any) -> None:
    _, listed, _ = await http.get(CMS)
    watch = await http.watch(
        CMS,
        {
            "resourceVersion": listed["metadata"]["resourceVersion"],
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "1",
        },
    )
    try:
        await http.post(
            "/api/v1/namespaces/default/secrets",
            {"metadata": {"name": "s"}, "stringData": {"a": "b"}},
        )
        bookmark = await watch.until(lambda e: e["type"] == "BOOKMARK")
        assert bookmark["object"]["kind"] == "ConfigMap"
        assert int(bookmark["object"]["metadata"]["resourceVersion"]) == (
            server.store.resource_version
        )
        with contextlib.suppress(AssertionError):
            await watch.until(lambda e: False, within=3)  # drains until the server closes
        assert await watch.next() is None
    finally:
        watch.close()


async def test_watch_initial_events_end_bookmark(http: Any) -> None:
    await http.post(CMS, configmap("a"))
    watch = await http.watch(
        CMS,
        {
            "sendInitialEvents": "true",
            "allowWatchBookmarks": "true",
            "resourceVersionMatch": "NotOlderThan",
        },
    )
    try:
        first = await watch.next()
        assert first is not None and first["type"] == "ADDED"
        end = await watch.until(lambda e: e["type"] == "BOOKMARK")
        assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    finally:
        watch.close()


async def test_watch_all_namespaces_and_cluster_scoped(http: Any) -> None:
    pods = await http.watch("/api/v1/pods", {"resourceVersion": "1"})
    namespaces = await http.watch("/api/v1/namespaces", {"resourceVersion": "1"})
    try:
        await http.post("/api/v1/namespaces", {"metadata": {"name": "other"}})
        await http.post("/api/v1/namespaces/other/pods", pod("x"))
        await http.post(PODS, pod("y"))
        added = await namespaces.until(lambda e: e["object"]["metadata"]["name"] == "other")
        assert added["type"] == "ADDED"
        seen = set()
        while len(seen) < 2:
            event = await pods.next()
            assert event is not None
            seen.add(
                (event["object"]["metadata"]["namespace"], event["object"]["metadata"]["name"])
            )
        assert seen == {("other", "x"), ("default", "y")}
    finally:
        pods.close()
        namespaces.close()


async def test_watch_with_selectors_translates_transitions(http: Any) -> None:
    await http.post(CMS, configmap("a"))
    _, listed, _ = await http.get(CMS)
    watch = await http.watch(
        CMS, {"resourceVersion": listed["metadata"]["resourceVersion"], "labelSelector": "app=web"}
    )
    try:
        await http.patch(f"{CMS}/a", {"metadata": {"labels": {"app": "web"}}})
        await http.patch(f"{CMS}/a", {"data": {"k": "2"}})
        await http.patch(f"{CMS}/a", {"metadata": {"labels": {"app": "db"}}})
        events = [await watch.next() for _ in range(3)]
        assert [e["type"] for e in events if e] == ["ADDED", "MODIFIED", "DELETED"]
    finally:
        watch.close()


async def test_watch_with_field_selector_on_one_object(http: Any) -> None:
    watch = await http.watch(CMS, {"fieldSelector": "metadata.name=target"})
    try:
        await http.post(CMS, configmap("other"))
        await http.post(CMS, configmap("target"))
        event = await watch.next()
        assert event is not None and event["object"]["metadata"]["name"] == "target"
    finally:
        watch.close()


# -- patches -----------------------------------------------------------------------------


def test_merge_patch_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    result = patch.merge_patch(target, {"a": "z", "c": {"f": None}, "l": [3]})
    assert result == {"a": "z", "c": {"d": "e"}, "l": [3]}
    assert target["c"] == {"d": "e", "f": "g"}  # not modified in place


def test_json_patch_rfc6902() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    result = patch.json_patch(
        doc,
        [
            {"op": "test", "path": "/c", "value": "x"},
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
            {"op": "remove", "path": "/a/b/0"},
        ],
    )
    assert result == {"a": {"b": [2, 3]}, "c": "y", "e/f": "y"}
    with pytest.raises(patch.PatchError):
        patch.json_patch(doc, [{"op": "test", "path": "/c", "value": "nope"}])


def test_strategic_merge_patch_directives() -> None:
    target = {
        "spec": {
            "containers": [
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "b:1"},
            ]
        },
        "metadata": {"finalizers": ["f1"]},
    }
    result = patch.strategic_merge_patch(
        target,
        {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "spec": {
                "containers": [
                    {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                    {"name": "b", "$patch": "delete"},
                    {"name": "c", "image": "c:1"},
                ]
            },
            "metadata": {"finalizers": ["f2"]},
        },
    )
    containers = result["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "c"]
    assert containers[0]["image"] == "a:1"
    assert containers[0]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert result["metadata"]["finalizers"] == ["f1", "f2"]
    replaced = patch.strategic_merge_patch(target, {"spec": {"$patch": "replace", "x": 1}})
    assert replaced["spec"] == {"x": 1}


async def test_patch_types_over_http(http: Any) -> None:
    await http.post(TE, engine())
    code, obj, _ = await http.patch(
        f"{TE}/btc",
        [
            {"op": "test", "path": "/spec/mode", "value": "paper"},
            {"op": "replace", "path": "/spec/paused", "value": True},
        ],
        kind="json",
    )
    assert code == 200 and obj["spec"]["paused"] is True
    code, status, _ = await http.patch(
        f"{TE}/btc", [{"op": "test", "path": "/spec/mode", "value": "live"}], kind="json"
    )
    assert code == 422 and status["kind"] == "Status"
    code, status, _ = await http.patch(f"{TE}/btc", {"spec": {"paused": False}}, kind="strategic")
    assert code == 415 and status["reason"] == "UnsupportedMediaType"
    await http.post(
        PODS,
        {
            **pod(),
            "spec": {
                "containers": [
                    {"name": "main", "image": "busybox:1.36", "env": [{"name": "A", "value": "1"}]}
                ]
            },
        },
    )
    code, obj, _ = await http.patch(
        f"{PODS}/p1",
        {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}},
        kind="strategic",
    )
    assert code == 200, obj
    assert obj["spec"]["containers"][0]["image"] == "busybox:1.37"
    assert obj["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    code, obj, _ = await http.patch(
        f"{PODS}/p1/status",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        kind="strategic",
    )
    types = {c["type"] for c in obj["status"]["conditions"]}
    assert types == {"PodScheduled", "Ready"}  # merged by type
    code, status, _ = await http.patch(
        f"{PODS}/p1", {"spec": {"restartPolicy": "Never"}}, kind="strategic"
    )
    assert code == 422 and status["details"]["causes"][0]["field"] == "spec"


async def test_server_side_apply(http: Any) -> None:
    manifest = yaml.safe_dump(engine()).encode()
    code, _status, _ = await http.patch(f"{TE}/btc", manifest, kind="apply")
    assert code == 400  # fieldManager is required
    code, obj, _ = await http.patch(
        f"{TE}/btc", manifest, kind="apply", params={"fieldManager": "me"}
    )
    assert code == 201 and obj["spec"]["mode"] == "paper"
    changed = engine()
    changed["spec"]["paused"] = True
    code, obj, _ = await http.patch(
        f"{TE}/btc", yaml.safe_dump(changed).encode(), kind="apply", params={"fieldManager": "me"}
    )
    assert code == 200 and obj["spec"]["paused"] is True and obj["metadata"]["generation"] == 2


# -- tables ------------------------------------------------------------------------------


def test_jsonpath_and_human_duration() -> None:
    obj = {
        "status": {
            "conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]
        }
    }
    assert tables.jsonpath.find(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert tables.jsonpath.find(obj, ".status.conditions[*].type") == ["A", "Ready"]
    assert tables.jsonpath.find(obj, ".status.conditions[0].type") == ["A"]
    assert tables.jsonpath.find(obj, ".status.missing") == []
    assert [tables.human_duration(s) for s in (5, 150, 3600 * 5 + 60, 86400 * 3)] == [
        "5s",
        "2m30s",
        "5h1m",
        "3d",
    ]


async def test_table_for_custom_resource_printer_columns(http: Any) -> None:
    await http.post(TE, engine())
    await http.patch(
        f"{TE}/btc/status",
        {
            "status": {
                "phase": "Running",
                "equity": "1000",
                "riskState": "ACTIVE",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastTransitionTime": "2024-01-01T00:00:00Z",
                    }
                ],
            }
        },
    )
    code, table, _ = await http.get(TE, headers={"Accept": TABLE})
    assert code == 200 and table["kind"] == "Table"
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Mode", "Phase", "Risk", "Ready", "Equity", "PnL", "Age"]
    cells = table["rows"][0]["cells"]
    assert cells[:7] == ["btc", "paper", "Running", "ACTIVE", "True", "1000", None]
    assert cells[7].endswith("s")
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    code, one, _ = await http.get(
        f"{TE}/btc", headers={"Accept": TABLE}, params={"includeObject": "Object"}
    )
    assert one["rows"][0]["object"]["kind"] == "TradingEngine"


async def test_table_for_pods_and_generic_kinds(http: Any) -> None:
    await http.post(PODS, pod())
    _, table, _ = await http.get(PODS, headers={"Accept": TABLE})
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert table["rows"][0]["cells"][:4] == ["p1", "0/1", "Pending", 0]
    _, table, _ = await http.get(
        "/apis/coordination.k8s.io/v1/namespaces/default/leases", headers={"Accept": TABLE}
    )
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Holder", "Age"]


# -- events ------------------------------------------------------------------------------


async def test_events_core_and_events_k8s_io(http: Any) -> None:
    code, _, _ = await http.post(
        "/api/v1/namespaces/default/events",
        {
            "metadata": {"name": "core"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Pulled",
            "message": "pulled",
            "type": "Normal",
            "count": 1,
        },
    )
    assert code == 201
    code, created, _ = await http.post(
        "/apis/events.k8s.io/v1/namespaces/default/events",
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "new"},
            "regarding": {"kind": "Pod", "name": "p"},
            "reason": "Started",
            "note": "started",
            "type": "Normal",
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "reportingController": "hean",
            "reportingInstance": "hean-1",
            "action": "Start",
        },
    )
    assert code == 201 and created["note"] == "started"
    _, core, _ = await http.get("/api/v1/namespaces/default/events")
    by_name = {e["metadata"]["name"]: e for e in core["items"]}
    assert by_name["new"]["message"] == "started"
    assert by_name["new"]["involvedObject"]["name"] == "p"
    assert by_name["new"]["reportingComponent"] == "hean"
    _, modern, _ = await http.get("/apis/events.k8s.io/v1/namespaces/default/events")
    assert {e["metadata"]["name"] for e in modern["items"]} == {"core", "new"}
    assert modern["apiVersion"] == "events.k8s.io/v1" and modern["kind"] == "EventList"
    assert {e["note"] for e in modern["items"]} == {"pulled", "started"}


# -- audit -------------------------------------------------------------------------------


async def test_write_counts(server: ApiServer, http: Any) -> None:
    await http.post(TE, engine())
    await http.patch(f"{TE}/btc", {"spec": {"paused": True}})
    await http.patch(f"{TE}/btc", {"spec": {"paused": True}})  # no-op
    await http.patch(f"{TE}/btc/status", {"status": {"phase": "Running"}})
    store = server.store
    assert store.write_count("create", "tradingengines") == 1
    assert store.write_count("patch", "tradingengines", "default", "btc") == 3
    assert store.write_count("patch", "tradingengines", changed_only=True) == 2
    assert store.write_count("patch", "tradingengines", subresource="status") == 1
    assert store.write_counts()[("patch", "tradingengines/status")] == 1


async def test_token_auth(tmp_path: Path) -> None:
    from kubernetes import client, config

    api = ApiServer(port=0, token="s3cret")
    await api.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(api.url + "/api/v1/namespaces") as response:
                assert response.status == 401
                assert (await response.json())["reason"] == "Unauthorized"
            async with session.get(
                api.url + "/api/v1/namespaces", headers={"Authorization": "Bearer s3cret"}
            ) as response:
                assert response.status == 200
            async with session.get(api.url + "/version") as response:
                assert response.status == 200
        api.write_kubeconfig(tmp_path / "kc")
        assert yaml.safe_load((tmp_path / "kc").read_text())["users"][0]["user"] == {
            "token": "s3cret"
        }
        api_client = config.new_client_from_config(config_file=str(tmp_path / "kc"))
        core = client.CoreV1Api(api_client)
        namespaces = await asyncio.to_thread(core.list_namespace)
        assert "default" in {n.metadata.name for n in namespaces.items}
        api_client.close()
    finally:
        await api.stop()


# -- kubectl -----------------------------------------------------------------------------

_MANIFEST = yaml.safe_dump(engine("eth", market={"symbol": "ETH/USDT"}))


async def test_kubectl_apply_get_and_output_formats(kubectl: Any, http: Any) -> None:
    result = await kubectl("apply", "-f", "-", stdin=_MANIFEST)
    assert "tradingengine.hean.io/eth created" in result.stdout
    result = await kubectl("apply", "-f", "-", stdin=_MANIFEST)
    assert "tradingengine.hean.io/eth unchanged" in result.stdout
    changed = _MANIFEST.replace("ETH/USDT", "ETH/BTC")
    result = await kubectl("apply", "-f", "-", stdin=changed)
    assert "tradingengine.hean.io/eth configured" in result.stdout
    _, obj, _ = await http.get(f"{TE}/eth")
    assert obj["spec"]["market"]["symbol"] == "ETH/BTC"
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    assert obj["metadata"]["generation"] == 2
    await http.patch(f"{TE}/eth/status", {"status": {"phase": "Running", "equity": "42"}})
    result = await kubectl("get", "tradingengines")
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "MODE", "PHASE", "RISK", "READY", "EQUITY", "PNL", "AGE"]
    assert row.split()[:3] == ["eth", "paper", "Running"] and "42" in row
    result = await kubectl("get", "te", "eth", "-o", "yaml")
    assert yaml.safe_load(result.stdout)["spec"]["market"]["symbol"] == "ETH/BTC"
    result = await kubectl("get", "te", "-o", "json")
    assert json.loads(result.stdout)["items"][0]["metadata"]["name"] == "eth"
    result = await kubectl(
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump(engine("eth", mode="live", market={"symbol": "ETH/USDT"})),
        check=False,
    )
    assert result.returncode != 0
    assert "live mode needs exchange.credentialsSecret" in result.stderr
    result = await kubectl(
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump(engine("eth", bogus=1, market={"symbol": "ETH/USDT"})),
        check=False,
    )
    assert result.returncode != 0 and 'unknown field "spec.bogus"' in result.stderr


async def test_kubectl_apply_builtins_and_server_side(kubectl: Any, http: Any) -> None:
    manifest = yaml.safe_dump(configmap("settings", labels={"app": "x"}))
    result = await kubectl("apply", "-f", "-", stdin=manifest)
    assert "configmap/settings created" in result.stdout
    result = await kubectl("apply", "-f", "-", stdin=manifest.replace("k: v", "k: w"))
    assert "configmap/settings configured" in result.stdout
    _, cm, _ = await http.get(f"{CMS}/settings")
    assert cm["data"] == {"k": "w"}
    pod_manifest = yaml.safe_dump(pod("web"))
    await kubectl("apply", "-f", "-", stdin=pod_manifest)
    result = await kubectl("apply", "-f", "-", stdin=pod_manifest.replace("1.36", "1.37"))
    assert "pod/web configured" in result.stdout
    result = await kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(engine("ssa")))
    assert "serverside-applied" in result.stdout
    result = await kubectl("get", "pods")
    assert result.stdout.split("\n")[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]


async def test_kubectl_describe_lists_events(kubectl: Any, http: Any) -> None:
    _, te, _ = await http.post(TE, engine())
    await http.post(PODS, pod())
    _, p, _ = await http.get(f"{PODS}/p1")
    for obj, kind in ((te, "TradingEngine"), (p, "Pod")):
        await http.post(
            "/api/v1/namespaces/default/events",
            {
                "metadata": {"generateName": "ev-"},
                "involvedObject": {
                    "apiVersion": obj["apiVersion"],
                    "kind": kind,
                    "name": obj["metadata"]["name"],
                    "namespace": "default",
                    "uid": obj["metadata"]["uid"],
                },
                "reason": f"{kind}Reason",
                "message": f"hello {kind}",
                "type": "Normal",
                "source": {"component": "hean"},
                "count": 1,
                "firstTimestamp": te["metadata"]["creationTimestamp"],
                "lastTimestamp": te["metadata"]["creationTimestamp"],
            },
        )
    result = await kubectl("describe", "tradingengine", "btc")
    assert "Name:" in result.stdout and "TradingEngineReason" in result.stdout
    assert "hello TradingEngine" in result.stdout
    result = await kubectl("describe", "pod", "p1")
    assert "PodReason" in result.stdout and "busybox:1.36" in result.stdout
    result = await kubectl("get", "events")
    assert "TradingEngineReason" in result.stdout and "pod/p1" in result.stdout


async def test_kubectl_patch_create_namespace_and_delete(kubectl: Any, http: Any) -> None:
    await http.post(TE, engine())
    result = await kubectl("patch", "te", "btc", "--type=merge", "-p", '{"spec":{"paused":true}}')
    assert "tradingengine.hean.io/btc patched" in result.stdout
    _, obj, _ = await http.get(f"{TE}/btc")
    assert obj["spec"]["paused"] is True
    result = await kubectl(
        "patch",
        "te",
        "btc",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Paused"}}',
    )
    _, obj, _ = await http.get(f"{TE}/btc")
    assert obj["status"]["phase"] == "Paused"
    result = await kubectl("create", "namespace", "trading")  # a protobuf body
    assert "namespace/trading created" in result.stdout
    await kubectl("create", "configmap", "cfg", "-n", "trading", "--from-literal=a=b")
    await kubectl(
        "create", "secret", "generic", "keys", "-n", "trading", "--from-literal=apiKey=abc"
    )
    _, cm, _ = await http.get("/api/v1/namespaces/trading/configmaps/cfg")
    assert cm["data"] == {"a": "b"} and "generateName" not in cm["metadata"]
    _, secret, _ = await http.get("/api/v1/namespaces/trading/secrets/keys")
    assert base64.b64decode(secret["data"]["apiKey"]) == b"abc"
    result = await kubectl("delete", "te", "btc")
    assert 'tradingengine.hean.io "btc" deleted' in result.stdout
    code, _, _ = await http.get(f"{TE}/btc")
    assert code == 404


async def test_kubectl_delete_waits_for_finalizers(
    server: ApiServer, kubectl: Any, http: Any
) -> None:
    body = engine()
    body["metadata"]["finalizers"] = ["hean.io/cleanup"]
    await http.post(TE, body)
    deleting = asyncio.create_task(kubectl("delete", "te", "btc", "--wait", "--timeout=20s"))
    await server.wait_for_watchers(resource="tradingengines")
    _, obj, _ = await http.get(f"{TE}/btc")
    assert obj["metadata"]["deletionTimestamp"]
    assert not deleting.done()
    await http.patch(f"{TE}/btc", {"metadata": {"finalizers": []}})
    result = await deleting
    assert 'tradingengine.hean.io "btc" deleted' in result.stdout


async def test_kubectl_wait_for_condition(server: ApiServer, kubectl: Any, http: Any) -> None:
    await http.post(TE, engine())
    waiting = asyncio.create_task(
        kubectl("wait", "--for=condition=Ready", "tradingengine/btc", "--timeout=20s")
    )
    await server.wait_for_watchers(resource="tradingengines")
    assert not waiting.done()
    await http.patch(
        f"{TE}/btc/status",
        {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastTransitionTime": "2024-01-01T00:00:00Z",
                        "observedGeneration": 1,
                    }
                ]
            }
        },
    )
    result = await waiting
    assert "tradingengine.hean.io/btc condition met" in result.stdout


# -- the kubernetes client and kopf ------------------------------------------------------


def test_kubernetes_client_through_server_thread(tmp_path: Path) -> None:
    from kubernetes import client, config, watch

    with ServerThread(port=0) as thread:
        thread.load_crds([CRD_FILE])
        thread.write_kubeconfig(tmp_path / "kc")
        api_client = config.new_client_from_config(config_file=str(tmp_path / "kc"))
        core = client.CoreV1Api(api_client)
        core.create_namespaced_config_map(
            "default",
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="c", labels={"a": "b"}), data={"k": "v"}
            ),
        )
        listed = core.list_namespaced_config_map("default", label_selector="a=b")
        assert [i.metadata.name for i in listed.items] == ["c"]
        core.patch_namespaced_config_map("c", "default", {"data": {"k": "w"}})
        assert core.read_namespaced_config_map("c", "default").data == {"k": "w"}
        custom = client.CustomObjectsApi(api_client)
        custom.create_namespaced_custom_object(
            "hean.io", "v1alpha1", "default", "tradingengines", engine()
        )
        custom.patch_namespaced_custom_object_status(
            "hean.io",
            "v1alpha1",
            "default",
            "tradingengines",
            "btc",
            {"status": {"phase": "Running"}},
        )
        obj = custom.get_namespaced_custom_object(
            "hean.io", "v1alpha1", "default", "tradingengines", "btc"
        )
        assert obj["status"]["phase"] == "Running" and obj["spec"]["mode"] == "paper"
        with pytest.raises(client.ApiException) as info:
            core.read_namespaced_pod("missing", "default")
        assert info.value.status == 404
        stream = watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        )
        core.delete_namespaced_config_map("c", "default")
        for event in stream:
            if event["type"] == "DELETED":
                assert event["object"].metadata.name == "c"
                break
        assert thread.call(lambda: thread.store.write_count("delete", "configmaps")) == 1
        api_client.close()


async def test_kopf_operator_handles_creation(server: ApiServer, http_no_keepalive: Any) -> None:
    # No keep-alive connections: on exit kopf waits for every task of the loop it shares.
    import kopf

    http = http_no_keepalive

    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server.url, insecure=True)

    @kopf.on.create("hean.io", "v1alpha1", "tradingengines", registry=registry)
    def created(spec: Any, patch: Any, **_: Any) -> None:
        patch.status["phase"] = "Running"
        patch.status["mode"] = spec["mode"]

    settings = kopf.OperatorSettings()
    settings.posting.enabled = True
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=settings,
            standalone=True,
            namespaces=["default"],
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await server.wait_for_watchers(resource="tradingengines")
        _, listed, _ = await http.get(TE)
        watch = await http.watch(TE, {"resourceVersion": listed["metadata"]["resourceVersion"]})
        await http.post(TE, engine())
        done = await watch.until(
            lambda e: (e["object"].get("status") or {}).get("phase") == "Running", within=15
        )
        watch.close()
        assert done["object"]["status"]["mode"] == "paper"
        assert done["object"]["metadata"]["generation"] == 1  # status writes: no bump
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def test_builtin_resources_have_unique_group_version_plural() -> None:
    keys = [(r.group, r.version, r.plural) for r in builtin_resources()]
    assert len(keys) == len(set(keys))
    assert base64.b64encode(b"x")  # keep the import honest for the secret test below


async def test_secret_string_data_is_encoded(http: Any) -> None:
    code, secret, _ = await http.post(
        "/api/v1/namespaces/default/secrets",
        {"metadata": {"name": "keys"}, "stringData": {"apiKey": "abc"}},
    )
    assert code == 201 and secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["apiKey"]) == b"abc"
    assert "stringData" not in secret


async def test_table_over_watch(http: Any) -> None:
    _, listed, _ = await http.get(TE)
    watch = await http.watch(
        TE, {"resourceVersion": listed["metadata"]["resourceVersion"]}, headers={"Accept": TABLE}
    )
    try:
        await http.post(TE, engine())
        await http.patch(f"{TE}/btc/status", {"status": {"phase": "Running"}})
        first, second = await watch.next(), await watch.next()
        assert first is not None and second is not None
        assert first["type"] == "ADDED" and first["object"]["kind"] == "Table"
        assert first["object"]["columnDefinitions"][0]["name"] == "Name"
        assert second["type"] == "MODIFIED"
        assert second["object"]["rows"][0]["cells"][:3] == ["btc", "paper", "Running"]
    finally:
        watch.close()


async def test_kubectl_label_annotate_and_explain(kubectl: Any, http: Any) -> None:
    await http.post(TE, engine())
    await kubectl("label", "te", "btc", "desk=crypto")
    await kubectl("annotate", "te", "btc", "note=hello")
    _, obj, _ = await http.get(f"{TE}/btc")
    assert obj["metadata"]["labels"] == {"desk": "crypto"}
    assert obj["metadata"]["annotations"] == {"note": "hello"}
    result = await kubectl("get", "te", "-l", "desk=crypto", "-o", "name")
    assert result.stdout.strip() == "tradingengine.hean.io/btc"
    result = await kubectl("explain", "tradingengines.spec.risk")
    assert "Limits every order intent is checked against." in result.stdout


async def test_collection_delete_honours_dry_run(http: Any) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    for name in ("a", "b"):
        status, _, _ = await http.post(base, {"metadata": {"name": name, "labels": {"x": "1"}}})
        assert status == 201
    status, body, _ = await http.delete(base, params={"labelSelector": "x=1", "dryRun": "All"})
    assert status == 200 and len(body["items"]) == 2
    _, listing, _ = await http.get(base, params={"labelSelector": "x=1"})
    assert [i["metadata"]["name"] for i in listing["items"]] == ["a", "b"]
    await http.delete(base, params={"labelSelector": "x=1"})
    _, listing, _ = await http.get(base, params={"labelSelector": "x=1"})
    assert listing["items"] == []
