"""The sandbox's node: a kubelet that runs each pod's container as a local process.

It joins a real control plane as a Node (`system:node:<name>`, authenticated by
a client certificate, limited by the Node authorizer and NodeRestriction):

- registers its `Node` (capacity, addresses, the `Ready` condition) and renews
  its Lease in `kube-node-lease` every 10 s, so that the real scheduler binds
  pods to it and the node lifecycle controller keeps it Ready;
- watches only the pods bound to it (`spec.nodeName`) and, for each:
- runs only images it knows: HEAN's own (`…/hean-engine`, `…/hean-operator`,
  any registry and tag) map to this Python environment, their programs (`hean`,
  `kubectl-hean`: IMAGE_PROGRAMS) to their modules, with the image's
  entrypoint and default arguments when the pod gives none; an image given
  in `image_venvs` (a user's image derived from the engine image, by
  reference or by repository) runs the engine image's
  entrypoint with that virtual environment's Python instead, where the user's
  strategy package is installed; any other image is
  `ErrImagePull`/`ImagePullBackOff` with an Event, never a silent success;
- gives the pod a local IP of its own (see IpAllocator), so that pods can all
  listen on the same port, as in a cluster: from `pod_network` when the
  sandbox could make that range local (podnet.py; the API server's pod proxy
  reaches only such addresses), else a loopback one (127.B.x.y);
- mounts hostPath volumes, and PersistentVolumeClaims bound to a hostPath or
  local PersistentVolume, as those directories of this machine (a Backtest's
  recorded data, candle cache and reports live there);
- writes the pod's other volumes into a directory per pod: ConfigMap, Secret,
  emptyDir, downwardAPI and projected volumes, the projected service-account
  token requested through the TokenRequest API and bound to the pod (so a pod
  talks to the API server as its ServiceAccount) and renewed at 80% of its
  lifetime; ConfigMaps and Secrets are kept current while the pod runs;
  a persistentVolumeClaim is its bound PersistentVolume's host directory
  (hostPath or local, as `hean_sandbox.provisioner` makes them), not a
  directory of the pod's, so its files outlive the pod;
- mounts: where the node can make a private mount namespace (`unshare`), the
  pod gets its own `/run` and each volume mounted under `/run` or `/var/run`
  appears at its real path (the service-account token at
  /var/run/secrets/kubernetes.io/serviceaccount, where the Kubernetes clients
  look for it); every other mount path is rewritten in the command and
  arguments to the volume's directory;
- starts the container with its env (`value`, `valueFrom` Secrets, ConfigMaps
  and pod fields), plus `KUBERNETES_SERVICE_HOST`/`PORT` (the API server's
  real address: there is no Service routing), `POD_IP`, `POD_NAME`,
  `POD_NAMESPACE` and `HEAN_HOST` (the address HEAN processes bind to);
- runs the readiness probe (httpGet) and reports phase, podIP, restarts,
  container state (with the last termination, its exit code and termination
  message: the file at `terminationMessagePath`, which is rewritten to a file
  of the pod's wherever the container's env names it) and the Ready condition
  through the status subresource;
- restarts the process per `restartPolicy` with a capped backoff, showing
  CrashLoopBackOff while it waits;
- on deletion sends SIGTERM, waits the grace period, then SIGKILL, and only
  then finishes the deletion, as a kubelet confirms a pod is gone;
- serves the kubelet's `containerLogs` endpoint over TLS (when given a serving
  certificate), so that `kubectl logs` works through the API server.

`fake=True` (like KWOK) marks engine pods (image `…/hean-engine`) Running and
Ready without any process, for scale tests of the operator, which itself still
runs; an engine pod with a container port named `http` gets a stand-in engine
API there (`fake_engine.py`), so that the operator's status polls succeed.
Each pod is started on a task of its own, as a kubelet's pod workers start
pods: the watch loop never waits for one pod's start before the next.
Deviations from a kubelet are in docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import logging
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hean_engine.model.timefmt import now_iso, now_iso_micros
from hean_sandbox.kubelet.api import ApiError, KubeApi
from hean_sandbox.kubelet.fake_engine import FakeEngine, start_fake_engine

log = logging.getLogger("hean.sandbox.kubelet")

PROBE_PERIOD_CAP = 1.0  # seconds: probes run at least this often, for a responsive sandbox
BACKOFF_CAP = 10.0
# A pod's volumes are tried again at most a second apart: the kubelet's volume
# manager re-checks every 100 ms, and a claim bound, or a ConfigMap created, a
# moment after the pod must not wait out a long backoff (a hundred engines
# created at once waited 7 s for their claims).
PREPARE_BACKOFF_CAP = 1.0
LEASE_SECONDS = 40
LEASE_RENEW_SECONDS = 10.0
# ConfigMap and Secret volumes are re-read this often (the kubelet takes up to a
# minute; a sandbox is for fast feedback).
VOLUME_SYNC_SECONDS = 1.0
TOKEN_SECONDS = 3607  # what the kubelet asks for a projected token by default
# Mount paths a pod gets at their real place in its own mount namespace.
PRIVATE_ROOTS = ("/run", "/var/run")

# HEAN's images, by the last path component of the repository: the entrypoint
# and default arguments of docker/*.Dockerfile.
IMAGES: dict[str, tuple[list[str], list[str]]] = {
    "hean-engine": (["hean"], ["engine", "run", "--help"]),
    "hean-operator": (["hean"], ["operator", "run"]),
}


# The programs HEAN's images put on PATH (pyproject.toml's scripts: every image
# installs the whole `hean` distribution), by the module each runs. The chart's
# console runs the operator image with `command: ["kubectl-hean"]`.
IMAGE_PROGRAMS: dict[str, str] = {
    "hean": "hean_engine.cli",
    "kubectl-hean": "hean_desk.plugin",
}


def image_repository(image: str) -> str:
    """`ghcr.io/hean-io/hean-engine:0.1.0@sha256:…` -> `hean-engine`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def image_entrypoint(image: str) -> tuple[list[str], list[str]] | None:
    return IMAGES.get(image_repository(image))


