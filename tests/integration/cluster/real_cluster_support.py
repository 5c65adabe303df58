"""Helpers of the tests that only a real cluster can answer (tests/integration/cluster).

Everything runs against the session's control plane (tests/cluster_support.py:
etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from the
Go modules pinned in cluster/), with the kubectl and helm built from the same
pins, as the cluster admin unless a test impersonates someone (`--as`). Each
test takes namespaces and Helm releases of its own (`unique`), so the tests
never see each other's objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster_support import engine_manifest as scenario_engine
from cluster_support import shared_control_plane, unique
from hean_sandbox.controlplane.build import Binaries
from hean_sandbox.controlplane.cluster import ControlPlane
from hean_sandbox.up import Sandbox, SandboxOptions

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_DIR = REPO_ROOT / "charts" / "hean"
CRD_DIR = CHART_DIR / "crds"
CRDS = ("tradingengines.hean.io", "liveapprovals.hean.io")
API = "hean.io/v1alpha1"
WAIT = "90s"  # kubectl wait timeouts: generous for a loaded 2-core machine
# A node selector no node has: the pods of a chart installed only for its RBAC
# stay Pending, so that no operator from these installs ever runs.
NOWHERE = {"hean.io/test-no-such-node": "true"}


class Failed(AssertionError):
    pass


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Kube:
    """kubectl, helm and raw HTTP against the session's cluster, as its admin."""

    def __init__(self, cluster: ControlPlane, binaries: Binaries, home: Path) -> None:
        self.cluster = cluster
        self.binaries = binaries
        self.kubeconfig = cluster.admin_kubeconfig
        self.helm_env = {
            **os.environ,
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        self._home = home

    # -- kubectl and helm ---------------------------------------------------------
    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 150
    ) -> Result:
        done = subprocess.run(
            [str(self.binaries.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and result.returncode != 0:
            raise Failed(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def apply(self, manifest: Mapping[str, Any], *args: str, check: bool = True) -> Result:
        # JSON, not YAML: PyYAML writes the string "1e5" unquoted, which kubectl's YAML
        # 1.2 parser then reads as the number 100000.
        return self.kubectl("apply", "-f", "-", *args, stdin=json.dumps(manifest), check=check)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = ["-n", namespace] if namespace else []
        found: dict[str, Any] = self.kubectl(*ns, "get", kind, name, "-o", "json").json()
        return found

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        ns = ["-n", namespace] if namespace else []
        done = self.kubectl(*ns, "get", kind, name, "--ignore-not-found", "-o", "name")
        return bool(done.stdout.strip())

    def helm(self, *args: str, check: bool = True) -> Result:
        done = subprocess.run(
            [str(self.binaries.helm), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            env=self.helm_env,
            timeout=240,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and result.returncode != 0:
            raise Failed(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def values_file(self, values: Mapping[str, Any]) -> Path:
        path = self._home / f"values-{unique('v')}.yaml"
        path.write_text(yaml.safe_dump(dict(values)))
        return path

    # -- namespaces -----------------------------------------------------------------
    def create_namespace(self, name: str) -> str:
        self.cluster.create_namespace(name)
        return name

    def delete_namespaces(self, *names: str) -> None:
        for name in names:
            self.kubectl(
                "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False
            )

    # -- raw HTTP, for what kubectl does not show (status codes, Status objects) ----
    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        as_user: str | None = None,
    ) -> tuple[int, Any]:
        """One request as the admin (or impersonating `as_user`): (HTTP status, the
        decoded JSON body, or its text when it is not one JSON value), errors included."""
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if as_user is not None:
            headers["Impersonate-User"] = as_user
        request = urllib.request.Request(
            self.cluster.url + path, data=data, method=method, headers=headers
        )
        context: ssl.SSLContext = self.cluster.ssl_context()
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                return response.status, _decoded(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decoded(exc.read())

    # -- authorization --------------------------------------------------------------
    def can_i(
        self, user: str, verb: str, resource: str, namespace: str | None, *extra: str
    ) -> bool:
        """`kubectl auth can-i VERB RESOURCE --as=USER` (namespace None: all namespaces)."""
        where = ["-n", namespace] if namespace else ["--all-namespaces"]
        done = self.kubectl(
            "auth", "can-i", verb, resource, *where, f"--as={user}", *extra, check=False
        )
        answer = done.stdout.strip()
        if answer not in ("yes", "no"):
            raise Failed(f"kubectl auth can-i {verb} {resource}: {answer!r} {done.stderr}")
        return answer == "yes"

    def answers(self, user: str, questions: Iterable[Question]) -> dict[Question, bool]:
        """Many can-i questions at once (kubectl is a process each: four at a time)."""
        listed = list(questions)
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = pool.map(
                lambda q: self.can_i(user, q.verb, q.resource, q.namespace, *q.extra), listed
            )
            return dict(zip(listed, found, strict=True))


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:  # a watch's stream of events, say
        return raw.decode(errors="replace")


@dataclass(frozen=True)
class Question:
    verb: str
    resource: str
    namespace: str | None  # None: --all-namespaces (or a cluster-scoped resource)
    extra: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"-n {self.namespace}" if self.namespace else "--all-namespaces"
        return " ".join([self.verb, self.resource, where, *self.extra])


def ensure_crds(kube: Kube) -> None:
    """The chart's CRDs, as `helm install` would put them (created only when absent)."""
    for crd in sorted(CRD_DIR.glob("*.yaml")):
        done = kube.kubectl("create", "-f", str(crd), check=False)
        if done.returncode != 0 and "AlreadyExists" not in done.stderr:
            raise Failed(f"kubectl create -f {crd.name}: {done.stderr}")
    kube.kubectl(
        "wait", "--for=condition=Established", *(f"crd/{c}" for c in CRDS), f"--timeout={WAIT}"
    )


def engine_manifest(name: str, namespace: str, **spec_overrides: Any) -> dict[str, Any]:
    """A valid paper TradingEngine (the scenario tests' one), its exchange unreachable."""
    return scenario_engine(name, "http://127.0.0.1:9", namespace, **spec_overrides)


def approval_manifest(name: str, namespace: str, **spec_overrides: Any) -> dict[str, Any]:
    """A LiveApproval the schema accepts (its signatures are not checked by the apiserver)."""
    spec: dict[str, Any] = {
        "engineRef": {"name": "live-engine"},
        "engineUid": "0b7c7e0c-2a4e-4c4e-9d59-8f0a3f0c1d2e",
        "specHash": "a" * 64,
        "notBefore": "2026-01-01T00:00:00Z",
        "expiresAt": "2026-01-02T00:00:00Z",
        "nonce": "n0nce-12345",
        "signatures": [{"keyId": "ops-1", "signature": "c2lnbmF0dXJl"}],
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": API,
        "kind": "LiveApproval",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def response_codes(verbose_stderr: str, verb: str) -> list[int]:
    """The status codes of `verb` requests in kubectl's -v=6 log."""
    found = re.findall(rf'verb="{verb}" url="[^"]*" status="(\d+)', verbose_stderr)
    return [int(code) for code in found]


def wait_until(
    what: str, check: Callable[[], Any], timeout: float = 90, interval: float = 0.2
) -> Any:
    """Poll `check` until it returns something truthy (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


async def start_sandbox(
    tmp_path: Path,
    *,
    fake_pods: bool,
    values: Mapping[str, Any] | None = None,
    watch_namespaces: Sequence[str] | None = None,
) -> Sandbox:
    """What `hean sandbox up` adds to the shared cluster, without the exchange: a
    namespace (the release's, and the engines'), a node of its own, and the chart
    installed with `helm install --wait`. Stop it with `await box.stop()`."""
    cluster = await asyncio.to_thread(shared_control_plane)
    namespace = unique("t")
    options = SandboxOptions(
        kubeconfig=tmp_path / "kubeconfig",
        workdir=tmp_path / "sandbox",
        fake_pods=fake_pods,
        namespace=namespace,
        operator_namespace=namespace,
        release=unique("hean"),
        watch_namespaces=watch_namespaces,
        poll_interval=1.0,
        values=values or {},
        control_plane=cluster,
    )
    box = Sandbox(options)
    try:
        await box.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await box.stop()
        raise
    return box
