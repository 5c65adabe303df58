"""Operator convergence benchmark on a real control plane: N TradingEngines created at once.

For each N and each operator, a fresh control plane
(`hean_sandbox.controlplane.cluster.ControlPlane`: etcd, kube-apiserver with
x509 authentication and RBAC, controller manager and scheduler, built from the
pinned Go modules) with the API server's audit log on, and a node
(`hean_sandbox.up.Sandbox` with `fake_pods=True`: engine pods are reported
Running and Ready at once, KWOK-style, each with a stand-in engine API,
`hean_sandbox.kubelet.fake_engine`); the operator's own pod runs as a local
process (a fake node fakes engine pods only).

HEAN: `helm install` of charts/hean (the operator runs as a pod under its
ServiceAccount `system:serviceaccount:hean-system:hean`, `pollInterval` from
`--poll-interval`, by default the chart's own; engine pods request 1m CPU and
1Mi memory instead of the chart's 100m/128Mi, so that 1000 of them fit the one
node). N TradingEngines
(examples/sandbox-paper-engine.yaml, renamed; its history on a claim each, or
in PostgreSQL with `--storage postgres`) are POSTed concurrently by the admin,
and the script measures:

- time from the first create until every TradingEngine has
  `status.conditions[type=Ready].status == "True"`, seen on a watch of the
  API server (no polling);
- API writes per engine create by the operator, from the API server's audit
  log (ResponseComplete entries of the operator's user): creates, updates,
  patches and deletes of configmaps, secrets, services,
  persistentvolumeclaims, pods and the tradingengines main resource;
  `tradingengines/status` patches and Events apart; refused writes (409
  conflicts, 429 throttling, ...) by code. Counted through a settle period
  after convergence (`--settle`, default 1.5 poll intervals) to catch
  trailing writes;
- operator RSS (VmRSS of the operator process): idle (watching, zero engines)
  before the creates, after convergence, per engine; VmHWM; its CPU seconds
  (user + system) from the first create until convergence;
- where the time goes, per engine, from the audit log's timestamps: the
  benchmark's create -> the operator's first write on it -> its pod created ->
  the node's pod status patch (Running/Ready) -> the operator's status patch
  that made it Ready;
- where the machine's CPU goes while converging: the CPU seconds of etcd, the
  API server, the controller manager, the scheduler, the operator and this
  process (the node, the fake engines' APIs, the Ready watch), from
  /proc/PID/stat; with `--apiserver-profile S`, a CPU profile of the API server
  over the first S seconds after the first create (its /debug/pprof, saved as
  `apiserver.pprof` in the run's workdir) and, when `go` is on PATH, the
  profile's share of what the API server did: TradingEngine status patches,
  pod status patches, all patches, creates, watches, garbage collection.

Baseline, on a control plane of its own of the same kind: a bare kopf operator
(`benchmarks/baseline_kopf_operator.py`, same kopf, a local process) that
only creates one pod per TradingEngine; the CRD is applied from charts/hean/crds.
It talks to the API server as user `hean-baseline` (x509 client certificate
from the cluster's CA) bound to the `cluster-admin` ClusterRole: not in
`system:masters`, so API Priority and Fairness treats it as an ordinary
client, as it does HEAN's ServiceAccount. Its time is until all its pods are
Ready.

Targets (issue 13): HEAN time <= 2x the baseline's, no more writes per
create than the engine's children plus one (5 with the history's claim:
ConfigMap, Secret, claim, pod; 4 with `--storage postgres`), the idle
operator's RSS within 20 MiB of the bare kopf operator's.

    .venv/bin/python benchmarks/operator_convergence.py [--sizes 10,100,300,1000]
        [--poll-interval S] [--storage claim|postgres] [--apiserver-profile S]
        [--json out.json] [--workdir DIR]

Not pinned to a CPU: etcd, the API server, the controller manager, the
scheduler, the operator and this process (the node, the fake engines, the
watch) share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import yaml

from hean_sandbox.controlplane.build import Binaries, ensure_binaries
from hean_sandbox.controlplane.cluster import ControlPlane
from hean_sandbox.up import Sandbox, SandboxError, SandboxOptions

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sandbox-paper-engine.yaml"
CRD = ROOT / "charts" / "hean" / "crds" / "tradingengines.hean.io.yaml"
BASELINE = Path(__file__).resolve().with_name("baseline_kopf_operator.py")
NAMESPACE = "bench"
OPERATOR_NAMESPACE = "hean-system"
RELEASE = "hean"  # contains the chart's name, so the full name (and ServiceAccount) is "hean"
HEAN_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"
BASELINE_USER = "hean-baseline"
ADMIN_USER = "kubernetes-admin"
TE_PATH = f"/apis/hean.io/v1alpha1/namespaces/{NAMESPACE}/tradingengines"
POD_PATH = f"/api/v1/namespaces/{NAMESPACE}/pods"
NAME_WIDTH = len("bench-00000")  # children are named "<engine>-..."
# The kinds whose writes count as "writes per create" (the issue's figure).
CHILD_KINDS = (
    "configmaps",
    "secrets",
    "services",
    "persistentvolumeclaims",
    "pods",
    "tradingengines",
)
# Issue 13's criterion: Ready within 2x the baseline's time, no more writes per
# create than the engine's children plus one (4 children with the history claim:
# ConfigMap, Secret, claim, pod; 3 with PostgreSQL), the idle operator within
# 20 MiB of the bare kopf one.
TARGET_RATIO = 2.0
TARGET_RSS_IDLE_MIB = 20.0
# --storage postgres: the history in PostgreSQL (no claim), the Secret named here
# (fake engine pods read nothing from it).
POSTGRES_SECRET = "bench-history-db"


# The processes whose CPU seconds the report shows: the control plane's, the operator
# ("operator") and this process ("harness": the node, the fake engines' APIs, the
# Ready watch and the creates).
COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler")
# What `--apiserver-profile` reports: the API server's CPU in samples whose stack
# holds a function matching each of these (pprof's -focus: inclusive, so "all
# patches" holds both kinds of status patch; the custom resources' status patches
# are the TradingEngines', the only custom resources written while converging).
PROFILE_PARTS = {
    "TradingEngine status patches": r"customresource\.\(\*StatusREST\)\.Update",
    "pod status patches": r"pod/storage\.\(\*StatusREST\)\.Update",
    "all patches": r"handlers\.\(\*patcher\)\.patchResource",
    "creates": r"handlers\.CreateResource",
    "watches served": r"handlers\.\(\*WatchServer\)\.HandleHTTP",
    "etcd watch events decoded": r"etcd3\.\(\*watchChan\)",
    "garbage collection": r"runtime\.gcBgMarkWorker",
}


def target_writes(storage: str) -> float:
    return 5.0 if storage == "claim" else 4.0


# Engine pods ask the scheduler for almost nothing: 1000 of them on one node.
HELM_VALUES = {
    "engine": {"resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}},
}


@dataclass
class RunResult:
    operator: str  # "hean" or "baseline"
    engines: int
    seconds: float | None  # first create -> all Ready; None: timed out
    ready: int
    create_seconds: float  # until all N POSTs were answered
    ready_p50: float | None
    ready_max: float | None
    writes_per_create: float
    status_patches_per_engine: float
    status_patches_at_ready: float
    events_per_engine: float
    refused: dict[str, int] = field(default_factory=dict)  # "verb resource code" -> count
    writes: dict[str, int] = field(default_factory=dict)  # "verb resource" -> count (operator)
    node_writes: dict[str, int] = field(default_factory=dict)
    other_writes: dict[str, int] = field(default_factory=dict)  # controllers etc., "user: ..."
    # The operator's status patches by client: kopf's own, or the operator's API client.
    status_patch_agents: dict[str, int] = field(default_factory=dict)
    # Events in the namespace afterwards: "kind reason" -> count (each Event's count).
    event_reasons: dict[str, int] = field(default_factory=dict)
    # Median seconds of each step, per engine, from the audit log's timestamps.
    phases: dict[str, float] = field(default_factory=dict)
    # Writes per second through the API server (all users) while converging.
    apiserver_writes_per_s: float = 0.0
    rss_idle_kib: int = 0
    rss_kib: int = 0
    hwm_kib: int = 0
    rss_per_engine_kib: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    setup_seconds: float = 0.0
    # CPU seconds from the first create to convergence of each process of COMPONENTS,
    # the operator ("operator") and this one ("harness").
    cpu_by_process: dict[str, float] = field(default_factory=dict)
    # `--apiserver-profile`: seconds profiled, seconds sampled, and PROFILE_PARTS' seconds.
    apiserver_profile: dict[str, float] = field(default_factory=dict)


def _proc_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/{pid}/status")


def _cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_by_process(pids: dict[str, int]) -> dict[str, float]:
    return {name: _cpu_seconds(pid) for name, pid in pids.items()}


def _seconds(value: str) -> float:
    """A duration as pprof prints it: "1.25s", "340ms", "2.10mins", "0"."""
    units = (("mins", 60.0), ("hrs", 3600.0), ("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6))
    for unit, scale in (*units, ("ns", 1e-9), ("s", 1.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    return float(value)


def focused_seconds(top: str) -> tuple[float, float]:
    """(focused, total) CPU seconds from `go tool pprof -top -focus=...` text: its line
    "Showing nodes accounting for 2.55s, 20.63% of 12.36s total" (all nodes shown)."""
    for line in top.splitlines():
        if line.startswith("Showing nodes accounting for "):
            focused, _, rest = line.removeprefix("Showing nodes accounting for ").partition(",")
            total = rest.split(" of ", 1)[1].split()[0]
            return _seconds(focused), _seconds(total)
    raise ValueError("no 'Showing nodes accounting for' line in pprof's output")


def _summarise_profile(path: Path) -> dict[str, float]:
    """PROFILE_PARTS' seconds and the profile's CPU seconds ("sampled"), through `go
    tool pprof` (nothing without Go on PATH, or for a profile it cannot read)."""
    go = shutil.which("go")
    if go is None:
        return {}
    parts: dict[str, float] = {}
    # Every node, however small: the focused samples are the nodes' sum.
    top_args = [go, "tool", "pprof", "-top", "-nodecount=0", "-nodefraction=0"]
    for part, pattern in PROFILE_PARTS.items():
        top = subprocess.run(
            [*top_args, f"-focus={pattern}", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            parts[part], parts["sampled"] = focused_seconds(top.stdout)
        except ValueError:
            return {}
    return parts


def _python_process(pid: int) -> int:
    """`pid` if it runs Python, else its first Python descendant (an `unshare`/`sh` prefix)."""
    todo = [pid]
    while todo:
        current = todo.pop(0)
        with contextlib.suppress(OSError):
            argv0 = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")[0]
            if b"python" in Path(argv0.decode()).name.encode() or b"hean" in argv0:
                return current
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    raise RuntimeError(f"no Python process at or under pid {pid}")


def _ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _manifests(n: int, storage: str = "claim") -> list[dict[str, Any]]:
    template = yaml.safe_load(EXAMPLE.read_text())
    if storage == "postgres":
        template["spec"]["storage"] = {"postgres": {"secretName": POSTGRES_SECRET}}
    out = []
    for i in range(n):
        manifest = copy.deepcopy(template)
        manifest["metadata"] = {"name": f"bench-{i:05d}", "namespace": NAMESPACE}
        out.append(manifest)
    return out


class Api:
    """The benchmark's own admin client (aiohttp, the cluster's CA and admin certificate)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.url = cp.url
        self.ssl: ssl.SSLContext = cp.ssl_context()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, ssl=self.ssl),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )

    async def close(self) -> None:
        await self.session.close()

    async def get_bytes(self, path: str) -> bytes:
        async with self.session.get(self.url + path) as response:
            response.raise_for_status()
            return await response.read()

    async def get(self, path: str) -> Any:
        async with self.session.get(self.url + path) as response:
            response.raise_for_status()
            if response.content_type == "application/json":
                return await response.json()
            return await response.text()

    async def create_all(self, path: str, manifests: list[dict[str, Any]]) -> None:
        async def one(manifest: dict[str, Any]) -> None:
            async with self.session.post(self.url + path, json=manifest) as response:
                if response.status != 201:
                    text = await response.text()
                    raise RuntimeError(f"create answered {response.status}: {text}")

        await asyncio.gather(*(one(m) for m in manifests))

    async def event_reasons(self, namespace: str) -> Counter[str]:
        listing = await self.get(f"/api/v1/namespaces/{namespace}/events")
        reasons: Counter[str] = Counter()
        for event in listing["items"]:
            count = event.get("count") or (event.get("series") or {}).get("count") or 1
            reasons[f"{event['involvedObject']['kind']} {event.get('reason')}"] += count
        return reasons

    async def watchers(self, resource: str) -> int:
        """Open watches of `resource`, from the API server's own metrics."""
        text = await self.get("/metrics")
        total = 0
        for line in text.splitlines():
            if (
                line.startswith("apiserver_longrunning_requests{")
                and f'resource="{resource}"' in line
                and 'verb="WATCH"' in line
            ):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total