def full_repository(image: str) -> str:
    """`registry:5000/team/engine:1.2@sha256:…` -> `registry:5000/team/engine`."""
    name = image.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


def venv_for(image: str, venvs: dict[str, Path]) -> Path | None:
    """The virtual environment standing in for `image`: by exact reference, else repository."""
    return venvs.get(image) or venvs.get(full_repository(image))


# Kubernetes' default `terminationMessagePath`.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
# What the kubelet keeps of a termination message.
TERMINATION_MESSAGE_BYTES = 4096


class IpAllocator:
    """Every pod its own local address, e.g. 127.57.0.2, 127.57.0.3, ...

    Several sandboxes (or tests) may run on one machine at once, so each node
    starts in a random /16 of 127.0.0.0/8 and skips any address on which one of
    `ports` is already taken: two pods never contend for one address. With a
    `network` (podnet.py: a range made local so that the API server proxies to
    it), addresses come from there instead, from a random place in it.
    """

    def __init__(
        self,
        ports: tuple[int, ...] = (8080,),
        block: int | None = None,
        network: ipaddress.IPv4Network | None = None,
    ) -> None:
        self._network = network
        if network is not None:
            self._block = block if block is not None else random.randrange(network.num_addresses)
        else:
            self._block = block if block is not None else random.randint(2, 254)
        self._ports = ports
        self._counter = itertools.count(1)

    def _candidate(self, n: int) -> str | None:
        network = self._network
        if network is None:
            return f"127.{self._block}.{n // 250}.{n % 250 + 1}"
        address = network.network_address + (self._block + n) % network.num_addresses
        # .0 and .255 look like network and broadcast addresses to people: skipped
        return None if int(address) % 256 in (0, 255) else str(address)

    def next(self) -> str:
        for _ in range(65_000):
            ip = self._candidate(next(self._counter))
            if ip is not None and all(_free(ip, port) for port in self._ports):
                return ip
        raise RuntimeError("no free local address left for another pod")


def _free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def mount_namespace_command() -> list[str] | None:
    """The `unshare` prefix that gives a process a private mount namespace here, or None.

    As root a mount namespace is enough; otherwise a user namespace that maps
    the user to root inside it (where the kernel allows unprivileged ones)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    candidates = [[unshare, "--mount", "--propagation", "private"]]
    candidates.append([unshare, "--user", "--map-root-user", "--mount", "--propagation", "private"])
    for prefix in candidates:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            probe = subprocess.run(  # noqa: S603 - unshare found on PATH, fixed arguments
                [*prefix, "sh", "-c", "mount -t tmpfs tmpfs /run"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            if probe.returncode == 0:
                return prefix
    return None


@dataclass
class PodRun:
    namespace: str
    name: str
    uid: str
    ip: str
    directory: Path
    spec: dict[str, Any]
    metadata: dict[str, Any]
    restarts: int = 0
    ready: bool = False
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    terminator: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: str = field(default_factory=now_iso)
    process_started: str | None = None  # the current process's start, for startedAt
    fake_engine: FakeEngine | None = None  # fake mode only
    faking: asyncio.Task[None] | None = None  # fake mode: the fake engine's start
    token_expires: float = 0.0  # loop time at which the projected token is 80% used
    # The container's last termination (exitCode, reason, message, times): lastState.
    last_terminated: dict[str, Any] | None = None

    @property
    def termination_log(self) -> Path:
        """Where the container's `terminationMessagePath` is on this node."""
        return self.directory / "termination-log"


