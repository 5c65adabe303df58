"""Every object the chart renders, judged by the real apiserver (server-side dry run).

tests/repo/chart validates the rendered manifests offline against published
OpenAPI schemas of Kubernetes 1.29-1.33 (kubernetes-validate); this sends them
to the pinned kube-apiserver with strict field validation and a server-side
dry run, so its own decoding, defaulting, validation and admission run, and
asks for silence: no error and no warning (deprecated fields, unknown fields,
anything the apiserver would tell a user at install time).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from real_cluster_support import CHART_DIR, Kube


def _values(namespace: str) -> dict[str, dict[str, Any]]:
    """Value sets of tests/repo/chart's scenarios, with namespaces that exist here (and no
    PriorityClass, which admission would look up)."""
    return {
        "defaults": {},
        "namespaced": {"watchNamespaces": [namespace]},
        "customised": {
            "fullnameOverride": "trading-operator",
            "image": {"digest": "sha256:" + "a" * 64, "pullPolicy": "Always"},
            "engine": {"image": {"repository": "registry.example/engine", "tag": "1.2.3"}},
            "watchNamespaces": [namespace],
            "pollInterval": 2.5,
            "rbac": {"kopfScanning": False},
            "serviceAccount": {"name": "hean-sa", "annotations": {"a": "b"}},
            "imagePullSecrets": [{"name": "regcred"}],
            "podLabels": {"team": "quant"},
            "liveApprovals": {"requiredSignatures": 2, "namespaces": {namespace: 3}},
            "grafana": {"dashboard": {"namespace": namespace, "annotations": {"f": "HEAN"}}},
        },
    }


@pytest.mark.parametrize("scenario", ["defaults", "namespaced", "customised"])
def test_the_apiserver_accepts_every_rendered_object_silently(
    kube: Kube, namespace: str, scenario: str
) -> None:
    values = kube.values_file(_values(namespace)[scenario])
    rendered = kube.helm(
        "template", "hean", str(CHART_DIR), "--namespace", namespace, "--values", str(values)
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert len(objects) >= 8
    done = kube.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "--server-side",
        "--field-manager=helm",
        "-f",
        "-",
        stdin=rendered,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", f"the apiserver warned:\n{done.stderr}"
    applied = [line for line in done.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objects), done.stdout
