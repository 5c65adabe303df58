"""The chart renders, lints, and every object is valid Kubernetes (1.29 to 1.33)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART_DIR,
    KUBE_VERSIONS,
    NAMESPACE,
    REPO_ROOT,
    SCENARIOS,
    Helm,
    HelmError,
    objects_of,
    one_of,
    watched,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hean_contract.spec import parse_spec
from hean_engine.approval.trust import trust_from_files
from hean_operator.builders.common import EngineRef
from hean_operator.builders.pod import EngineImage, build_pod
from hean_operator.cli import run_operator_command

Rendered = Callable[[str], list[dict[str, Any]]]
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
# Objects identical across scenarios (the CRD, most RBAC) are validated once per version.
_VALID: set[tuple[str, str]] = set()


def _pyproject_version() -> str:
    import tomllib

    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


# -- chart metadata ---------------------------------------------------------------


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "hean"
    assert chart["kubeVersion"].startswith(">=1.29")
    assert chart["appVersion"] == _pyproject_version()


def test_chart_crds_are_the_generated_crds() -> None:
    generated = {p.name: p.read_bytes() for p in (REPO_ROOT / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (CHART_DIR / "crds").glob("*.yaml")}
    assert generated, "no generated CRDs in crds/"
    assert shipped.keys() == generated.keys(), "copy crds/*.yaml to charts/hean/crds/"
    for name, content in generated.items():
        assert shipped[name] == content, f"charts/hean/crds/{name} differs from crds/{name}"


@pytest.mark.parametrize("kube_version", ["1.27.0", "1.28.9"])
def test_kube_version_below_minimum_is_refused(helm: Helm, kube_version: str) -> None:
    with pytest.raises(HelmError, match="kubeVersion"):
        helm.template(kube_version=kube_version)


# -- lint and validation ----------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_strict(helm: Helm, scenario: str) -> None:
    args = ["lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE]
    if SCENARIOS[scenario].values:
        args += ["--values", str(helm.values_file(SCENARIOS[scenario].values))]
    done = helm.run(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_supported_kube_versions_render(helm: Helm, kube_version: str) -> None:
    assert one_of(helm.template(kube_version=kube_version), "Deployment")


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_objects_are_valid(rendered: Rendered, scenario: str, kube_version: str) -> None:
    objects = rendered(scenario)
    validated = 0
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            # kubernetes-validate knows only built-in kinds; test_chart_monitoring.py
            # checks these objects' contents instead.
            assert obj["kind"] in MONITORING_KINDS
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        key = (json.dumps(obj, sort_keys=True), kube_version)
        if key not in _VALID:
            try:
                kubernetes_validate.validate(obj, kube_version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name} is invalid for Kubernetes {kube_version}: {exc.message}")
            _VALID.add(key)
        validated += 1
    assert validated >= 8


def test_unknown_values_are_rejected(helm: Helm) -> None:
    for bad in (
        {"bogus": 1},
        {"engine": {"image": {"tga": "1.0"}}},
        {"monitoring": {"serviceMonitor": {"enabled": "yes"}}},
        {"watchNamespaces": ["Not_A_Namespace"]},
        {"pollInterval": 0},
        {"liveApprovals": {"trustedKeys": {"k": "not a PEM"}}},
        {"liveApprovals": {"requiredSignatures": 0}},
    ):
        with pytest.raises(HelmError, match=r"(?i)schema|values"):
            helm.template(bad)


def test_schema_describes_every_default_value() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

    def walk(node: dict[str, Any], value: Any, path: str) -> None:
        if node.get("type") != "object" or "properties" not in node:
            return
        assert node.get("additionalProperties") is False, f"{path or '.'}: additionalProperties"
        assert isinstance(value, dict), path
        missing = set(value) - set(node["properties"])
        assert not missing, f"{path or '.'}: not in values.schema.json: {sorted(missing)}"
        unset = set(node.get("required", ())) - set(value)
        assert not unset, f"{path or '.'}: required by the schema, not in values.yaml: {unset}"
        for key, sub in node["properties"].items():
            if key in value:
                walk(sub, value[key], f"{path}.{key}")

    walk(schema, values, "")


# -- what the objects say ---------------------------------------------------------


def _operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one_of(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_deployment_runs_one_operator(rendered: Rendered) -> None:
    deployment = one_of(rendered("defaults"), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = _operator_container(rendered("defaults"))
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8000, "healthz": 8081}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}, probe


@pytest.mark.parametrize("scenario", ["defaults", "namespaced", "customised"])
def test_operator_args_are_accepted_by_the_cli(rendered: Rendered, scenario: str) -> None:
    container = _operator_container(rendered(scenario))
    assert container["command"] == ["hean"]
    assert container["args"][:2] == ["operator", "run"]
    ctx = run_operator_command.make_context("run", list(container["args"][2:]))
    values = SCENARIOS[scenario].values
    assert ctx.params["namespaces"] == tuple(watched(scenario))
    assert ctx.params["poll_interval"] == values.get("pollInterval", 10)
    assert ctx.params["metrics_port"] == 8000
    assert ctx.params["liveness_port"] == 8081
    assert ctx.params["engine_command"] == "hean"
    expected_engine = {
        "defaults": EngineImage().image,
        "namespaced": EngineImage().image,
        "customised": "registry.example/engine:1.2.3",
    }[scenario]
    assert ctx.params["engine_image"] == expected_engine


def test_default_images_follow_the_app_version(rendered: Rendered) -> None:
    version = _pyproject_version()
    container = _operator_container(rendered("defaults"))
    assert container["image"] == f"ghcr.io/hean-io/hean-operator:{version}"
    assert EngineImage().image.endswith(f":{version}")
    custom = _operator_container(rendered("customised"))
    assert custom["image"] == "ghcr.io/hean-io/hean-operator@sha256:" + "a" * 64


def _pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = [(f"Pod/{o['metadata']['name']}", o["spec"]) for o in objects_of(objects, "Pod")]
    specs += [
        (f"Deployment/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objects_of(objects, "Deployment")
    ]
    return specs


@pytest.mark.parametrize("scenario", ["defaults", "customised"])
def test_pods_meet_the_restricted_pod_security_standard(rendered: Rendered, scenario: str) -> None:
    specs = _pod_specs(rendered(scenario))
    assert len(specs) == 2  # the operator and the helm test pod
    for name, spec in specs:
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc.get("runAsUser", 1) != 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc.get("privileged", False) is False, name
            assert container["resources"]["limits"]["memory"], name


def test_the_operator_knows_its_pod_name(rendered: Rendered) -> None:
    # Its Events' reportingInstance (hean_operator.kube.reporting).
    env = {e["name"]: e for e in _operator_container(rendered("defaults"))["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_operator_writes_only_to_tmp(rendered: Rendered) -> None:
    deployment = one_of(rendered("defaults"), "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]


def test_helm_test_pod_checks_the_liveness_endpoint(rendered: Rendered) -> None:
    objects = rendered("defaults")
    (test_pod,) = [
        o
        for o in objects_of(objects, "Pod")
        if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]
    service = one_of(objects, "Service")
    port = next(p for p in service["spec"]["ports"] if p["targetPort"] == "healthz")
    (container,) = test_pod["spec"]["containers"]
    url = container["command"][-1]
    assert url == f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port['port']}/healthz"
    assert test_pod["spec"]["restartPolicy"] == "Never"
    operator = _operator_container(objects)
    assert container["image"] == operator["image"]  # has python; already pulled


def test_service_exposes_metrics_and_liveness(rendered: Rendered) -> None:
    objects = rendered("defaults")
    service = one_of(objects, "Service")
    deployment = one_of(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {p["name"] for p in _operator_container(objects)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == container_ports


def _trust(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [
        o
        for o in objects_of(objects, "ConfigMap")
        if o["metadata"]["name"].endswith("-liveapproval-trust")
    ]
    return found


def test_liveapproval_trust_configmap(rendered: Rendered, helm: Helm) -> None:
    default = _trust(rendered("defaults"))
    assert default["metadata"]["name"] == "hean-liveapproval-trust"
    assert default["metadata"]["namespace"] == NAMESPACE
    assert default["data"] == {"policy.yaml": "required: 1\n"}
    assert trust_from_files(default["data"]).keys == {}  # the engine's loader reads it
    custom = _trust(rendered("customised"))
    assert set(custom["data"]) == {"policy.yaml", "ops-1.pub", "risk-1.pub"}
    assert yaml.safe_load(custom["data"]["policy.yaml"]) == {"required": 2}
    for key in ("ops-1.pub", "risk-1.pub"):
        assert custom["data"][key].startswith("-----BEGIN PUBLIC KEY-----\n")
        assert custom["data"][key].rstrip().endswith("-----END PUBLIC KEY-----")
    too_many = {
        "liveApprovals": {
            "trustedKeys": SCENARIOS["customised"].values["liveApprovals"]["trustedKeys"],
            "requiredSignatures": 3,
        }
    }
    with pytest.raises(HelmError, match="requiredSignatures"):
        helm.template(too_many)


def test_trust_policy_renders_every_field_the_engine_reads(helm: Helm) -> None:
    def pem() -> str:
        key = Ed25519PrivateKey.generate().public_key()
        return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    # Distinct keys, and the revoked one still listed: the engine refuses one key
    # under two ids and a revoked id without its key (issue 14).
    values = {
        "liveApprovals": {
            "trustedKeys": {"ops-1": pem(), "risk-1": pem(), "old-1": pem()},
            "requiredSignatures": 1,
            "namespaces": {"prod": 2},
            "revoked": ["old-1"],
            "keyNotAfter": {"ops-1": "2027-01-01T00:00:00Z"},
        }
    }
    data = _trust(helm.template(values))["data"]
    assert yaml.safe_load(data["policy.yaml"])["namespaces"] == {"prod": {"required": 2}}
    policy = trust_from_files(data)
    assert set(policy.keys) == {"ops-1", "risk-1", "old-1"}
    assert policy.required_for("prod") == 2 and policy.required_for("dev") == 1
    assert policy.revoked == frozenset({"old-1"})
    assert policy.keys["ops-1"].not_after == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in (
        {"namespaces": {"prod": 4}},  # more than the trusted keys
        {"revoked": ["not a key id"]},
        {"keyNotAfter": {"ops-1": "tomorrow"}},
    ):
        with pytest.raises(HelmError):
            helm.template({"liveApprovals": {**values["liveApprovals"], **bad}})


def test_the_operator_watches_the_trust_configmap(rendered: Rendered) -> None:
    for scenario in ("defaults", "customised"):
        args = _operator_container(rendered(scenario))["args"]
        ctx = run_operator_command.make_context("run", list(args[2:]))
        assert ctx.params["trust_configmap"] == _trust(rendered(scenario))["metadata"]["name"]
        assert ctx.params["trust_namespace"] == NAMESPACE


def test_engine_pods_match_the_chart_assumptions() -> None:
    """The PodMonitor and alerts rely on these facts of the operator's engine pods."""
    spec = yaml.safe_load((REPO_ROOT / "examples" / "paper-engine.yaml").read_text())["spec"]
    pod = build_pod(EngineRef("e", "ns", "uid", 1), parse_spec(spec), EngineImage())
    (container,) = pod["spec"]["containers"]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001  # the images' USER
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "engine"
    assert labels["app.kubernetes.io/name"] == "hean-engine"


