"""A real Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, built from the pinned Go modules.

Started the way a kubeadm cluster runs them, minus what one machine without
containers cannot have: real authentication (x509 client certificates from a
local CA, service-account tokens signed by a locally generated key), real
authorization (`--authorization-mode=Node,RBAC`), the default admission
plugins plus NodeRestriction; the controller manager with its default
controllers (garbage collector, namespaces, deployments and replica sets,
service accounts and their tokens, endpoints, the root CA publisher) and the
scheduler. Deviations, each for a reason:

- etcd runs with `--unsafe-no-fsync` in a temporary directory: the cluster is
  thrown away when the sandbox stops, so durability buys nothing and costs the
  tests seconds;
- `--endpoint-reconciler-type=none`: the API server's address is loopback,
  which the Endpoints of the `kubernetes` Service may not hold; pods reach the
  API server through KUBERNETES_SERVICE_HOST/PORT set to its real address;
- the controller manager and scheduler serve no HTTPS port (`--secure-port=0`),
  so that several clusters (a sandbox and a test run) share one machine.

The class is synchronous (plain subprocesses), so that a test session or the
sandbox's CLI can own one cluster across event loops.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from hean_sandbox.controlplane.build import Binaries
from hean_sandbox.controlplane.pki import Authority, KeyPair, service_account_keys

HOST = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT = 120.0


class ControlPlaneError(RuntimeError):
    """A component did not start (the message carries the tail of its log)."""


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class ControlPlane:
    binaries: Binaries
    workdir: Path
    components: list[Component] = field(default_factory=list)
    apiserver_port: int = 0
    ca: Authority | None = None
    admin: KeyPair | None = None
    # Write the API server's audit log (every write, as JSON lines, at Metadata
    # level) to `audit_log_path`: what benchmarks count API writes with.
    audit: bool = False
    # Serve the API server's /debug/pprof (to an authorised client: the admin), so
    # that a benchmark can see where its CPU goes; off otherwise (the server's own
    # default is on; the CIS benchmark advises off).
    profiling: bool = False

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.apiserver_port}"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def audit_log_path(self) -> Path:
        return self.workdir / "logs" / "audit.log"

    @property
    def ca_path(self) -> Path:
        assert self.ca is not None
        return self.ca.cert_path

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.ca = ca = Authority(self.pki)
        self.apiserver_port = free_port()
        serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=(HOST, "10.96.0.1"),
            client=False,
        )
        kubelet_client = ca.issue(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organizations=("kubeadm:cluster-admins",),
        )
        self.admin = ca.issue("admin", "kubernetes-admin", organizations=("system:masters",))
        sa = service_account_keys(self.pki)
        self.write_kubeconfig(self.admin_kubeconfig, self.admin, user="admin")

        etcd_port, peer_port = free_port(), free_port()
        etcd_data = Path(tempfile.mkdtemp(prefix="etcd.", dir=self.workdir))
        self._spawn(
            "etcd",
            [
                "--name=hean",
                f"--data-dir={etcd_data}",
                f"--listen-client-urls=http://{HOST}:{etcd_port}",
                f"--advertise-client-urls=http://{HOST}:{etcd_port}",
                f"--listen-peer-urls=http://{HOST}:{peer_port}",
                f"--initial-advertise-peer-urls=http://{HOST}:{peer_port}",
                f"--initial-cluster=hean=http://{HOST}:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(f"http://{HOST}:{etcd_port}/health", "etcd", tls=False)
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://{HOST}:{etcd_port}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={self.apiserver_port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert_path}",
                f"--service-account-issuer={ISSUER}",
                f"--api-audiences={ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--endpoint-reconciler-type=none",
                f"--kubelet-certificate-authority={ca.cert_path}",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                f"--profiling={'true' if self.profiling else 'false'}",
                f"--cert-dir={self.pki}",
                "--v=0",
                *self._audit_flags(),
            ],
        )
        self._wait(f"{self.url}/readyz", "kube-apiserver")
        self._grant_kubelet_api_access()
        manager = ca.issue("controller-manager", "system:kube-controller-manager")
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self._component_kubeconfig('controller-manager', manager)}",
                "--secure-port=0",
                "--leader-elect=false",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.cert_path}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={ca.cert_path}",
                f"--cluster-signing-key-file={ca.key_path}",
                "--controllers=*",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-gc-syncs=20",
                "--v=0",
            ],
        )
        scheduler = ca.issue("scheduler", "system:kube-scheduler")
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={self._component_kubeconfig('scheduler', scheduler)}",
                "--secure-port=0",
                "--leader-elect=false",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=0",
            ],
        )
        # A namespace is usable once its ServiceAccount `default` exists (the
        # controller manager makes it): pods are refused before.
        self.wait_for_service_account("default")

    def _component_kubeconfig(self, name: str, pair: KeyPair) -> Path:
        return self.write_kubeconfig(self.workdir / f"{name}.kubeconfig", pair, user=f"kube-{name}")

    def _audit_flags(self) -> list[str]:
        if not self.audit:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived"],
                    "rules": [
                        {"level": "None", "verbs": ["get", "list", "watch"]},
                        {"level": "Metadata"},
                    ],
                }
            )
        )
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log_path}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
        ]

    def stop(self) -> None:
        for component in reversed(self.components):
            process = component.process
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            component.log.close()
        self.components.clear()

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.workdir / "logs" / f"{name}.log"
        log = log_path.open("ab")
        process = subprocess.Popen(  # noqa: S603 - our own binaries, our own flags
            [str(self.binaries.path(name)), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.components.append(Component(name, process, log_path, log))

    def component(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)

    def ssl_context(self) -> ssl.SSLContext:
        assert self.admin is not None
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return context

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One admin request to the API server (JSON in, JSON out)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (https to our own API server)
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        with urllib.request.urlopen(request, context=self.ssl_context(), timeout=30) as response:  # noqa: S310
            text = response.read()
        return json.loads(text) if text else None

    def _wait(self, url: str, name: str, *, tls: bool = True) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        component = self.component(name)
        context = self.ssl_context() if tls else None
        last = ""
        while time.monotonic() < deadline:
            if component.process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {component.process.returncode}:\n{component.tail()}"
                )
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name} not ready within {START_TIMEOUT:.0f} s ({last}):\n{component.tail()}"
        )

    def _grant_kubelet_api_access(self) -> None:
        """What kubeadm does: let the API server's kubelet client read pod logs."""
        self.request(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "kube-apiserver-kubelet-api-admin"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:kubelet-api-admin",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": "kube-apiserver-kubelet-client",
                    }
                ],
            },
        )

    def wait_for_service_account(self, namespace: str, name: str = "default") -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                self.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            for component in self.components:
                if component.process.poll() is not None:
                    raise ControlPlaneError(f"{component.name} exited:\n{component.tail()}")
            time.sleep(0.1)
        raise ControlPlaneError(
            f"no ServiceAccount {namespace}/{name} within {START_TIMEOUT:.0f} s"
        )

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.request(
            "POST",
            "/api/v1/namespaces",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": labels or {}},
            },
        )
        self.wait_for_service_account(name)

    def issue_client(self, stem: str, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        assert self.ca is not None
        return self.ca.issue(stem, user, organizations=groups)

    def write_kubeconfig(
        self, path: Path, pair: KeyPair, *, user: str, namespace: str = "default"
    ) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "hean-sandbox",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_path)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)},
                }
            ],
            "contexts": [
                {
                    "name": "hean-sandbox",
                    "context": {"cluster": "hean-sandbox", "user": user, "namespace": namespace},
                }
            ],
            "current-context": "hean-sandbox",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path
