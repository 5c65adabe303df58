"""The chart's optional read-only console (`console.enabled`, issue 15 item 4).

Off by default. On: `kubectl-hean console --in-cluster --read-only` from the
operator's image, a ServiceAccount of its own whose rules are exactly the
console's calls (`hean_desk.console.access.CONSOLE_VERBS`: reads only, no
Secrets unless `console.engineHistory` names engines, then only their control
Secrets by name), a ClusterIP Service for `kubectl port-forward`, and, with
`networkPolicy.enabled`, a NetworkPolicy that admits nothing in the cluster.
tests/integration/cluster/test_console_rbac_can_i.py asks a real API server.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

import pytest
from chart_support import NAMESPACE, REPO_ROOT, Helm, HelmError, objects_of, watched

from hean_desk.console import console as console_command
from hean_desk.console.access import CONSOLE_VERBS, HISTORY_VERBS

Rendered = Callable[[str], list[dict[str, Any]]]
Rule = tuple[str, str, str]
CONSOLE = "hean-console"
GROUPS = {"tradingengines": "hean.io", "liveapprovals": "hean.io", "backtests": "hean.io"}
WRITES = {"create", "update", "patch", "delete", "deletecollection", "*"}


def _console_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "console"
    ]


def _rules(role: dict[str, Any]) -> set[Rule]:
    out: set[Rule] = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out |= {(group, resource, verb) for verb in rule["verbs"]}
    return out


EXPECTED = {
    (GROUPS.get(resource, ""), resource, verb)
    for resource, verbs in CONSOLE_VERBS.items()
    for verb in verbs
}


def _deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in _console_objects(objects) if o["kind"] == "Deployment"]
    return deployment


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _deployment(objects)["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("scenario", ["defaults", "namespaced", "clusterwide", "customised"])
def test_off_by_default(rendered: Rendered, scenario: str) -> None:
    assert _console_objects(rendered(scenario)) == []


def test_the_console_table_is_reads_only() -> None:
    assert all(set(verbs) <= {"get", "list", "watch"} for verbs in CONSOLE_VERBS.values())
    assert "secrets" not in CONSOLE_VERBS and "pods" not in CONSOLE_VERBS
    assert HISTORY_VERBS == {"secrets": ("get",)}


@pytest.mark.parametrize("scenario", ["console", "console-clusterwide"])
def test_the_container_runs_the_read_only_in_cluster_console(
    rendered: Rendered, scenario: str
) -> None:
    objects = rendered(scenario)
    container = _container(objects)
    assert container["command"] == ["kubectl-hean"]
    assert container["args"][0] == "console"
    ctx = console_command.make_context("console", list(container["args"][1:]))
    assert ctx.params["in_cluster"] is True
    assert ctx.params["read_only"] is True
    assert ctx.params["no_browser"] is True
    assert ctx.params["address"] == "0.0.0.0"
    assert ctx.params["namespaces"] == tuple(watched(scenario))  # () when cluster-wide
    assert ctx.params["kubeconfig"] is None and ctx.params["context"] is None
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": ctx.params["port"], "protocol": "TCP"}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    # the operator's image: it carries the desk and the Kubernetes client
    operator = next(o for o in objects_of(objects, "Deployment") if o["metadata"]["name"] == "hean")
    assert container["image"] == operator["spec"]["template"]["spec"]["containers"][0]["image"]


def test_the_operator_image_carries_the_console() -> None:
    """docker/operator.Dockerfile installs `hean[operator]`: the desk's package and its
    `kubectl-hean` script are in `hean` itself, the Kubernetes client in the extra."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)
    assert project["project"]["scripts"]["kubectl-hean"] == "hean_desk.plugin:main"
    assert "hean_desk*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    extra = project["project"]["optional-dependencies"]["operator"]
    assert any(d.startswith("kubernetes") for d in extra)
    dockerfile = (REPO_ROOT / "docker" / "operator.Dockerfile").read_text()
    assert '"hean[operator]==${HEAN_VERSION}"' in dockerfile


