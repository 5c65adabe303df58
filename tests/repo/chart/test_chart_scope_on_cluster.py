"""Issue 14 item 10 on the real apiserver: what the chart's default install lets the
operator do (`kubectl auth can-i` as its ServiceAccount), and the cluster-wide opt-in.

`helm install` of the chart with its default values (only a node selector that
matches no node, so the operator pod itself never runs) into the session's
control plane; the RBAC authorizer answers for the ServiceAccount.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from chart_support import CHART_DIR

from cluster_support import shared_control_plane, unique

NOWHERE = {"hean.io/test-no-such-node": "true"}


class Tools:
    def __init__(self, tmp_path: Path) -> None:
        self.cluster = shared_control_plane()
        self.kubeconfig = self.cluster.admin_kubeconfig
        self.home = tmp_path

    def run(self, binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),  # kubectl's cache, not the working directory
        }
        return subprocess.run(
            [str(binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=120,
        )

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.cluster.binaries.helm, *args)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.cluster.binaries.kubectl, *args)

    def values(self, values: dict[str, object]) -> str:
        path = self.home / f"values-{unique('v')}.yaml"
        path.write_text(yaml.safe_dump(values))
        return str(path)


@pytest.fixture
def tools(tmp_path: Path) -> Tools:
    return Tools(tmp_path)


@pytest.fixture
def default_install(tools: Tools) -> Iterator[tuple[str, str]]:
    namespace, release = unique("op"), unique("hean")
    tools.cluster.create_namespace(namespace)
    values = tools.values({"nodeSelector": NOWHERE})
    done = tools.helm("install", release, str(CHART_DIR), "-n", namespace, "-f", values)
    assert done.returncode == 0, done.stderr
    try:
        yield namespace, release
    finally:
        tools.helm("uninstall", release, "-n", namespace)
        tools.kubectl("delete", "namespace", namespace, "--wait=false")


def test_item10_the_default_install_writes_in_default_only(
    tools: Tools, default_install: tuple[str, str]
) -> None:
    namespace, release = default_install
    user = f"system:serviceaccount:{namespace}:{release}"
    other = unique("t")
    tools.cluster.create_namespace(other)

    def can(verb: str, resource: str, where: str) -> bool:
        answer = tools.kubectl("auth", "can-i", verb, resource, "-n", where, "--as", user)
        assert answer.stdout.strip() in ("yes", "no"), answer.stderr
        return answer.stdout.strip() == "yes"

    # where engines live by default
    for verb, resource in (
        ("create", "pods"),
        ("delete", "pods"),
        ("update", "configmaps"),
        ("get", "secrets"),
    ):
        assert can(verb, resource, "default"), (verb, resource)
    # and nowhere else: not kube-system, not another namespace
    for where in ("kube-system", "kube-public", "kube-node-lease", other):
        for verb, resource in (
            ("create", "pods"),
            ("delete", "pods"),
            ("update", "configmaps"),
            ("get", "secrets"),
            ("create", "secrets"),
        ):
            assert not can(verb, resource, where), (verb, resource, where)


def test_item10_cluster_wide_is_refused_without_the_opt_in_and_system_namespaces_always(
    tools: Tools,
) -> None:
    namespace = unique("op")
    tools.cluster.create_namespace(namespace)
    for values, reason in (
        ({"watchNamespaces": []}, "watchNamespaces is empty"),
        ({"watchNamespaces": ["kube-system"]}, "kube-system"),
    ):
        release = unique("hean")
        done = tools.helm(
            "install", release, str(CHART_DIR), "-n", namespace, "-f", tools.values(values)
        )
        assert done.returncode != 0 and reason in done.stderr, (values, done.stderr)
    tools.kubectl("delete", "namespace", namespace, "--wait=false")
