"""What the chart's RBAC lets the operator's ServiceAccount do, asked of the real
authorizer (`kubectl auth can-i --as=system:serviceaccount:<ns>:<sa>`).

tests/repo/chart/test_chart_rbac.py checks the rendered rules against the operator's
call table; this asks the apiserver (`--authorization-mode=Node,RBAC`) what
those rules mean once installed: every call in `VERBS`, `TRUST_VERBS` and
kopf's own calls is allowed where the operator makes it, and what it must never
do is denied. Both installs as the chart renders them today:

- namespaced (`watchNamespaces` set): a Role per watched namespace, read-only
  cluster-wide scanning of CRDs and Namespaces for kopf, the trust ConfigMap by
  name in the release namespace; nothing in any other namespace;
- cluster-wide (`watchNamespaces` empty): one ClusterRole, so every namespace is
  a watched one, kube-system included (the operator may `get` a Secret by name
  there, never list them): what choosing cluster-wide means.

The releases are installed with plain `helm install` and their operator pods
can never be scheduled (a node selector no node has): only RBAC is under test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from real_cluster_support import CHART_DIR, NOWHERE, Failed, Kube, Question, wait_until

from cluster_support import unique
from hean_operator.kube.cluster import TRUST_VERBS, VERBS

_CHART_TESTS = Path(__file__).resolve().parents[2] / "repo" / "chart"
if str(_CHART_TESTS) not in sys.path:  # tests/repo/chart is on sys.path only when collected
    sys.path.insert(0, str(_CHART_TESTS))
from test_chart_rbac import (  # noqa: E402  (kopf's calls, as the chart tests list them)
    API_GROUPS,
    KOPF_CRD_SCANNING,
    KOPF_NAMESPACE_SCANNING,
    KOPF_NAMESPACED,
)


@dataclass
class Install:
    release: str
    namespace: str  # the release's
    user: str  # the operator's ServiceAccount, as RBAC names it
    watched: list[str]
    unwatched: str  # a namespace that exists and is not watched

    @property
    def trust_configmap(self) -> str:
        return f"{self.release}-liveapproval-trust"


def _install(kube: Kube, watching: int) -> Iterator[Install]:
    """The chart in a namespace of its own, watching `watching` new namespaces (0:
    cluster-wide); one more namespace exists that it does not watch."""
    namespace = kube.create_namespace(unique("op"))
    others = [kube.create_namespace(unique("t")) for _ in range(watching + 1)]
    watch = others[:watching]
    release = unique("hean")
    values = kube.values_file(
        {"watchNamespaces": watch, "clusterWide": not watch, "nodeSelector": NOWHERE}
    )
    try:
        kube.helm(
            "install", release, str(CHART_DIR), "--namespace", namespace, "--values", str(values)
        )
        user = f"system:serviceaccount:{namespace}:{release}"
        yield Install(release, namespace, user, watch, others[-1])
    finally:
        kube.helm("uninstall", release, "--namespace", namespace, check=False)
        kube.delete_namespaces(namespace, *others)


@pytest.fixture
def namespaced(kube: Kube) -> Iterator[Install]:
    yield from _install(kube, watching=2)


@pytest.fixture
def clusterwide(kube: Kube) -> Iterator[Install]:
    yield from _install(kube, watching=0)


def _as_kubectl(resource: str) -> tuple[str, tuple[str, ...]]:
    """`tradingengines/status` -> ("tradingengines.hean.io", ("--subresource=status",))."""
    base, _, sub = resource.partition("/")
    group = API_GROUPS[resource]
    return (f"{base}.{group}" if group else base), ((f"--subresource={sub}",) if sub else ())


def _calls(*tables: dict[str, tuple[str, ...]]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(verb, kubectl resource, extra args) of every call in the tables."""
    out = []
    for table in tables:
        for resource, verbs in table.items():
            name, extra = _as_kubectl(resource)
            out += [(verb, name, extra) for verb in verbs]
    return out


# What the operator makes in a namespace it serves: its own calls and kopf's.
SERVING = _calls(VERBS, KOPF_NAMESPACED)

