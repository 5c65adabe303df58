"""The chart's RBAC grants exactly what the operator calls: no more, no less.

The expected rules are derived from `hean_operator.kube.cluster.VERBS` (the
operator's own API calls) plus what kopf calls in the mode `hean operator run`
uses it (standalone, see hean_operator/main.py), read from kopf's source:

- kopf/_cogs/clients/watching.py, fetching.py: list + watch of the served
  resource (tradingengines);
- kopf/_cogs/clients/patching.py: merge/JSON patches of the resource (finalizer,
  progress and diff-base annotations) and of its status subresource;
- kopf/_cogs/clients/events.py: POST of core v1 Events (kopf.info/warn,
  posting) in the resource's namespace;
- kopf/_core/reactor/observation.py: list + watch of
  customresourcedefinitions (resource_observer) and, only when not
  cluster-wide, of namespaces (namespace_observer). Both fall back with a
  warning when forbidden; the chart grants them with `rbac.kopfScanning`.
- peering (kopfpeerings) is off: `standalone=True`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from chart_support import NAMESPACE, SCENARIOS, Helm, HelmError, objects_of, watched

from hean_operator.api.resources import APPROVALS, BACKTESTS, ENGINES, GROUP
from hean_operator.kube.cluster import TRUST_VERBS, VERBS

Rendered = Callable[[str], list[dict[str, Any]]]
Rule = tuple[str, str, str]  # (apiGroup, resource, verb)

# The API group of each resource the operator touches. A resource added to
# VERBS without an entry here fails the test: add it, and to the chart.
API_GROUPS = {
    "configmaps": "",
    "secrets": "",
    "pods": "",
    "persistentvolumeclaims": "",
    "events": "",
    "namespaces": "",
    ENGINES: GROUP,
    f"{ENGINES}/status": GROUP,
    APPROVALS: GROUP,
    f"{APPROVALS}/status": GROUP,
    "jobs": "batch",
    BACKTESTS: GROUP,
    f"{BACKTESTS}/status": GROUP,
    "customresourcedefinitions": "apiextensions.k8s.io",
}

KOPF_NAMESPACED: dict[str, tuple[str, ...]] = {
    ENGINES: ("list", "watch", "patch"),
    f"{ENGINES}/status": ("patch",),
    # Backtests as engines; their Jobs are only watched (kopf.on.event: list + watch)
    BACKTESTS: ("list", "watch", "patch"),
    f"{BACKTESTS}/status": ("patch",),
    "jobs": ("list", "watch"),
    "events": ("create",),
}
KOPF_CRD_SCANNING: dict[str, tuple[str, ...]] = {"customresourcedefinitions": ("list", "watch")}
KOPF_NAMESPACE_SCANNING: dict[str, tuple[str, ...]] = {"namespaces": ("list", "watch")}


def _rules(*tables: dict[str, tuple[str, ...]]) -> set[Rule]:
    out: set[Rule] = set()
    for table in tables:
        for resource, verbs in table.items():
            assert resource in API_GROUPS, f"unknown API group of {resource!r}: add it"
            out |= {(API_GROUPS[resource], resource, verb) for verb in verbs}
    return out


NAMESPACED_RULES = _rules(VERBS, KOPF_NAMESPACED)


def _flatten(role: dict[str, Any]) -> set[Rule]:
    out: set[Rule] = set()
    for rule in role.get("rules") or []:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no resourceNames/URLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def _is_trust(obj: dict[str, Any]) -> bool:
    return str(obj["metadata"]["name"]).endswith("-trust")


def _by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The objects of `kind` by namespace/name, without the trust ConfigMap's Role."""
    return {
        f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o
        for o in objects_of(objects, kind)
        if not _is_trust(o)
    }


def test_operator_verbs_are_known() -> None:
    """A new entry in VERBS must get its API group (and RBAC) here."""
    assert set(VERBS) <= set(API_GROUPS)
    assert set(TRUST_VERBS) <= set(API_GROUPS)