class ReadyWatch:
    """A watch (list, then watch from its resourceVersion) noting when each object is Ready."""

    def __init__(self, api: Api, path: str, names: set[str], selector: str = "") -> None:
        self.api = api
        self.path = path
        self.names = names
        self.selector = selector
        self.t0 = 0.0
        self.ready_at: dict[str, float] = {}
        self.done = asyncio.Event()
        self.watching = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _see(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name in self.names and name not in self.ready_at and _ready(obj):
            self.ready_at[name] = time.perf_counter()
            if len(self.ready_at) == len(self.names):
                self.done.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        waiter = asyncio.create_task(self.watching.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            waiter.cancel()
            self._task.result()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        query = f"labelSelector={self.selector}&" if self.selector else ""
        listing = await self.api.get(f"{self.path}?{query}")
        version = listing["metadata"]["resourceVersion"]
        for item in listing["items"]:
            self._see(item)
        while True:
            url = (
                f"{self.api.url}{self.path}?{query}watch=1&allowWatchBookmarks=true"
                f"&resourceVersion={version}&timeoutSeconds=3600"
            )
            async with self.api.session.get(url) as response:
                response.raise_for_status()
                self.watching.set()
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        raise RuntimeError(f"watch of {self.path} failed: {obj}")
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._see(obj)


# -- the audit log -------------------------------------------------------------


@dataclass
class Write:
    user: str
    verb: str
    resource: str  # "pods", "tradingengines/status", ...
    name: str
    code: int
    at: float  # stageTimestamp, seconds since the epoch
    agent: str = ""  # the user agent's product, e.g. "kopf"


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def read_audit(path: Path, since: float) -> list[Write]:
    """The API server's completed writes from `since` (epoch seconds) on."""
    writes = []
    with path.open() as lines:
        for line in lines:
            entry = json.loads(line)
            if entry.get("stage") != "ResponseComplete":
                continue
            at = _epoch(entry["stageTimestamp"])
            if _epoch(entry["requestReceivedTimestamp"]) < since:
                continue
            ref = entry.get("objectRef") or {}
            resource = ref.get("resource", "?")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            writes.append(
                Write(
                    user=entry["user"]["username"],
                    verb=entry["verb"],
                    resource=resource,
                    name=ref.get("name", ""),
                    code=int((entry.get("responseStatus") or {}).get("code", 0)),
                    at=at,
                    agent=entry.get("userAgent", "").split("/", 1)[0],
                )
            )
    return writes


def _ok(write: Write) -> bool:
    return 200 <= write.code < 300


def phases(
    writes: list[Write], operator_user: str, node_user: str, ready: dict[str, float]
) -> dict[str, float]:
    """Median seconds per engine of each step between the audit log's writes; `ready`:
    when the watch saw each engine (or the baseline's pod) Ready, epoch seconds."""
    created: dict[str, float] = {}
    first_write: dict[str, float] = {}
    pod_created: dict[str, float] = {}
    pod_ready: dict[str, float] = {}
    became_ready = {name[:NAME_WIDTH]: at for name, at in ready.items()}
    for w in sorted(writes, key=lambda w: w.at):
        if not _ok(w):
            continue
        engine = w.name[:NAME_WIDTH]
        if w.user == ADMIN_USER and w.verb == "create" and w.resource == "tradingengines":
            created[engine] = w.at
        elif w.user == operator_user and w.resource != "events":
            first_write.setdefault(engine, w.at)
            if w.verb == "create" and w.resource == "pods":
                pod_created[engine] = w.at
        elif w.user == node_user and w.resource == "pods/status":
            pod_ready.setdefault(engine, w.at)

    def median(later: dict[str, float], earlier: dict[str, float]) -> float:
        gaps = [later[k] - earlier[k] for k in later if k in earlier]
        return round(statistics.median(gaps), 3) if gaps else float("nan")

    out = {
        "create -> operator's first write": median(first_write, created),
        "first write -> pod created": median(pod_created, first_write),
        "pod created -> node reports it Ready": median(pod_ready, pod_created),
    }
    if operator_user == HEAN_USER:
        out["pod Ready -> engine Ready (watch)"] = median(became_ready, pod_ready)
    if created:
        out["creates spread (first -> last create)"] = round(
            max(created.values()) - min(created.values()), 3
        )
    return out


def classify(
    writes: list[Write], operator_user: str, node_user: str
) -> tuple[Counter[str], Counter[str], Counter[str], Counter[str]]:
    """(operator's writes, its refused writes by code, the node's, everyone else's)."""
    operator: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    node: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for w in writes:
        label = f"{w.verb} {w.resource}"
        if w.user == operator_user:
            if _ok(w):
                operator[label] += 1
            else:
                refused[f"{label} {w.code}"] += 1
        elif w.user == node_user:
            node[label if _ok(w) else f"{label} {w.code}"] += 1
        elif w.user != ADMIN_USER:
            other[f"{w.user}: {label}" + ("" if _ok(w) else f" {w.code}")] += 1
    return operator, refused, node, other


# -- one run ---------------------------------------------------------------------


async def _start_baseline(
    cp: ControlPlane, workdir: Path
) -> tuple[asyncio.subprocess.Process, IO[bytes]]:
    pair = cp.issue_client("hean-baseline", BASELINE_USER)
    cp.request(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "hean-baseline"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": BASELINE_USER}
            ],
        },
    )
    kubeconfig = cp.write_kubeconfig(workdir / "baseline.kubeconfig", pair, user=BASELINE_USER)
    log = (workdir / "baseline.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BASELINE),
        "--kubeconfig",
        str(kubeconfig),
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    return process, log


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def _wait_for_watch(api: Api, resource: str, within: float) -> None:
    deadline = time.monotonic() + within
    while await api.watchers(resource) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no watch of {resource} on the API server within {within:.0f} s")
        await asyncio.sleep(0.5)


async def _wait_established(box: Sandbox) -> None:
    """`kubectl wait` for the CRD; it errs while the new CRD has no conditions yet."""
    for attempt in range(10):
        try:
            await box.kubectl("wait", "--for=condition=Established", "crd/tradingengines.hean.io")
            return
        except SandboxError:
            if attempt == 9:
                raise
            await asyncio.sleep(0.5)


async def run_one(
    which: str,
    n: int,
    poll_interval: float,
    settle: float,
    within: float,
    workdir: Path,
    binaries: Binaries,
    storage: str = "claim",
    profile_seconds: int = 0,
) -> RunResult:
    started = time.perf_counter()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    cp = ControlPlane(binaries, workdir / "cluster", audit=True, profiling=profile_seconds > 0)
    await asyncio.to_thread(cp.start)
    box = Sandbox(
        SandboxOptions(
            kubeconfig=workdir / "kubeconfig",
            workdir=workdir / "sandbox",
            fake_pods=True,
            operator=False,  # installed below, once the node runs operator pods for real
            namespace=NAMESPACE,
            operator_namespace=OPERATOR_NAMESPACE,
            release=RELEASE,
            poll_interval=poll_interval,
            values=HELM_VALUES,
            control_plane=cp,
        )
    )
    api = Api(cp)
    baseline: asyncio.subprocess.Process | None = None
    baseline_log: IO[bytes] | None = None
    try:
        await box.start()
        assert box.node is not None
        node_user = f"system:node:{box.node_name}"
        if which == "hean":
            await box.install()
            pod = await box.operator_pod()
            assert pod is not None
            run = box.node.pods[pod["metadata"]["uid"]]
            assert run.process is not None, "the operator's pod has no process"
            pid = _python_process(run.process.pid)
            operator_user = HEAN_USER
        else:
            await box.kubectl("apply", "--server-side", "-f", str(CRD))
            await _wait_established(box)
            baseline, baseline_log = await _start_baseline(cp, workdir)
            pid = baseline.pid
            operator_user = BASELINE_USER
        pids = {c.name: c.process.pid for c in cp.components if c.name in COMPONENTS}
        pids |= {"operator": pid, "harness": os.getpid()}
        await _wait_for_watch(api, "tradingengines", 120)
        await asyncio.sleep(2.0)  # let the idle operator settle before the idle RSS
        rss_idle = _proc_kib(pid, "VmRSS")

        manifests = _manifests(n, storage)
        names = {m["metadata"]["name"] for m in manifests}
        if which == "hean":
            watch = ReadyWatch(api, TE_PATH, names)
        else:
            watch = ReadyWatch(
                api,
                POD_PATH,
                {f"{name}-engine" for name in names},
                "app.kubernetes.io/name=baseline",
            )
        await watch.start()
        setup_seconds = time.perf_counter() - started
        load_before = os.getloadavg()
        since = time.time()
        cpu_before = _cpu_by_process(pids)
        profile: asyncio.Task[bytes] | None = None
        if profile_seconds > 0:
            profile = asyncio.create_task(
                api.get_bytes(f"/debug/pprof/profile?seconds={profile_seconds}")
            )
        watch.t0 = time.perf_counter()
        await api.create_all(TE_PATH, manifests)
        create_seconds = time.perf_counter() - watch.t0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch.done.wait(), within)
        converged = watch.done.is_set()
        seconds = max(watch.ready_at.values()) - watch.t0 if converged else None
        cpu_after = _cpu_by_process(pids)
        cpu_by_process = {name: cpu_after[name] - cpu_before[name] for name in pids}
        rss = _proc_kib(pid, "VmRSS")
        hwm = _proc_kib(pid, "VmHWM")
        load_after = os.getloadavg()
        until = time.time()
        await watch.stop()
        profiled: dict[str, float] = {}
        if profile is not None:
            pprof = workdir / "apiserver.pprof"
            await asyncio.to_thread(pprof.write_bytes, await profile)
            profiled = {"profiled": float(profile_seconds)}
            profiled |= await asyncio.to_thread(_summarise_profile, pprof)
        await asyncio.sleep(settle)  # trailing writes (annotations, a last status patch)
        await asyncio.sleep(1.0)  # the audit log's buffered backend flushes
        writes = await asyncio.to_thread(read_audit, cp.audit_log_path, since)
        reasons = await api.event_reasons(NAMESPACE)
        agents = Counter(
            w.agent
            for w in writes
            if w.user == operator_user and w.resource == "tradingengines/status" and _ok(w)
        )
        at_ready, _, _, _ = classify([w for w in writes if w.at <= until], operator_user, node_user)
        operator_writes, refused, node_writes, other = classify(writes, operator_user, node_user)
        converging = [w for w in writes if w.at <= until]
        times = sorted(t - watch.t0 for t in watch.ready_at.values())
        child_writes = sum(
            count
            for label, count in operator_writes.items()
            if label.split(" ", 1)[1] in CHILD_KINDS
        )
        return RunResult(
            operator=which,
            engines=n,
            seconds=seconds,
            ready=len(watch.ready_at),
            create_seconds=create_seconds,
            ready_p50=statistics.median(times) if times else None,
            ready_max=times[-1] if times else None,
            writes_per_create=child_writes / n,
            status_patches_per_engine=operator_writes["patch tradingengines/status"] / n,
            status_patches_at_ready=at_ready["patch tradingengines/status"] / n,
            events_per_engine=operator_writes["create events"] / n,
            refused=dict(sorted(refused.items())),
            status_patch_agents=dict(agents.most_common()),
            event_reasons=dict(reasons.most_common()),
            writes=dict(sorted(operator_writes.items())),
            node_writes=dict(sorted(node_writes.items())),
            other_writes=dict(other.most_common()),
            phases=phases(
                writes,
                operator_user,
                node_user,
                {name: since + (at - watch.t0) for name, at in watch.ready_at.items()},
            ),
            apiserver_writes_per_s=len(converging) / (until - since) if until > since else 0.0,
            rss_idle_kib=rss_idle,
            rss_kib=rss,
            hwm_kib=hwm,
            rss_per_engine_kib=(rss - rss_idle) / n,
            load_before=load_before,
            load_after=load_after,
            setup_seconds=setup_seconds,
            cpu_by_process=cpu_by_process,
            apiserver_profile=profiled,
        )
    finally:
        if baseline is not None:
            await _stop_process(baseline)
        if baseline_log is not None:
            baseline_log.close()
        await api.close()
        # The cluster goes with the run: no deleting engines or `helm uninstall` first
        # (the sandbox does that only on a cluster it shares).
        box._owns_control_plane = True
        await box.stop()
        await asyncio.to_thread(cp.stop)