# Never, wherever: (verb, resource, extra args); namespace-scoped questions are
# asked in a watched namespace, where the operator holds the most.
NEVER: list[tuple[str, str, tuple[str, ...]]] = [
    ("*", "*", ()),
    ("*", "pods", ()),
    ("*", "secrets", ()),
    ("*", "tradingengines.hean.io", ()),
    ("create", "pods", ("--subresource=exec",)),
    ("get", "pods", ("--subresource=exec",)),
    ("create", "pods", ("--subresource=attach",)),
    ("create", "pods", ("--subresource=portforward",)),
    ("get", "pods", ("--subresource=log",)),
    ("update", "pods", ()),
    ("patch", "pods", ()),
    ("list", "secrets", ()),
    ("watch", "secrets", ()),
    ("update", "secrets", ()),
    ("patch", "secrets", ()),
    ("delete", "secrets", ()),
    ("delete", "configmaps", ()),
    ("list", "configmaps", ()),
    ("delete", "services", ()),
    # engines have no Service (the operator calls the pod; nothing used a Service)
    ("create", "services", ()),
    ("get", "services", ()),
    ("create", "tradingengines.hean.io", ()),
    ("update", "tradingengines.hean.io", ()),
    ("delete", "tradingengines.hean.io", ()),
    ("update", "tradingengines.hean.io", ("--subresource=status",)),
    ("create", "liveapprovals.hean.io", ()),
    ("patch", "liveapprovals.hean.io", ()),
    ("delete", "liveapprovals.hean.io", ()),
    ("get", "serviceaccounts", ()),
    ("create", "serviceaccounts", ("--subresource=token",)),
    ("create", "roles.rbac.authorization.k8s.io", ()),
    ("create", "rolebindings.rbac.authorization.k8s.io", ()),
    ("bind", "clusterroles.rbac.authorization.k8s.io", ()),
    ("escalate", "roles.rbac.authorization.k8s.io", ()),
    ("create", "deployments.apps", ()),
    # Backtests' Jobs are created, read and watched, never changed or deleted
    # (the garbage collector deletes them with their Backtest)
    ("update", "jobs.batch", ()),
    ("patch", "jobs.batch", ()),
    ("delete", "jobs.batch", ()),
    ("create", "cronjobs.batch", ()),
    ("create", "backtests.hean.io", ()),
    ("delete", "backtests.hean.io", ()),
    ("delete", "events", ()),
    ("create", "events.events.k8s.io", ()),
]
NEVER_CLUSTER: list[tuple[str, str, tuple[str, ...]]] = [
    ("*", "*", ()),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io", ()),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", ()),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", ()),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io", ()),
    ("create", "clusterroles.rbac.authorization.k8s.io", ()),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ()),
    ("create", "namespaces", ()),
    ("delete", "namespaces", ()),
    ("get", "nodes", ()),
    ("list", "nodes", ()),
    ("impersonate", "users", ()),
    ("impersonate", "groups", ()),
    ("impersonate", "serviceaccounts", ()),
    ("create", "certificatesigningrequests.certificates.k8s.io", ()),
    ("list", "secrets", ()),  # --all-namespaces
]


def _ask(kube: Kube, install: Install, expected: dict[Question, bool]) -> None:
    # RBAC reaches the authorizer through its informers: wait for the first grant
    first = next(q for q, allowed in expected.items() if allowed)
    wait_until(
        f"the chart's RBAC to be in effect ({first})",
        lambda: kube.can_i(install.user, first.verb, first.resource, first.namespace, *first.extra),
    )
    answers = kube.answers(install.user, expected)
    # a grant from a binding the informers have not delivered yet is asked again
    # (with a deadline); a "yes" that should be "no" cannot be such a lag
    late = [q for q, allowed in expected.items() if allowed and not answers[q]]
    for q in late:

        def granted(q: Question = q) -> bool:
            return kube.can_i(install.user, q.verb, q.resource, q.namespace, *q.extra)

        try:
            answers[q] = bool(wait_until(f"can-i {q}", granted, timeout=15))
        except Failed:
            answers[q] = False
    wrong = [
        f"can-i {q}: {'yes' if answers[q] else 'no'}, expected {'yes' if allowed else 'no'}"
        for q, allowed in expected.items()
        if answers[q] != allowed
    ]
    assert not wrong, f"{install.user}:\n" + "\n".join(wrong)


def _trust_questions(install: Install) -> dict[Question, bool]:
    """list/watch of the trust ConfigMap by name, in the release namespace; not of others."""
    ns, name = install.namespace, install.trust_configmap
    expected = {
        Question(verb, f"configmaps/{name}", ns): True for verb in TRUST_VERBS["configmaps"]
    }
    expected[Question("list", "configmaps/some-other-configmap", ns)] = False
    if install.watched:  # the release namespace is not served: nothing else of it
        expected[Question("get", f"configmaps/{name}", ns)] = False
        expected[Question("update", f"configmaps/{name}", ns)] = False
    return expected