@pytest.mark.parametrize("scenario", ["defaults", "namespaced", "customised"])
def test_the_trust_configmap_alone_is_readable(rendered: Rendered, scenario: str) -> None:
    """list/watch on the one trust ConfigMap, in the release namespace: nothing else."""
    objects = rendered(scenario)
    (trust,) = [
        o
        for o in objects_of(objects, "ConfigMap")
        if o["metadata"]["name"].endswith("-liveapproval-trust")
    ]
    (role,) = [o for o in objects_of(objects, "Role") if _is_trust(o)]
    assert role["metadata"]["namespace"] == NAMESPACE == trust["metadata"]["namespace"]
    expected = [
        {
            "apiGroups": [API_GROUPS[resource]],
            "resources": [resource],
            "resourceNames": [trust["metadata"]["name"]],
            "verbs": list(verbs),
        }
        for resource, verbs in TRUST_VERBS.items()
    ]
    assert role["rules"] == expected
    (binding,) = [o for o in objects_of(objects, "RoleBinding") if _is_trust(o)]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    sa = SCENARIOS[scenario].values.get("serviceAccount", {}).get("name") or "hean"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_wildcards(rendered: Rendered, scenario: str) -> None:
    for kind in ("ClusterRole", "Role"):
        for name, role in _by_name(rendered(scenario), kind).items():
            for group, resource, verb in _flatten(role):
                assert "*" not in (group + resource + verb), f"{kind} {name}: wildcard"


@pytest.mark.parametrize("scenario", ["clusterwide", "clusterwide-monitoring-api"])
def test_clusterwide_rbac_is_exact(rendered: Rendered, scenario: str) -> None:
    objects = rendered(scenario)
    assert not _by_name(objects, "Role") and not _by_name(objects, "RoleBinding")
    (role,) = objects_of(objects, "ClusterRole")
    assert _flatten(role) == NAMESPACED_RULES | _rules(KOPF_CRD_SCANNING)
    (binding,) = objects_of(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hean", "namespace": NAMESPACE}
    ]


@pytest.mark.parametrize(
    "scenario",
    ["defaults", "no-api-check", "namespaced", "namespaced-monitoring-api", "customised"],
)
def test_namespaced_rbac_is_exact(rendered: Rendered, scenario: str) -> None:
    objects = rendered(scenario)
    values = SCENARIOS[scenario].values
    namespaces = watched(scenario)
    scanning = values.get("rbac", {}).get("kopfScanning", True)
    sa = values.get("serviceAccount", {}).get("name") or "hean"
    roles = _by_name(objects, "Role")
    bindings = _by_name(objects, "RoleBinding")
    assert {k.split("/")[0] for k in roles} == set(namespaces)
    assert {k.split("/")[0] for k in bindings} == set(namespaces)
    for role in roles.values():
        assert _flatten(role) == NAMESPACED_RULES
    for binding in bindings.values():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}
        ]
    cluster_roles = objects_of(objects, "ClusterRole")
    if scanning:
        (scan,) = cluster_roles
        assert _flatten(scan) == _rules(KOPF_CRD_SCANNING, KOPF_NAMESPACE_SCANNING)
        (binding,) = objects_of(objects, "ClusterRoleBinding")
        assert binding["roleRef"]["name"] == scan["metadata"]["name"]
    else:
        assert not cluster_roles
        assert not objects_of(objects, "ClusterRoleBinding")


def test_rbac_can_be_left_to_the_user(helm: Helm) -> None:
    objects = helm.template({"rbac": {"create": False}})
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert not objects_of(objects, kind)


def test_service_account_is_the_operators(rendered: Rendered) -> None:
    objects = rendered("defaults")
    (sa,) = objects_of(objects, "ServiceAccount")
    (deployment,) = objects_of(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


# -- issue 14 item 10: namespaced by default, cluster-wide only as an opt-in, never kube-system --


SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


def test_item10_the_default_install_is_namespaced_with_no_cluster_wide_writes(
    rendered: Rendered,
) -> None:
    objects = rendered("defaults")
    assert {k.split("/")[0] for k in _by_name(objects, "Role") if "trust" not in k} == {"default"}
    # what stays cluster-wide is kopf's read-only scanning (CRDs, namespaces)
    for role in objects_of(objects, "ClusterRole"):
        for _, _, verb in _flatten(role):
            assert verb in ("list", "watch"), (role["metadata"]["name"], verb)
        assert not {resource for _, resource, _ in _flatten(role)} & {
            "configmaps",
            "secrets",
            "pods",
            "services",
        }


def test_item10_cluster_wide_needs_the_explicit_opt_in(helm: Helm) -> None:
    with pytest.raises(HelmError, match=r"watchNamespaces is empty.*clusterWide: true"):
        helm.template({"watchNamespaces": []})
    with pytest.raises(HelmError, match="clusterWide: true serves every namespace"):
        helm.template({"clusterWide": True, "watchNamespaces": ["trading"]})


@pytest.mark.parametrize("namespace", SYSTEM_NAMESPACES)
def test_item10_system_namespaces_are_refused(helm: Helm, namespace: str) -> None:
    with pytest.raises(HelmError, match="is a system namespace"):
        helm.template({"watchNamespaces": ["trading", namespace]})
