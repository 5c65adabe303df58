"""Helpers of the Helm chart tests: finding helm, rendering, scenarios.

The helm binary is `$HEAN_HELM` when set, otherwise the helm built from the Go
modules pinned in `cluster/` (helm.sh/helm/v4, the same build the sandbox and
the cluster tests use; `hean sandbox build`, reused from its cache once
built). Nothing is downloaded but Go modules. Without one the tests fail
rather than skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hean_sandbox.controlplane.build import BuildError, ensure_binaries

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_DIR = REPO_ROOT / "charts" / "hean"
RELEASE = "hean"
NAMESPACE = "hean-system"
MONITORING_API = "monitoring.coreos.com/v1"
KUBE_VERSIONS = ("1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0")


@dataclass(frozen=True)
class Scenario:
    """One `helm template` run: values, and whether the monitoring API exists."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    monitoring_api: bool = False


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("defaults"),
        Scenario("defaults-monitoring-api", monitoring_api=True),
        # cluster-wide: an explicit opt-in (issue 14 item 10)
        Scenario("clusterwide", {"clusterWide": True, "watchNamespaces": []}),
        Scenario(
            "clusterwide-monitoring-api",
            {"clusterWide": True, "watchNamespaces": []},
            monitoring_api=True,
        ),
        Scenario("namespaced", {"watchNamespaces": ["trading-a", "trading-b"]}),
        Scenario(
            "namespaced-monitoring-api",
            {"watchNamespaces": ["trading-a", "trading-b"]},
            monitoring_api=True,
        ),
        Scenario(
            "monitoring-disabled",
            {
                "monitoring": {
                    "serviceMonitor": {"enabled": False},
                    "podMonitor": {"enabled": False},
                    "prometheusRule": {"enabled": False},
                },
                "grafana": {"dashboard": {"enabled": False}},
            },
            monitoring_api=True,
        ),
        Scenario("no-api-check", {"monitoring": {"apiCheck": False}}),
        # the optional read-only console (issue 15 item 4)
        Scenario(
            "console",
            {"watchNamespaces": ["trading-a", "trading-b"], "console": {"enabled": True}},
        ),
        Scenario(
            "console-clusterwide",
            {"clusterWide": True, "watchNamespaces": [], "console": {"enabled": True}},
        ),
        Scenario(
            "customised",
            {
                "fullnameOverride": "trading-operator",
                "image": {"digest": "sha256:" + "a" * 64, "pullPolicy": "Always"},
                "engine": {"image": {"repository": "registry.example/engine", "tag": "1.2.3"}},
                "watchNamespaces": ["desk"],
                "pollInterval": 2.5,
                "rbac": {"kopfScanning": False},
                "serviceAccount": {"name": "hean-sa", "annotations": {"a": "b"}},
                "imagePullSecrets": [{"name": "regcred"}],
                "podLabels": {"team": "quant"},
                "priorityClassName": "trading",
                "liveApprovals": {
                    "trustedKeys": {
                        "ops-1": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAAAAA\n"
                        "-----END PUBLIC KEY-----\n",
                        "risk-1": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEABBBB\n"
                        "-----END PUBLIC KEY-----",
                    },
                    "requiredSignatures": 2,
                },
                "monitoring": {
                    "labels": {"release": "kube-prometheus-stack"},
                    "prometheusRule": {"additionalAlertLabels": {"team": "quant"}},
                },
                "grafana": {
                    "dashboard": {
                        "namespace": "monitoring",
                        "annotations": {"grafana_folder": "HEAN"},
                    }
                },
            },
            monitoring_api=True,
        ),
    )
}


DEFAULT_WATCHED = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["watchNamespaces"]


def watched(scenario: str) -> list[str]:
    """The namespaces a scenario's operator serves ([] when cluster-wide)."""
    values = SCENARIOS[scenario].values
    if values.get("clusterWide"):
        return []
    return list(values.get("watchNamespaces", DEFAULT_WATCHED))


class HelmError(Exception):
    pass


def find_helm() -> Path | None:
    """`$HEAN_HELM`, or the helm built from cluster/ (`hean sandbox build`, cached in
    ~/.cache/hean/controlplane); None when it cannot be built."""
    if os.environ.get("HEAN_HELM"):
        return Path(os.environ["HEAN_HELM"])
    try:
        return ensure_binaries(_quiet).helm
    except BuildError as exc:
        print(f"helm cannot be built from cluster/: {exc}")
        return None


def _quiet(_: str) -> None:
    return None


class Helm:
    """Runs helm offline, with its config/cache/data dirs kept out of $HOME."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }
        self._values_dir = home / "values"
        self._values_dir.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )

    def values_file(self, values: dict[str, Any]) -> Path:
        self._count += 1
        path = self._values_dir / f"values-{self._count}.json"
        path.write_text(json.dumps(values))
        return path

    def template_text(
        self,
        values: dict[str, Any] | None = None,
        *,
        api_versions: Iterable[str] = (),
        kube_version: str = KUBE_VERSIONS[0],
        namespace: str = NAMESPACE,
    ) -> str:
        args = ["template", RELEASE, str(CHART_DIR), "--namespace", namespace, "--include-crds"]
        args += ["--kube-version", kube_version]
        for api in api_versions:
            args += ["--api-versions", api]
        if values:
            args += ["--values", str(self.values_file(values))]
        done = self.run(*args)
        if done.returncode != 0:
            raise HelmError(done.stderr.strip())
        return done.stdout

    def template(self, values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        text = self.template_text(values, **kwargs)
        return [doc for doc in yaml.safe_load_all(text) if doc]


def objects_of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def one_of(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = objects_of(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]