class Node:
    def __init__(
        self,
        api: KubeApi,
        name: str,
        workdir: Path,
        *,
        fake: bool = False,
        kubelet_version: str = "v0.0.0",
        serving: tuple[Path, Path] | None = None,
        client_ca: Path | None = None,
        mount_prefix: list[str] | None = None,
        pod_network: ipaddress.IPv4Network | None = None,
        image_venvs: dict[str, Path] | None = None,
    ) -> None:
        self.api = api
        # A user's image (reference or repository) -> the virtual environment that
        # plays it: the engine image's entrypoint, run by that environment's Python.
        self.image_venvs = dict(image_venvs or {})
        self.name = name
        self.workdir = workdir
        self.fake = fake
        self.kubelet_version = kubelet_version
        self.pods: dict[str, PodRun] = {}  # by uid
        self._ips = IpAllocator(network=pod_network)
        self.pod_network = pod_network
        self._http: aiohttp.ClientSession | None = None
        self._serving = serving
        self._client_ca = client_ca
        self._mount_prefix = mount_prefix
        self._log_server: web.AppRunner | None = None
        self.log_port = 0

    # -- joining the cluster ---------------------------------------------------
    async def run(self, ready: asyncio.Event | None = None) -> None:
        self._http = aiohttp.ClientSession()
        heartbeat: asyncio.Task[None] | None = None
        try:
            await self._serve_logs()
            await self._register()
            heartbeat = asyncio.create_task(self._heartbeat(), name=f"lease-{self.name}")
            await self._watch(ready)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            for run in list(self.pods.values()):
                await self._kill(run, grace=2.0)
            if self._log_server is not None:
                await self._log_server.cleanup()
            await self._http.close()

    def _node_status(self) -> dict[str, Any]:
        now = now_iso()
        memory_kib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
        capacity = {
            "cpu": str(os.cpu_count() or 1),
            "memory": f"{memory_kib}Ki",
            "pods": "2000",
            "ephemeral-storage": "100Gi",
        }

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                condition("Ready", "True", "KubeletReady", "HEAN sandbox node is posting ready"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.log_port}},
            "nodeInfo": {
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, self.name).hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.name)),
                "bootID": str(uuid.uuid4()),
                "kernelVersion": platform.release(),
                "osImage": "HEAN sandbox node (local processes)",
                "containerRuntimeVersion": f"hean-sandbox://{sys.version.split()[0]}",
                "kubeletVersion": self.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64" if platform.machine() in ("x86_64", "amd64") else "arm64",
            },
        }

    async def _register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "hean.io/sandbox-node": "fake" if self.fake else "processes",
                },
            },
        }
        try:
            await self.api.request("POST", "/api/v1/nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
        await self.api.request(
            "PATCH",
            f"/api/v1/nodes/{self.name}/status",
            {"status": self._node_status()},
            content_type="application/strategic-merge-patch+json",
        )
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now_iso_micros(),
            },
        }
        try:
            await self.api.request(
                "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease
            )
        except ApiError as exc:
            if exc.status != 409:
                raise
            await self._renew()

    async def _renew(self) -> None:
        await self.api.request(
            "PATCH",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}",
            {"spec": {"holderIdentity": self.name, "renewTime": now_iso_micros()}},
            content_type="application/merge-patch+json",
        )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            try:
                await self._renew()
            except (ApiError, aiohttp.ClientError, OSError) as exc:
                log.warning("node %s: lease not renewed: %s", self.name, exc)

    async def _serve_logs(self) -> None:
        """The kubelet's `GET /containerLogs/{ns}/{pod}/{container}` for `kubectl logs`,
        over TLS, accepting only clients with a certificate from the cluster's CA."""
        if self._serving is None or self._client_ca is None:
            return
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self._client_ca))
        context.load_cert_chain(str(self._serving[0]), str(self._serving[1]))
        context.verify_mode = ssl.CERT_REQUIRED
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_logs)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self._log_server = runner
        server = site._server
        assert server is not None
        self.log_port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        pod = request.match_info["pod"]
        container = request.match_info["container"]
        run = next(
            (r for r in self.pods.values() if r.namespace == namespace and r.name == pod), None
        )
        if run is None:
            return web.Response(status=404, text=f"pod {namespace}/{pod} is not on this node")
        path = run.directory / "logs" / f"{container}.log"
        text = path.read_bytes() if path.exists() else b""
        tail = request.query.get("tailLines")
        if tail is not None and tail.isdigit():
            lines = text.splitlines(keepends=True)
            text = b"".join(lines[-int(tail) :]) if int(tail) else b""
        return web.Response(body=text, content_type="text/plain")

    # -- the watch loop --------------------------------------------------------
    async def _watch(self, ready: asyncio.Event | None) -> None:
        while True:
            listing = await self.api.list_pods(self.name)
            listed = {pod["metadata"]["uid"] for pod in listing.get("items", [])}
            # A relist after a broken watch (410 Gone): pods deleted meanwhile
            # sent no DELETED we saw, so stop whatever the listing lacks.
            for uid in [uid for uid in self.pods if uid not in listed]:
                await self._forget(uid)
            for pod in listing.get("items", []):
                await self._observe(pod)
            if ready is not None:
                ready.set()
            version = listing["metadata"].get("resourceVersion", "0")
            try:
                async for event in self.api.watch_pods(self.name, version):
                    if event.get("type") == "ERROR":
                        break  # e.g. 410 Gone: list again
                    if event.get("type") == "BOOKMARK":
                        continue
                    obj = event["object"]
                    if event["type"] == "DELETED":
                        await self._forget(obj["metadata"]["uid"])
                    else:
                        await self._observe(obj)
            except (aiohttp.ClientError, ApiError) as exc:
                log.warning("pod watch interrupted: %s", exc)
                await asyncio.sleep(0.5)

    async def _observe(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        run = self.pods.get(meta["uid"])
        if meta.get("deletionTimestamp"):
            if run is not None and not run.stopping.is_set():
                run.stopping.set()
                grace = float(
                    meta.get("deletionGracePeriodSeconds")
                    or pod["spec"].get("terminationGracePeriodSeconds")
                    or 30
                )
                run.terminator = asyncio.create_task(self._terminate(run, grace))
            elif run is None:
                await self.api.finish_pod_deletion(meta["namespace"], meta["name"], meta["uid"])
            return
        if run is None and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            await self._start(pod)

    async def _forget(self, uid: str) -> None:
        run = self.pods.pop(uid, None)
        if run is not None:
            run.stopping.set()
            await self._kill(run, grace=0)

    # -- one pod -------------------------------------------------------------------
    async def _start(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        run = PodRun(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            ip=self._ips.next(),
            directory=self.workdir / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}",
            spec=pod["spec"],
            metadata=meta,
        )
        self.pods[run.uid] = run
        if self.fake and _is_engine_pod(pod):
            # On a task of its own, as a kubelet's pod workers start pods: the watch
            # loop goes on to the next pod (a hundred engines created at once were
            # started, and reported Ready, one after another).
            run.faking = asyncio.create_task(self._start_fake(run, pod))
            return
        run.task = asyncio.create_task(self._supervise(run))

    async def _start_fake(self, run: PodRun, pod: dict[str, Any]) -> None:
        run.fake_engine, run.ip = await start_fake_engine(self.api, pod, run.ip, self._ips.next)
        if run.stopping.is_set():
            return  # deleted meanwhile: `_kill` stops the fake engine
        try:
            await self._report(run, running=True, ready=True)
        except (ApiError, aiohttp.ClientError) as exc:  # the pod went meanwhile
            log.warning("%s/%s: %s", run.namespace, run.name, exc)

    async def _supervise(self, run: PodRun) -> None:
        container = run.spec["containers"][0]
        venv = venv_for(container.get("image", ""), self.image_venvs)
        # A user's image is derived from the engine image: it has that entrypoint.
        entrypoint = IMAGES["hean-engine"] if venv else image_entrypoint(container.get("image", ""))
        if entrypoint is None:
            await self._refuse_image(run, container)
            return
        prepared = await self._prepare(run, container)
        if prepared is None:
            return
        mounts, env = prepared
        binds = {path: local for path, local in mounts.items() if _private(path)}
        rewrites = {path: local for path, local in mounts.items() if not _private(path)}
        if binds and self._mount_prefix is None:
            message = (
                f"this node cannot mount {', '.join(sorted(binds))}: it needs a private mount "
                "namespace (unshare as root, or unprivileged user namespaces)"
            )
            await self._report(run, running=False, waiting=("CreateContainerError", message))
            await self._event(run, "Warning", "Failed", f"Error: {message}")
            return
        command_part = container.get("command") or entrypoint[0]
        args_part = container.get("args")
        if args_part is None:
            args_part = [] if container.get("command") else entrypoint[1]
        command = [_rewrite(arg, rewrites) for arg in [*command_part, *args_part]]
        command = _resolve(command, venv)
        if binds:
            command = [*(self._mount_prefix or []), *_bind_script(binds), *command]
        policy = run.spec.get("restartPolicy", "Always")
        refresher = asyncio.create_task(self._refresh_volumes(run))
        try:
            await self._run_container(run, container, command, env, policy, 1.0)
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    async def _prepare(
        self, run: PodRun, container: dict[str, Any]
    ) -> tuple[dict[str, Path], dict[str, str]] | None:
        """The pod's volumes and env, retried with a capped backoff as the kubelet
        retries: a ConfigMap may appear later, and the API server's Node authorizer
        lets a node read what a pod uses only once it has seen the pod bound to it
        (a 403 for a moment after binding). None: the pod was deleted meanwhile."""
        backoff = 0.2
        reported = ""
        while not run.stopping.is_set():
            try:
                mounts = await self._materialise_volumes(run)
                return mounts, await self._environment(run, container)
            except (ApiError, KeyError, ValueError) as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    await self._report(
                        run, running=False, waiting=("CreateContainerConfigError", reported)
                    )
                    await self._event(run, "Warning", "Failed", f"Error: {reported}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, PREPARE_BACKOFF_CAP)
        return None

    async def _refuse_image(self, run: PodRun, container: dict[str, Any]) -> None:
        image = container.get("image", "")
        known = ", ".join(sorted(IMAGES))
        message = (
            f'Failed to pull image "{image}": the HEAN sandbox node has no container runtime; '
            f"it runs only HEAN's own images ({known}) as local processes, and images mapped "
            "to a virtual environment (hean sandbox up --image-venv IMAGE=VENV)"
        )
        await self._report(run, running=False, waiting=("ErrImagePull", message))
        await self._event(run, "Warning", "Failed", message)
        await self._event(run, "Normal", "BackOff", f'Back-off pulling image "{image}"')
        await self._report(run, running=False, waiting=("ImagePullBackOff", message))

    async def _run_container(
        self,
        run: PodRun,
        container: dict[str, Any],
        command: list[str],
        env: dict[str, str],
        policy: str,
        backoff: float,
    ) -> None:
        while not run.stopping.is_set():
            log_path = run.directory / "logs" / f"{container['name']}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            run.termination_log.unlink(missing_ok=True)  # each start writes its own
            with log_path.open("ab") as logfile:
                run.process = await asyncio.create_subprocess_exec(
                    *command,
                    env=env,
                    stdout=logfile,
                    stderr=logfile,
                    stdin=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )
            run.ready = False
            run.process_started = now_iso()
            await self._report(run, running=True, ready=False)
            if run.restarts == 0:
                await self._event(
                    run, "Normal", "Started", f"Started container {container['name']}"
                )
            prober = asyncio.create_task(self._probe(run, container))
            code = await run.process.wait()
            prober.cancel()
            try:
                await prober
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # a probe that cannot run (e.g. an unknown port name)
                log.warning("readiness probe of %s/%s failed: %s", run.namespace, run.name, exc)
            if run.stopping.is_set():
                return
            run.last_terminated = _terminated(run, container, code, log_path)
            failed = code != 0
            if policy == "Never" or (policy == "OnFailure" and not failed):
                await self._report(run, running=False, exit_code=code, final=True)
                return
            run.restarts += 1
            await self._report(
                run,
                running=False,
                waiting=("CrashLoopBackOff", f"exit {code}") if run.restarts > 1 else None,
                exit_code=code,
            )
            if run.restarts > 1:
                await self._event(
                    run, "Warning", "BackOff", f"Back-off restarting failed container (exit {code})"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.stopping.wait(), timeout=backoff)
            backoff = min(backoff * 2, BACKOFF_CAP)

    async def _probe(self, run: PodRun, container: dict[str, Any]) -> None:
        probe = container.get("readinessProbe")
        if not probe or "httpGet" not in probe:
            run.ready = True
            await self._report(run, running=True, ready=True)
            return
        get = probe["httpGet"]
        port = _port(get.get("port"), container)
        url = f"http://{run.ip}:{port}{get.get('path', '/')}"
        period = min(float(probe.get("periodSeconds", 10)), PROBE_PERIOD_CAP)
        threshold = int(probe.get("failureThreshold", 3))
        failures = 0
        assert self._http is not None
        while True:
            ok = False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    ok = 200 <= resp.status < 400
            failures = 0 if ok else failures + 1
            ready = ok or (run.ready and failures < threshold)
            if ready != run.ready:
                run.ready = ready
                await self._report(run, running=True, ready=ready)
            await asyncio.sleep(period)

    async def _terminate(self, run: PodRun, grace: float) -> None:
        await self._kill(run, grace)
        self.pods.pop(run.uid, None)
        await self.api.finish_pod_deletion(run.namespace, run.name, run.uid)

    async def _kill(self, run: PodRun, grace: float) -> None:
        run.stopping.set()
        if run.faking is not None:
            # Let a fake engine being started finish starting, then stop it below.
            with contextlib.suppress(Exception):
                await run.faking
        if run.fake_engine is not None:
            engine, run.fake_engine = run.fake_engine, None
            await engine.stop()
        process = run.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if run.task is not None and not run.task.done():
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.task

    # -- volumes and environment ---------------------------------------------------
    async def _materialise_volumes(self, run: PodRun) -> dict[str, Path]:
        """Write each volume to a directory; returns mountPath -> local directory.

        A persistentVolumeClaim is not written: it is the directory of the claim's
        PersistentVolume (`_claim_directory`), shared by every pod that uses the
        claim over time, so its files outlive each pod."""
        volumes: dict[str, Path] = {}
        for volume in run.spec.get("volumes", []):
            local = await self._host_directory(run, volume)
            if local is not None:
                volumes[volume["name"]] = local
                continue
            target = run.directory / "volumes" / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            files = await self._volume_files(run, volume)
            if files is not None:
                _sync_files(target, files, _mode(volume), set())
            volumes[volume["name"]] = target
        mounts: dict[str, Path] = {}
        for mount in run.spec["containers"][0].get("volumeMounts", []):
            if mount["name"] in volumes:
                mounts[mount["mountPath"]] = _sub_path(volumes[mount["name"]], mount)
        return mounts

    async def _host_directory(self, run: PodRun, volume: dict[str, Any]) -> Path | None:
        """The machine's directory a hostPath volume, or a claim bound to a hostPath or
        local PersistentVolume, names (the node is this machine); None for other volumes."""
        if "hostPath" in volume:
            path = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
            return path
        claim = volume.get("persistentVolumeClaim")
        if claim is None:
            return None
        return await self._claim_directory(run, claim)

    async def _claim_directory(self, run: PodRun, source: dict[str, Any]) -> Path:
        """The host directory of a bound claim's PersistentVolume (hostPath or local), as
        the kubelet mounts it; a ValueError (retried by `_prepare`) until it is bound.
        The Node authorizer lets the node read a claim and its volume once a pod bound
        to it uses them."""
        name = source["claimName"]
        claim = await self.api.get(
            f"/api/v1/namespaces/{run.namespace}/persistentvolumeclaims/{name}"
        )
        if claim is None:
            raise ValueError(f'persistentvolumeclaim "{name}" not found')
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name or (claim.get("status") or {}).get("phase") != "Bound":
            raise ValueError(f'persistentvolumeclaim "{name}" is not bound')
        volume = await self.api.get(f"/api/v1/persistentvolumes/{volume_name}")
        if volume is None:
            raise ValueError(f'persistentvolume "{volume_name}" not found')
        spec = volume.get("spec") or {}
        path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
        if not path:
            raise ValueError(
                f'persistentvolume "{volume_name}": this node mounts only hostPath and local '
                "volumes"
            )
        directory = Path(path)
        # hostPath type DirectoryOrCreate
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        return directory

    async def _volume_files(self, run: PodRun, volume: dict[str, Any]) -> dict[str, bytes] | None:
        """A volume's files (path -> bytes); None for volumes with no source (emptyDir)."""
        if "configMap" in volume:
            return await self._configmap_files(run, volume["configMap"])
        if "secret" in volume:
            return await self._secret_files(run, volume["secret"])
        if "downwardAPI" in volume:
            return self._downward_files(run, volume["downwardAPI"])
        if "projected" in volume:
            files: dict[str, bytes] = {}
            for source in volume["projected"].get("sources", []):
                if "serviceAccountToken" in source:
                    token = source["serviceAccountToken"]
                    files[token["path"]] = await self._token(run, token)
                elif "configMap" in source:
                    files.update(await self._configmap_files(run, source["configMap"]))
                elif "secret" in source:
                    files.update(await self._secret_files(run, source["secret"]))
                elif "downwardAPI" in source:
                    files.update(self._downward_files(run, source["downwardAPI"]))
            return files
        return None

    async def _configmap_files(self, run: PodRun, source: dict[str, Any]) -> dict[str, bytes]:
        name = source["name"]
        found = await self.api.get(f"/api/v1/namespaces/{run.namespace}/configmaps/{name}")
        if found is None and not source.get("optional"):
            raise ValueError(f'configmap "{name}" not found')
        data = {k: v.encode() for k, v in ((found or {}).get("data") or {}).items()}
        return _items(data, source, f'configmap "{name}"')

    async def _secret_files(self, run: PodRun, source: dict[str, Any]) -> dict[str, bytes]:
        name = source.get("secretName") or source["name"]
        found = await self.api.get(f"/api/v1/namespaces/{run.namespace}/secrets/{name}")
        if found is None and not source.get("optional"):
            raise ValueError(f'secret "{name}" not found')
        data = {k: base64.b64decode(v) for k, v in ((found or {}).get("data") or {}).items()}
        return _items(data, source, f'secret "{name}"')

    def _downward_files(self, run: PodRun, source: dict[str, Any]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for item in source.get("items", []):
            if "fieldRef" in item:
                files[item["path"]] = self._field(run, item["fieldRef"]["fieldPath"]).encode()
        return files

    async def _token(self, run: PodRun, source: dict[str, Any]) -> bytes:
        seconds = int(source.get("expirationSeconds", TOKEN_SECONDS))
        account = run.spec.get("serviceAccountName") or "default"
        token = await self.api.request_token(run.namespace, account, run.name, run.uid, seconds)
        run.token_expires = asyncio.get_running_loop().time() + 0.8 * seconds
        return token.encode()

    def _field(self, run: PodRun, path: str) -> str:
        fields = {
            "metadata.name": run.name,
            "metadata.namespace": run.namespace,
            "metadata.uid": run.uid,
            "spec.nodeName": self.name,
            "spec.serviceAccountName": str(run.spec.get("serviceAccountName", "default")),
            "status.podIP": run.ip,
            "status.hostIP": "127.0.0.1",
        }
        if path in fields:
            return fields[path]
        for prefix, source in (
            ("metadata.labels", "labels"),
            ("metadata.annotations", "annotations"),
        ):
            if path.startswith(prefix + "['") and path.endswith("']"):
                return str((run.metadata.get(source) or {}).get(path[len(prefix) + 2 : -2], ""))
        raise ValueError(f"unsupported fieldRef {path!r}")

    async def _refresh_volumes(self, run: PodRun) -> None:
        """Keep ConfigMap, Secret and projected volumes current while the pod lives, as
        the kubelet does (it updates them in place within its sync period; subPath
        mounts aside); a projected token is renewed at 80% of its lifetime.
        A running engine relies on it: a revoked key reaches its own approval check."""
        written: dict[str, set[str]] = {}
        loop = asyncio.get_running_loop()
        while not run.stopping.is_set():
            await asyncio.sleep(VOLUME_SYNC_SECONDS)
            for volume in run.spec.get("volumes", []):
                if "projected" in volume and loop.time() < run.token_expires:
                    continue  # nothing in it changes before the token needs renewing
                try:
                    files = await self._volume_files(run, volume)
                except (ApiError, ValueError) as exc:
                    # The kubelet keeps the last files when a source disappears.
                    log.debug(
                        "volume %s of %s/%s not refreshed: %s",
                        volume["name"],
                        run.namespace,
                        run.name,
                        exc,
                    )
                    continue
                if files is None:
                    continue
                target = run.directory / "volumes" / volume["name"]
                before = written.get(volume["name"])
                if before is None:  # what the pod started with
                    before = {
                        str(path.relative_to(target))
                        for path in target.rglob("*")
                        if path.is_file() and not path.name.startswith(".")
                    }
                written[volume["name"]] = _sync_files(target, files, _mode(volume), before)

    async def _environment(self, run: PodRun, container: dict[str, Any]) -> dict[str, str]:
        # PYTHONPATH too: "the image" is this interpreter's environment (`_resolve`), and
        # its import path is part of it (a worktree's code first, before an editable
        # install of another checkout).
        passed = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")
        env = {k: v for k, v in os.environ.items() if k in passed}
        server = self.api.server.removeprefix("https://").removeprefix("http://")
        host, _, port = server.rpartition(":")
        env.update(
            {
                "KUBERNETES_SERVICE_HOST": host,
                "KUBERNETES_SERVICE_PORT": port,
                "POD_IP": run.ip,
                "POD_NAME": run.name,
                "POD_NAMESPACE": run.namespace,
                "HEAN_HOST": run.ip,
            }
        )
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "valueFrom" in item:
                env[item["name"]] = await self._value_from(run, item["valueFrom"])
        # The container's termination message file is the pod's own here, where
        # the env names it (as HEAN's engine learns it: HEAN_TERMINATION_MESSAGE_PATH).
        message_path = container.get("terminationMessagePath", TERMINATION_MESSAGE_PATH)
        for key, value in env.items():
            if value == message_path:
                env[key] = str(run.termination_log)
        return env

    async def _value_from(self, run: PodRun, source: dict[str, Any]) -> str:
        if "fieldRef" in source:
            return self._field(run, source["fieldRef"]["fieldPath"])
        for kind, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if kind in source:
                ref = source[kind]
                found = await self.api.get(
                    f"/api/v1/namespaces/{run.namespace}/{plural}/{ref['name']}"
                )
                data = (found or {}).get("data") or {}
                if ref["key"] not in data:
                    raise ValueError(f"{plural} {ref['name']!r} has no key {ref['key']!r}")
                value = data[ref["key"]]
                return base64.b64decode(value).decode() if plural == "secrets" else str(value)
        raise ValueError(f"unsupported valueFrom: {sorted(source)}")

    # -- status and events -------------------------------------------------------
    async def _event(self, run: PodRun, kind: str, reason: str, message: str) -> None:
        """A core/v1 Event about the pod, as the kubelet posts them (a courtesy: its
        failure must not stop the pod)."""
        now = now_iso()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{run.name}.", "namespace": run.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": run.name,
                "namespace": run.namespace,
                "uid": run.uid,
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "kubelet", "host": self.name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.api.post_event(run.namespace, event)
        except (ApiError, aiohttp.ClientError) as exc:
            log.debug("event for %s/%s not posted: %s", run.namespace, run.name, exc)

    async def _report(
        self,
        run: PodRun,
        *,
        running: bool,
        ready: bool = False,
        waiting: tuple[str, str] | None = None,
        exit_code: int | None = None,
        final: bool = False,
    ) -> None:
        container = run.spec["containers"][0]
        if running:
            state: dict[str, Any] = {"running": {"startedAt": run.process_started or now_iso()}}
        elif waiting is not None:
            state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        else:
            state = {
                "terminated": run.last_terminated
                or {
                    "exitCode": exit_code or 0,
                    "reason": "Completed" if not exit_code else "Error",
                    "startedAt": run.process_started or now_iso(),
                    "finishedAt": now_iso(),
                }
            }
        phase = "Running" if running or run.process_started else "Pending"
        if final:
            phase = "Succeeded" if exit_code == 0 else "Failed"
        condition = "True" if ready else "False"
        now = now_iso()
        status = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": run.ip,
            "podIPs": [{"ip": run.ip}],
            "startTime": run.started_at,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": run.started_at},
                {"type": "ContainersReady", "status": condition, "lastTransitionTime": now},
                {"type": "Ready", "status": condition, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "started": running,
                    "restartCount": run.restarts,
                    "state": state,
                    **(
                        {"lastState": {"terminated": run.last_terminated}}
                        if run.last_terminated is not None and "terminated" not in state
                        else {}
                    ),
                }
            ],
        }
        try:
            await self.api.patch_pod_status(run.namespace, run.name, status)
        except ApiError as exc:
            if exc.status != 404:
                raise


def _terminated(
    run: PodRun, container: dict[str, Any], code: int, log_path: Path
) -> dict[str, Any]:
    """A container's termination as the kubelet reports it, with its message: the file
    the container wrote, or (FallbackToLogsOnError, a failure) the end of its log."""
    message = ""
    with contextlib.suppress(OSError):
        message = run.termination_log.read_bytes()[:TERMINATION_MESSAGE_BYTES].decode(
            "utf-8", "replace"
        )
    fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    if not message and fallback and code != 0:
        with contextlib.suppress(OSError):
            lines = log_path.read_bytes().splitlines()[-80:]
            message = b"\n".join(lines)[-2048:].decode("utf-8", "replace")
    terminated: dict[str, Any] = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": run.process_started or now_iso(),
        "finishedAt": now_iso(),
    }
    if message:
        terminated["message"] = message
    return terminated


