"""The MutatingAdmissionPolicy that puts the operator's finalizer on new TradingEngines.

Rendered only where the cluster serves admissionregistration.k8s.io/v1
MutatingAdmissionPolicy (Kubernetes 1.36+), bound to the watched namespaces
only (an engine elsewhere would get a finalizer nobody removes), and naming
exactly kopf's finalizer. tests/integration/cluster/test_helm_release_lifecycle.py
shows the API server applying it.
"""

from __future__ import annotations

from typing import Any

from chart_support import Helm, objects_of, one_of

from hean_operator.main import FINALIZER

MAP_API = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"


def _render(helm: Helm, values: dict[str, Any], *apis: str) -> list[dict[str, Any]]:
    return helm.template(values, api_versions=apis)


def test_the_policy_adds_kopfs_finalizer_on_create_in_the_watched_namespaces(
    helm: Helm,
) -> None:
    objects = _render(helm, {"watchNamespaces": ["trading-a", "trading-b"]}, MAP_API)
    policy = one_of(objects, "MutatingAdmissionPolicy")
    binding = one_of(objects, "MutatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    # cluster-scoped: the release's namespace in the name keeps two releases apart
    assert policy["metadata"]["name"] == "hean-hean-system-engine-finalizer"
    spec = policy["spec"]
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["hean.io"],
            "apiVersions": ["*"],
            "operations": ["CREATE"],
            "resources": ["tradingengines"],
        }
    ]
    # should it fail, the engine is created anyway and kopf adds the finalizer itself
    assert spec["failurePolicy"] == "Ignore"
    (mutation,) = spec["mutations"]
    assert mutation["patchType"] == "ApplyConfiguration"
    expression = mutation["applyConfiguration"]["expression"]
    assert expression == f'Object{{metadata: Object.metadata{{finalizers: ["{FINALIZER}"]}}}}'
    assert binding["spec"]["matchResources"] == {
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": ["trading-a", "trading-b"],
                }
            ]
        }
    }


def test_cluster_wide_binds_every_namespace(helm: Helm) -> None:
    objects = _render(helm, {"clusterWide": True, "watchNamespaces": []}, MAP_API)
    assert one_of(objects, "MutatingAdmissionPolicyBinding")["spec"]["matchResources"] == {}


def test_not_rendered_without_the_api_or_when_disabled(helm: Helm) -> None:
    kinds = ("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding")
    without_api = _render(helm, {})
    disabled = _render(helm, {"finalizerPolicy": {"enabled": False}}, MAP_API)
    for objects in (without_api, disabled):
        assert not [o for kind in kinds for o in objects_of(objects, kind)]