def test_notes_render(helm: Helm) -> None:
    done = helm.run("install", "hean", str(CHART_DIR), "--dry-run=client", "-n", NAMESPACE)
    assert done.returncode == 0, done.stderr
    assert "NOTES:" in done.stdout
    assert "helm test hean" in done.stdout


def test_chart_has_no_stray_files() -> None:
    allowed_top = {
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        ".helmignore",
        "README.md",
        "crds",
        "templates",
        "files",
    }
    assert {p.name for p in Path(CHART_DIR).iterdir()} <= allowed_top


def test_engines_are_reachable_only_from_the_operator_and_the_metrics_peers(
    rendered: Rendered,
) -> None:
    """Issue 14 item 5: a NetworkPolicy per watched namespace admits the operator's
    pods (its release namespace, its labels) and `networkPolicy.metricsFrom`, on the
    engines' http port only; a cluster-wide install has no namespace list, so none."""
    policies = objects_of(rendered("namespaced"), "NetworkPolicy")
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["trading-a", "trading-b"]
    for policy in policies:
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        assert spec["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "hean-engine",
            "app.kubernetes.io/component": "engine",
            "app.kubernetes.io/managed-by": "hean-operator",
        }
        operator, metrics = spec["ingress"]
        (peer,) = operator["from"]
        assert peer["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": NAMESPACE
        }
        assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
        assert metrics["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]
        for rule in (operator, metrics):
            assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert objects_of(rendered("clusterwide"), "NetworkPolicy") == []