def _is_engine_pod(pod: dict[str, Any]) -> bool:
    """Fake mode fakes engines only: the operator's own pod (any other image) runs."""
    containers = pod["spec"].get("containers") or [{}]
    return image_repository(containers[0].get("image", "")) == "hean-engine"


def _sub_path(volume: Path, mount: dict[str, Any]) -> Path:
    """The directory a mount sees: the volume's, or its `subPath` (which the kubelet
    creates when missing, and refuses when absolute or with a '..' component)."""
    sub = str(mount.get("subPath") or "")
    if not sub:
        return volume
    if sub.startswith("/") or ".." in sub.split("/"):
        name = mount["name"]
        raise ValueError(f"volumeMounts {name!r}: subPath {sub!r} must be relative, no '..'")
    target = volume / sub
    target.mkdir(parents=True, exist_ok=True)
    return target


def _private(mount_path: str) -> bool:
    return any(mount_path == root or mount_path.startswith(root + "/") for root in PRIVATE_ROOTS)


def _bind_script(binds: dict[str, Path]) -> list[str]:
    """`sh -c` that gives the pod its own /run and bind-mounts each volume there,
    then execs the container's command (its arguments follow)."""
    steps = ["mount -t tmpfs -o mode=755 tmpfs /run"]
    for mount_path, local in sorted(binds.items()):
        target = "/run" + mount_path.removeprefix("/var/run").removeprefix("/run")
        steps.append(f"mkdir -p {shlex.quote(target)}")
        steps.append(f"mount --bind {shlex.quote(str(local))} {shlex.quote(target)}")
    steps.append('exec "$@"')
    return ["sh", "-c", " && ".join(steps), "container"]


