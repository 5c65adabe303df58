"""`hean sandbox up`: a real Kubernetes control plane on one machine, with HEAN in it.

It composes parts that each work alone:
- the control plane (`hean_sandbox.controlplane`): etcd, kube-apiserver,
  kube-controller-manager and kube-scheduler built from the Go modules pinned
  in `cluster/` (built once, then reused), started on loopback with real
  authentication and RBAC; an admin kubeconfig for kubectl and helm;
- a node (`hean_sandbox.kubelet`) that joins it as `system:node:<name>` and
  runs the pods bound to it as local processes (or, with `fake_pods`, only
  reports engine pods Running and Ready, as KWOK does);
- HEAN installed with the real `helm install` of `charts/hean`: the CRDs, the
  operator's ServiceAccount, RBAC and Deployment, so the operator runs as a
  pod (created by the controller manager, bound by the scheduler) that talks
  to the API server with its ServiceAccount's token;
- optionally the exchange simulator (`hean_sim`), so that paper engines get
  market data with no internet (and, given accounts, live engines an exchange
  to trade on).

Tests share one control plane per session (`control_plane=`) and give each
sandbox a namespace, a node and a Helm release of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import urllib.error
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import yaml

from hean_sandbox.controlplane.build import Binaries, ensure_binaries
from hean_sandbox.controlplane.cluster import ControlPlane
from hean_sandbox.kubelet.api import KubeApi
from hean_sandbox.kubelet.node import Node, full_repository, mount_namespace_command
from hean_sandbox.kubelet.podnet import local_pod_network

log = logging.getLogger("hean.sandbox")

if TYPE_CHECKING:
    from hean_sim.exchange.config import ApiKey

CHART = Path(__file__).resolve().parents[3] / "charts" / "hean"
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


def _quiet(_: str) -> None:
    return None


@dataclass
class ExchangeSimOptions:
    data: Path
    port: int = 0
    speed: float | None = 60.0
    symbol: str = "BTC/USDT"
    # Accounts that exist from the start (one per API key pair), for live
    # engines; `balances` is what each holds (None: the simulator's default).
    keys: Sequence[ApiKey] = ()
    balances: Mapping[str, Decimal] | None = None


@dataclass
class SandboxOptions:
    kubeconfig: Path
    workdir: Path
    fake_pods: bool = False
    operator: bool = True
    # Where engines live (the operator watches it) and where the chart goes.
    namespace: str = "default"
    operator_namespace: str = "hean-system"
    release: str = "hean"
    # The namespaces the operator watches (the chart's watchNamespaces; a Role in
    # each); None: `namespace` alone.
    watch_namespaces: Sequence[str] | None = None
    poll_interval: float = 5.0
    # More Helm values, merged over the sandbox's own.
    values: Mapping[str, Any] = field(default_factory=dict)
    exchange_sim: ExchangeSimOptions | None = None
    # A running control plane to join (tests share one); None: start one.
    control_plane: ControlPlane | None = None
    node_name: str | None = None
    # Users' images (a reference, or a repository for any tag) -> the virtual
    # environment that plays each on the node: one with hean and the user's
    # strategy package installed. Their repositories are added to the chart's
    # engine.allowedImageRepositories, so that engines may name them in spec.image.
    image_venvs: Mapping[str, Path] = field(default_factory=dict)
    say: Callable[[str], None] = _quiet


class SandboxError(RuntimeError):
    pass


class Sandbox:
    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.binaries: Binaries | None = None
        self.control_plane: ControlPlane | None = options.control_plane
        self._owns_control_plane = options.control_plane is None
        self.node: Node | None = None
        self.exchange: Any = None
        self._session: aiohttp.ClientSession | None = None
        self._node_task: asyncio.Task[None] | None = None
        self.node_name = options.node_name or f"hean-node-{uuid.uuid4().hex[:6]}"

    # -- what tests and the CLI read ---------------------------------------------
    @property
    def pods_dir(self) -> Path:
        return self.options.workdir / "pods"

    @property
    def kubectl_path(self) -> Path:
        assert self.binaries is not None
        return self.binaries.kubectl

    @property
    def helm_path(self) -> Path:
        assert self.binaries is not None
        return self.binaries.helm

    def operator_logs(self) -> str:
        """Every operator container's log in this sandbox, oldest pod first."""
        namespace = self.pods_dir / self.options.operator_namespace
        paths = sorted(namespace.glob(f"{self.options.release}-*/logs/operator.log"), key=_mtime)
        return "".join(path.read_text(errors="replace") for path in paths)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        options = self.options
        options.workdir.mkdir(parents=True, exist_ok=True)
        self.binaries = await asyncio.to_thread(ensure_binaries, options.say)
        if self.control_plane is None:
            self.control_plane = ControlPlane(self.binaries, options.workdir / "cluster")
            options.say("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler")
            await asyncio.to_thread(self.control_plane.start)
        cp = self.control_plane
        assert cp.admin is not None
        cp.write_kubeconfig(options.kubeconfig, cp.admin, user="admin", namespace=options.namespace)
        for namespace in {options.namespace, options.operator_namespace, *self._watched()}:
            await asyncio.to_thread(_ensure_namespace, cp, namespace)
        await self._start_node()
        if options.exchange_sim is not None:
            await self._start_exchange(options.exchange_sim)
        if options.operator:
            await self.install()

    def _watched(self) -> list[str]:
        if self.options.watch_namespaces is None:
            return [self.options.namespace]
        return list(self.options.watch_namespaces)

    async def _start_node(self) -> None:
        cp = self.control_plane
        assert cp is not None and cp.ca is not None
        name = self.node_name
        client = cp.issue_client(f"node-{name}", f"system:node:{name}", ("system:nodes",))
        serving = cp.ca.issue(
            f"node-{name}-serving", f"system:node:{name}", server_ips=("127.0.0.1",), client=False
        )
        context = ssl.create_default_context(cafile=str(cp.ca_path))
        context.load_cert_chain(str(client.cert), str(client.key))
        pod_network, why = await asyncio.to_thread(local_pod_network)
        if pod_network is None:
            log.warning(
                "pods get loopback addresses: the API server's pod proxy (kubectl hean) "
                "cannot reach them (%s)",
                why,
            )
        self._session = aiohttp.ClientSession()
        assert self.binaries is not None
        self.node = Node(
            KubeApi(self._session, cp.url, ssl_context=context),
            name,
            self.pods_dir,
            fake=self.options.fake_pods,
            kubelet_version=self.binaries.pins.kubernetes,
            serving=(serving.cert, serving.key),
            client_ca=cp.ca_path,
            mount_prefix=await asyncio.to_thread(mount_namespace_command),
            pod_network=pod_network,
            image_venvs=dict(self.options.image_venvs),
        )
        ready = asyncio.Event()
        self._node_task = asyncio.create_task(self.node.run(ready), name=f"node-{name}")
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({waiter, self._node_task}, return_when=asyncio.FIRST_COMPLETED)
        if self._node_task in done:
            waiter.cancel()
            self._node_task.result()  # raises what stopped the node
            raise SandboxError("the node stopped before it was ready")

    async def _start_exchange(self, sim: ExchangeSimOptions) -> None:
        from hean_sim.exchange import SimConfig, SimExchange

        self.exchange = SimExchange(
            SimConfig(
                data=sim.data,
                symbol=sim.symbol,
                speed=sim.speed,
                keys=tuple(sim.keys),
                balances=None if sim.balances is None else dict(sim.balances),
            )
        )
        await self.exchange.start(host="127.0.0.1", port=sim.port)

    def helm_values(self) -> dict[str, Any]:
        options = self.options
        values: dict[str, Any] = {
            "watchNamespaces": self._watched(),
            "pollInterval": options.poll_interval,
            # No Prometheus operator here: its CRDs are absent, and the chart
            # checks for them itself (monitoring.apiCheck).
        }
        if options.image_venvs:
            repositories = sorted({full_repository(image) for image in options.image_venvs})
            values["engine"] = {"allowedImageRepositories": repositories}
        return _merge(values, dict(options.values))

    async def helm(self, *args: str, check: bool = True) -> tuple[int, str]:
        """Run the sandbox's helm against its cluster; returns (exit status, output)."""
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.options.workdir / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(self.options.workdir / "helm" / "config"),
            "HELM_DATA_HOME": str(self.options.workdir / "helm" / "data"),
        }
        process = await asyncio.create_subprocess_exec(
            str(self.helm_path),
            "--kubeconfig",
            str(self.options.kubeconfig),
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        text = out.decode(errors="replace")
        if check and process.returncode != 0:
            raise SandboxError(f"helm {' '.join(args)} failed:\n{text}")
        return process.returncode or 0, text

    async def install(
        self, *, upgrade: bool = False, extra: Mapping[str, Any] | None = None
    ) -> str:
        """`helm install` (or `upgrade`) of the chart; waits until the operator is Ready."""
        options = self.options
        values = _merge(self.helm_values(), dict(extra or {}))
        values_file = options.workdir / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        verb = "upgrade" if upgrade else "install"
        code, out = await self.helm(
            verb,
            options.release,
            str(CHART),
            "--namespace",
            options.operator_namespace,
            "--values",
            str(values_file),
            "--wait",
            "--timeout",
            "180s",
            check=False,
        )
        if code != 0:
            raise SandboxError(f"helm {verb} failed:\n{out}\n{await self.diagnose()}")
        return out

    async def diagnose(self) -> str:
        """What a person would look at when the operator does not come up."""
        namespace = self.options.operator_namespace
        parts = []
        for args in (
            ("get", "nodes,pods", "-A", "-o", "wide"),
            ("-n", namespace, "get", "events", "--sort-by=.lastTimestamp"),
        ):
            with contextlib.suppress(SandboxError, OSError):
                _, out, err = await self.kubectl(*args, check=False)
                parts.append(f"$ kubectl {' '.join(args)}\n{out}{err}")
        parts.append("operator log (tail):\n" + "\n".join(self.operator_logs().splitlines()[-30:]))
        return "\n".join(parts)

    async def uninstall(self) -> str:
        _, out = await self.helm(
            "uninstall",
            self.options.release,
            "--namespace",
            self.options.operator_namespace,
            "--wait",
        )
        return out

    async def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            str(self.kubectl_path),
            "--kubeconfig",
            str(self.options.kubeconfig),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        result = (process.returncode or 0, out.decode(), err.decode())
        if check and result[0] != 0:
            raise SandboxError(f"kubectl {' '.join(args)} failed:\n{result[2]}")
        return result

    async def operator_pod(self) -> dict[str, Any] | None:
        """The operator's Ready pod, or None."""
        _, out, _ = await self.kubectl(
            "-n",
            self.options.operator_namespace,
            "get",
            "pods",
            "-l",
            f"{OPERATOR_SELECTOR},app.kubernetes.io/instance={self.options.release}",
            "-o",
            "json",
        )
        for pod in json.loads(out)["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            conditions = pod.get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                found: dict[str, Any] = pod
                return found
        return None

    async def restart_operator(self, *, kill: bool = True) -> None:
        """Delete the operator's pod (at once with `kill`) and wait for its replacement,
        which the Deployment's ReplicaSet creates, to be Ready."""
        before = await self.operator_pod()
        selector = f"{OPERATOR_SELECTOR},app.kubernetes.io/instance={self.options.release}"
        force = ("--grace-period=0", "--force") if kill else ()
        await self.kubectl(
            "-n", self.options.operator_namespace, "delete", "pod", "-l", selector, *force
        )
        old = before["metadata"]["uid"] if before else None
        for _ in range(900):
            pod = await self.operator_pod()
            if pod is not None and pod["metadata"]["uid"] != old:
                return
            await asyncio.sleep(0.2)
        raise SandboxError("the operator's new pod did not become Ready within 180 s")

    async def stop(self) -> None:
        options = self.options
        cp = self.control_plane
        if cp is not None and not self._owns_control_plane:
            # A shared cluster outlives this sandbox: leave it as found. Engines
            # first, while the operator can still remove its finalizers.
            with contextlib.suppress(SandboxError, OSError):
                for namespace in self._watched():
                    await asyncio.wait_for(
                        self.kubectl(
                            "-n",
                            namespace,
                            "delete",
                            "tradingengines,liveapprovals",
                            "--all",
                            "--timeout=60s",
                            check=False,
                        ),
                        90,
                    )
            if options.operator:
                with contextlib.suppress(SandboxError, OSError, TimeoutError):
                    await asyncio.wait_for(self.uninstall(), 120)
        if self._node_task is not None:
            self._node_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._node_task
        if cp is not None and not self._owns_control_plane:
            with contextlib.suppress(OSError, RuntimeError):
                namespaces = {options.namespace, options.operator_namespace, *self._watched()}
                await asyncio.to_thread(_delete_node_and_namespaces, cp, self.node_name, namespaces)
        if self._session is not None:
            await self._session.close()
        if self.exchange is not None:
            await self.exchange.stop()
        if cp is not None and self._owns_control_plane:
            await asyncio.to_thread(cp.stop)


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _ensure_namespace(cp: ControlPlane, namespace: str) -> None:
    try:
        cp.request("GET", f"/api/v1/namespaces/{namespace}")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        cp.create_namespace(namespace)
        return
    cp.wait_for_service_account(namespace)


def _delete_node_and_namespaces(cp: ControlPlane, node: str, namespaces: set[str]) -> None:
    """Leave a shared cluster as found: this sandbox's node and namespaces go."""
    for path in [
        f"/api/v1/nodes/{node}",
        *(f"/api/v1/namespaces/{ns}" for ns in sorted(namespaces) if ns not in SYSTEM_NAMESPACES),
    ]:
        with contextlib.suppress(urllib.error.HTTPError):
            cp.request("DELETE", path)