# -- the report ------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "timeout" if value is None else format(value, spec)


def _per(counts: dict[str, int], n: int) -> str:
    return ", ".join(f"{label} {count / n:g}" for label, count in counts.items()) or "none"


def report(
    pairs: list[tuple[RunResult, RunResult]], poll_interval: float, storage: str = "claim"
) -> str:
    lines = [
        f"poll interval {poll_interval:g} s; history: {storage}; writes = the operator's "
        "creates/updates/patches/deletes of configmaps, secrets, services, "
        "persistentvolumeclaims, pods, tradingengines (status patches and Events apart), "
        "from the API server's audit log",
        "",
        f"| N | HEAN s | baseline s | ratio (<= {TARGET_RATIO:g}) | "
        f"writes/create (<= {target_writes(storage):g}) | "
        "status patches/engine | Events/engine | refused writes | "
        f"idle RSS MiB HEAN - baseline (<= {TARGET_RSS_IDLE_MIB:g}) | RSS KiB/engine | "
        "baseline writes/create | baseline RSS KiB/engine |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for hean, base in pairs:
        ratio = hean.seconds / base.seconds if hean.seconds and base.seconds else None
        ok_ratio = "met" if ratio is not None and ratio <= TARGET_RATIO else "missed"
        ok_writes = "met" if hean.writes_per_create <= target_writes(storage) else "missed"
        idle_mib = (hean.rss_idle_kib - base.rss_idle_kib) / 1024
        ok_rss = "met" if idle_mib <= TARGET_RSS_IDLE_MIB else "missed"
        lines.append(
            f"| {hean.engines} | {_fmt(hean.seconds)} | {_fmt(base.seconds)} | "
            f"{_fmt(ratio)} ({ok_ratio}) | {hean.writes_per_create:.2f} ({ok_writes}) | "
            f"{hean.status_patches_per_engine:.2f} | {hean.events_per_engine:.2f} | "
            f"{sum(hean.refused.values())} | {idle_mib:.1f} ({ok_rss}) | "
            f"{hean.rss_per_engine_kib:.1f} | {base.writes_per_create:.2f} | "
            f"{base.rss_per_engine_kib:.1f} |"
        )
    lines.append("")
    for hean, base in pairs:
        for run in (hean, base):
            lines.append(
                f"{run.operator} N={run.engines}: ready {run.ready}/{run.engines}, "
                f"creates answered in {run.create_seconds:.2f} s, "
                f"Ready p50 {_fmt(run.ready_p50)} s max {_fmt(run.ready_max)} s, "
                f"RSS idle {run.rss_idle_kib / 1024:.1f} MiB -> {run.rss_kib / 1024:.1f} MiB "
                f"(peak {run.hwm_kib / 1024:.1f} MiB), "
                f"API server {run.apiserver_writes_per_s:.0f} writes/s, "
                f"operator CPU {run.cpu_by_process.get('operator', 0.0):.2f} s, "
                f"load {run.load_before[0]:.2f} -> {run.load_after[0]:.2f}"
            )
            lines.append(f"    operator writes per engine: {_per(run.writes, run.engines)}")
            lines.append(f"    refused: {_per(run.refused, run.engines)}")
            agents = _per(run.status_patch_agents, run.engines)
            lines.append(f"    status patches per engine by client: {agents}")
            reasons = dict(list(run.event_reasons.items())[:6])
            lines.append(f"    Events per engine by reason: {_per(reasons, run.engines)}")
            lines.append(f"    node writes per engine: {_per(run.node_writes, run.engines)}")
            others = dict(list(run.other_writes.items())[:6])
            lines.append(f"    others per engine: {_per(others, run.engines)}")
            steps = ", ".join(f"{k} {v:g} s" for k, v in run.phases.items())
            lines.append(f"    medians: {steps}")
            if run.cpu_by_process and run.seconds:
                cpu = ", ".join(f"{k} {v:.2f}" for k, v in run.cpu_by_process.items())
                total = sum(run.cpu_by_process.values())
                lines.append(
                    f"    CPU s while converging: {cpu}; total {total:.2f} in "
                    f"{run.seconds:.2f} s on {os.cpu_count()} CPUs"
                )
            if run.apiserver_profile.get("sampled"):
                sampled = run.apiserver_profile["sampled"]
                parts = ", ".join(
                    f"{part} {run.apiserver_profile[part]:.2f} s "
                    f"({100 * run.apiserver_profile[part] / sampled:.0f}%)"
                    for part in PROFILE_PARTS
                    if part in run.apiserver_profile
                )
                lines.append(
                    f"    API server profile, first {run.apiserver_profile['profiled']:g} s: "
                    f"{sampled:.2f} CPU s sampled; {parts}"
                )
    return "\n".join(lines)


async def measure(args: argparse.Namespace, settle: float) -> list[tuple[RunResult, RunResult]]:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    binaries = await asyncio.to_thread(ensure_binaries, lambda line: print(line, file=sys.stderr))
    pairs: list[tuple[RunResult, RunResult]] = []
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            root = Path(args.workdir)
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hean-conv-")))
        for n in sizes:
            results = []
            for which in ("hean", "baseline"):
                workdir = root / f"{which}-{n}"
                shutil.rmtree(workdir, ignore_errors=True)
                result = await run_one(
                    which,
                    n,
                    args.poll_interval,
                    settle,
                    args.timeout,
                    workdir,
                    binaries,
                    args.storage,
                    args.apiserver_profile,
                )
                print(
                    f"{which:8} N={n:5}: {_fmt(result.seconds)} s, "
                    f"{result.writes_per_create:.2f} writes/create, "
                    f"{result.rss_per_engine_kib:.1f} KiB/engine, "
                    f"refused {sum(result.refused.values())}, "
                    f"load {result.load_before[0]:.2f} -> {result.load_after[0]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
                results.append(result)
                if args.json:
                    _write_json(args, settle, binaries, [*pairs, (results[0], results[-1])])
            pairs.append((results[0], results[1]))
    return pairs


def _write_json(
    args: argparse.Namespace,
    settle: float,
    binaries: Binaries,
    pairs: list[tuple[RunResult, RunResult]],
) -> None:
    runs = []
    for pair in pairs:
        for r in pair:
            if asdict(r) not in runs:
                runs.append(asdict(r))
    payload = {
        "poll_interval": args.poll_interval,
        "storage": args.storage,
        "settle": settle,
        "kubernetes": binaries.pins.kubernetes,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "targets": {
            "ratio": TARGET_RATIO,
            "writes_per_create": target_writes(args.storage),
            "rss_idle_mib_above_baseline": TARGET_RSS_IDLE_MIB,
        },
        "runs": runs,
    }
    Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,300,1000", help="comma-separated engine counts")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=float(
            yaml.safe_load((ROOT / "charts/hean/values.yaml").read_text())["pollInterval"]
        ),
        help="the operator's, seconds (default: the chart's, %(default)g)",
    )
    parser.add_argument(
        "--settle", type=float, default=None, help="seconds to count trailing writes"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument(
        "--storage",
        choices=("claim", "postgres"),
        default="claim",
        help="the engines' history: a PersistentVolumeClaim each (the default spec) or "
        "PostgreSQL (no claim)",
    )
    parser.add_argument(
        "--apiserver-profile",
        type=int,
        default=0,
        metavar="S",
        help="profile the API server's CPU for S seconds from the first create (0: off)",
    )
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--workdir", default=None, help="keep clusters, audit logs and logs here")
    args = parser.parse_args()
    settle = args.settle if args.settle is not None else 1.5 * args.poll_interval
    pairs = asyncio.run(measure(args, settle))
    print(report(pairs, args.poll_interval, args.storage))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