def _items(data: dict[str, bytes], source: dict[str, Any], what: str) -> dict[str, bytes]:
    """As the kubelet: all keys, or only the listed ones at their paths (which may
    name subdirectories); a missing listed key fails unless the source is optional."""
    if not source.get("items"):
        return data
    files: dict[str, bytes] = {}
    for item in source["items"]:
        if item["key"] in data:
            files[item["path"]] = data[item["key"]]
        elif not source.get("optional"):
            raise ValueError(f"{what} has no key {item['key']!r}")
    return files


def _mode(volume: dict[str, Any]) -> int:
    return 0o600 if "secret" in volume or "projected" in volume else 0o644


def _rewrite(arg: str, mounts: dict[str, Path]) -> str:
    for mount_path, local in sorted(mounts.items(), key=lambda m: -len(m[0])):
        if arg == mount_path or arg.startswith(mount_path.rstrip("/") + "/"):
            return str(local) + arg[len(mount_path.rstrip("/")) :]
        # --flag=/mount/path/...
        head, sep, tail = arg.partition("=")
        if sep and (tail == mount_path or tail.startswith(mount_path.rstrip("/") + "/")):
            return head + "=" + str(local) + tail[len(mount_path.rstrip("/")) :]
    return arg


def _resolve(command: list[str], venv: Path | None = None) -> list[str]:
    """The image's own programs (`hean`, `kubectl-hean`: IMAGE_PROGRAMS) run as their
    modules with this interpreter's environment (or the image's virtual environment),
    so a venv needs no activation."""
    module = IMAGE_PROGRAMS.get(command[0]) if command else None
    if module is not None:
        python = str(venv / "bin" / "python") if venv is not None else sys.executable
        return [python, "-m", module, *command[1:]]
    return command


def _port(port: Any, container: dict[str, Any]) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for item in container.get("ports", []):
        if item.get("name") == port:
            return int(item["containerPort"])
    raise ValueError(f"no container port named {port!r}")


def _sync_files(target: Path, files: dict[str, bytes], mode: int, before: set[str]) -> set[str]:
    """Make `target` hold exactly `files` (of those this volume ever wrote): vanished
    files are removed first, then changed ones replaced atomically (a reader never sees
    half a file; the kubelet swaps the whole directory, this swaps file by file)."""
    for key in before - set(files):
        with contextlib.suppress(FileNotFoundError):
            (target / key).unlink()
    for key, content in files.items():
        path = target / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_bytes() == content:
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        tmp.chmod(mode)
        os.replace(tmp, path)
    return set(files)