def test_the_namespaced_install_allows_the_operators_calls_and_nothing_else(
    kube: Kube, namespaced: Install
) -> None:
    install = namespaced
    expected: dict[Question, bool] = {}
    for ns in install.watched:
        expected |= {Question(v, r, ns, e): True for v, r, e in SERVING}
    # kopf's observers, read-only and cluster-wide
    expected |= {
        Question(v, r, None, e): True
        for v, r, e in _calls(KOPF_CRD_SCANNING, KOPF_NAMESPACE_SCANNING)
    }
    expected |= _trust_questions(install)
    # nothing of it anywhere else: an unwatched namespace, kube-system, its own namespace
    for ns in (install.unwatched, "kube-system"):
        expected |= {Question(v, r, ns, e): False for v, r, e in SERVING}
    for verb, resource in (("get", "secrets"), ("create", "pods"), ("get", "configmaps")):
        expected[Question(verb, resource, install.namespace)] = False
    # nor across namespaces
    for verb in ("list", "watch"):
        expected |= {
            Question(verb, "tradingengines.hean.io", None): False,
            Question(verb, "pods", None): False,
            Question(verb, "liveapprovals.hean.io", None): False,
        }
    expected |= {Question(v, r, install.watched[0], e): False for v, r, e in NEVER}
    expected |= {Question(v, r, None, e): False for v, r, e in NEVER_CLUSTER}
    # what the brief of least privilege spells out: no Secrets, no pods, outside
    assert expected[Question("get", "secrets", "kube-system")] is False
    assert expected[Question("create", "pods", "kube-system")] is False
    _ask(kube, install, expected)


def test_the_trust_configmap_is_readable_by_name_only(kube: Kube, namespaced: Install) -> None:
    """resourceNames on list/watch: the apiserver authorizes the operator's list and
    watch with `fieldSelector=metadata.name=<trust>` (what TrustWatcher sends), and
    refuses the same list without it. can-i cannot ask this; the requests can."""
    install = namespaced
    base = f"/api/v1/namespaces/{install.namespace}/configmaps"
    by_name = f"fieldSelector=metadata.name%3D{install.trust_configmap}"
    wait_until(
        "the chart's RBAC to be in effect",
        lambda: kube.api("GET", f"{base}?{by_name}", as_user=install.user)[0] == 200,
    )
    code, found = kube.api("GET", f"{base}?{by_name}", as_user=install.user)
    assert code == 200, found
    assert [i["metadata"]["name"] for i in found["items"]] == [install.trust_configmap]
    code, _ = kube.api("GET", f"{base}?{by_name}&watch=true&timeoutSeconds=1", as_user=install.user)
    assert code == 200
    for query in ("", "?fieldSelector=metadata.name%3Dkube-root-ca.crt", "?watch=true"):
        code, refused = kube.api("GET", f"{base}{query}", as_user=install.user)
        assert code == 403, (query, refused)
        assert refused["reason"] == "Forbidden"
    code, _ = kube.api("GET", f"{base}/{install.trust_configmap}", as_user=install.user)
    assert code == 403  # a get is not granted: the operator lists and watches it


def test_the_clusterwide_install_serves_every_namespace_and_nothing_more(
    kube: Kube, clusterwide: Install
) -> None:
    install = clusterwide
    expected: dict[Question, bool] = {}
    # every namespace is served: any of them, kube-system included
    for ns in (install.unwatched, "kube-system"):
        expected |= {Question(v, r, ns, e): True for v, r, e in SERVING}
    # kopf and the operator list and watch across namespaces
    for verb in ("list", "watch"):
        expected |= {
            Question(verb, "tradingengines.hean.io", None): True,
            Question(verb, "pods", None): True,
            Question(verb, "liveapprovals.hean.io", None): True,
        }
    expected |= {Question(v, r, None, e): True for v, r, e in _calls(KOPF_CRD_SCANNING)}
    # cluster-wide, kopf does not observe namespaces: not granted
    expected |= {Question(v, r, None, e): False for v, r, e in _calls(KOPF_NAMESPACE_SCANNING)}
    expected |= _trust_questions(install)
    expected |= {Question(v, r, "kube-system", e): False for v, r, e in NEVER}
    expected |= {Question(v, r, None, e): False for v, r, e in NEVER_CLUSTER}
    _ask(kube, install, expected)