def test_the_pod_meets_the_restricted_pod_security_standard(rendered: Rendered) -> None:
    spec = _deployment(rendered("console"))["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == CONSOLE
    assert spec["automountServiceAccountToken"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["memory"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_namespaced_rbac_is_exactly_the_consoles_reads(rendered: Rendered) -> None:
    objects = _console_objects(rendered("console"))
    roles = {o["metadata"]["namespace"]: o for o in objects if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"]: o for o in objects if o["kind"] == "RoleBinding"}
    assert set(roles) == set(bindings) == set(watched("console"))
    for namespace, role in roles.items():
        assert role["metadata"]["name"] == CONSOLE
        assert _rules(role) == EXPECTED, namespace
        assert bindings[namespace]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": CONSOLE,
        }
        assert bindings[namespace]["subjects"] == [
            {"kind": "ServiceAccount", "name": CONSOLE, "namespace": NAMESPACE}
        ]
    assert not [o for o in objects if o["kind"].startswith("Cluster")]
    (sa,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert sa["metadata"] == {**sa["metadata"], "name": CONSOLE, "namespace": NAMESPACE}


def test_clusterwide_rbac_is_one_cluster_role_of_the_same_reads(rendered: Rendered) -> None:
    objects = _console_objects(rendered("console-clusterwide"))
    assert not [o for o in objects if o["kind"] in ("Role", "RoleBinding")]
    (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    assert _rules(role) == EXPECTED
    (binding,) = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == CONSOLE
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": CONSOLE, "namespace": NAMESPACE}
    ]


@pytest.mark.parametrize("scenario", ["console", "console-clusterwide"])
def test_nothing_of_the_console_writes(rendered: Rendered, scenario: str) -> None:
    for role in _console_objects(rendered(scenario)):
        if role["kind"] in ("Role", "ClusterRole"):
            for _, resource, verb in _rules(role):
                assert verb not in WRITES, (resource, verb)
                assert resource != "secrets"


def test_engine_history_grants_only_the_named_control_secrets(helm: Helm) -> None:
    values = {
        "watchNamespaces": ["trading-a", "trading-b"],
        "console": {
            "enabled": True,
            "engineHistory": ["trading-a/btc", "trading-a/eth", "trading-b/sol"],
        },
    }
    objects = _console_objects(helm.template(values))
    history = {
        o["metadata"]["namespace"]: o
        for o in objects
        if o["kind"] == "Role" and o["metadata"]["name"] == f"{CONSOLE}-history"
    }
    assert set(history) == {"trading-a", "trading-b"}
    assert history["trading-a"]["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["btc-control", "eth-control"],
            "verbs": list(HISTORY_VERBS["secrets"]),
        }
    ]
    assert history["trading-b"]["rules"][0]["resourceNames"] == ["sol-control"]
    bindings = [
        o
        for o in objects
        if o["kind"] == "RoleBinding" and o["metadata"]["name"] == f"{CONSOLE}-history"
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["trading-a", "trading-b"]
    for binding in bindings:
        assert binding["subjects"][0]["name"] == CONSOLE


def test_engine_history_outside_the_watched_namespaces_is_refused(helm: Helm) -> None:
    values = {"console": {"enabled": True, "engineHistory": ["kube-system/btc"]}}
    with pytest.raises(
        HelmError, match=r"console.engineHistory: kube-system/btc is not in a watched"
    ):
        helm.template(values)
    for bad in (["btc"], ["default/BTC"], ["default/btc", "default/btc"]):
        with pytest.raises(HelmError, match=r"(?i)schema|engineHistory"):
            helm.template({"console": {"enabled": True, "engineHistory": bad}})


def test_bad_console_values_are_rejected(helm: Helm) -> None:
    for bad in (
        {"console": {"enabled": True, "port": 80}},  # privileged: the pod runs as 10001
        {"console": {"enabled": "yes"}},
        {"console": {"readOnly": False}},  # there is no writable console to ask for
        {"console": {"refresh": 0}},
    ):
        with pytest.raises(HelmError, match=r"(?i)schema|values"):
            helm.template(bad)


def test_the_service_is_a_cluster_ip_for_port_forward(rendered: Rendered) -> None:
    objects = rendered("console")
    (service,) = [o for o in _console_objects(objects) if o["kind"] == "Service"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8765, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = _deployment(objects)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # neither Service selects the other's pods
    (operator_service,) = [
        o for o in objects_of(objects, "Service") if o["metadata"]["name"] == "hean"
    ]
    assert not operator_service["spec"]["selector"].items() <= pod_labels.items()


def test_nothing_in_the_cluster_may_connect_to_it(rendered: Rendered, helm: Helm) -> None:
    objects = rendered("console")
    (policy,) = [o for o in _console_objects(objects) if o["kind"] == "NetworkPolicy"]
    assert policy["metadata"]["namespace"] == NAMESPACE
    pod_labels = _deployment(objects)["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"].get("ingress", []) == []
    # and the engines' policies do not admit it (they admit the operator's pods)
    for engine_policy in objects_of(objects, "NetworkPolicy"):
        for rule in engine_policy["spec"].get("ingress", []):
            for peer in rule["from"]:
                selector = (peer.get("podSelector") or {}).get("matchLabels") or {}
                assert selector.get("app.kubernetes.io/component") != "console"
    off = helm.template({"console": {"enabled": True}, "networkPolicy": {"enabled": False}})
    assert not [o for o in _console_objects(off) if o["kind"] == "NetworkPolicy"]


def test_customised_console(helm: Helm) -> None:
    values = {
        "fullnameOverride": "desk",
        "imagePullSecrets": [{"name": "regcred"}],
        "console": {
            "enabled": True,
            "image": {"repository": "registry.example/hean", "digest": "sha256:" + "b" * 64},
            "port": 9000,
            "refresh": 5,
            "serviceAccount": {"name": "viewer", "annotations": {"a": "b"}},
            "nodeSelector": {"pool": "tools"},
        },
    }
    objects = _console_objects(helm.template(values))
    spec = _deployment(objects)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "registry.example/hean@sha256:" + "b" * 64
    assert "--port=9000" in container["args"] and "--refresh=5" in container["args"]
    assert spec["serviceAccountName"] == "viewer"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "tools"}
    (binding,) = [o for o in objects if o["kind"] == "RoleBinding"]
    assert binding["metadata"]["name"] == "desk-console"
    assert binding["subjects"][0]["name"] == "viewer"
