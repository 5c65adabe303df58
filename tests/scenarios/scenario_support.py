"""Scenario tests' helpers: the real operator, driven with kubectl.

Every scenario runs against two backends:
- `sandbox` (always): the session's real control plane (tests/cluster_support.py:
  etcd, kube-apiserver, kube-controller-manager, kube-scheduler built from the
  pinned Go modules) and, per test, what `hean sandbox up` adds to it: a
  namespace, a node of its own (engine pods are real `hean engine run`
  processes on loopback IPs), the exchange simulator replaying recorded
  candles, and HEAN installed with the real `helm install` of the chart, so
  the operator runs as a pod under the chart's ServiceAccount and RBAC;
- `kind` (users with Docker): the current kubectl context when it is a kind
  cluster (`kind-*`) with HEAN installed (`make kind-up`); skipped otherwise.
  Engines there use the exchange at $HEAN_E2E_EXCHANGE_URL, or the real one.
Tests only talk kubectl, so both backends run the same scenario code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cluster_support import engine_manifest, shared_control_plane, unique
from engine_support import BTCUSD_CANDLES, head_lines, require_shared_file, write_lines
from hean_sandbox.up import ExchangeSimOptions, Sandbox, SandboxOptions
from hean_sim.exchange.config import ApiKey

WAIT = "90s"  # kubectl wait timeouts: generous for a loaded CI machine
KIND_OPERATOR_NAMESPACE = os.environ.get("HEAN_E2E_OPERATOR_NAMESPACE", "hean-system")
KIND_OPERATOR_SELECTOR = "app.kubernetes.io/name=hean,app.kubernetes.io/component=operator"


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


PodEvent = tuple[str, str, str, str]  # (ADDED|DELETED, name, uid, hean.io/engine label)


@dataclass
class Scenario:
    backend: str
    kubeconfig: Path | None
    namespace: str
    exchange_url: str | None
    restart_operator: Callable[[], Awaitable[None]]
    operator_log: Callable[[], Awaitable[str]]
    box: Sandbox | None = None
    # The LiveApproval trust ConfigMap the operator reads (its name and namespace).
    trust_configmap: str = "hean-liveapproval-trust"
    trust_namespace: str = "default"
    kubectl_binary: str = "kubectl"
    pod_events: list[PodEvent] = field(default_factory=list)
    pod_changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def _base(self) -> list[str]:
        base = [self.kubectl_binary]
        if self.kubeconfig is not None:
            base += ["--kubeconfig", str(self.kubeconfig)]
        return base

    async def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, namespaced: bool = True
    ) -> KubectlResult:
        ns = ["-n", self.namespace] if namespaced else []
        process = await asyncio.create_subprocess_exec(
            *self._base(),
            *ns,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(stdin.encode() if stdin is not None else None), 180
            )
        finally:
            if process.returncode is None:  # timed out or cancelled: reap it here
                process.kill()
                await process.wait()
        result = KubectlResult(process.returncode or 0, out.decode(), err.decode())
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    async def apply(self, manifest: dict[str, Any], *, check: bool = True) -> KubectlResult:
        return await self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=check)

    async def get(self, kind: str, name: str) -> dict[str, Any]:
        return dict((await self.kubectl("get", kind, name, "-o", "json")).json())

    async def wait(self, target: str, condition: str, limit: str = WAIT) -> None:
        try:
            await self.kubectl("wait", f"--for={condition}", target, f"--timeout={limit}")
        except AssertionError as exc:
            # What a person would look at: the object, the pods and the operator's log.
            seen = await self.kubectl("get", "pods", "-o", "wide", check=False)
            detail = await self.kubectl("get", target, "-o", "yaml", check=False)
            log = "\n".join((await self.operator_log()).splitlines()[-40:])
            pods = ""
            if self.box is not None:
                for path in sorted((self.box.pods_dir / self.namespace).glob("*/logs/*.log")):
                    tail = "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                    pods += f"\n{path.parent.parent.name}:\n{tail}"
            raise AssertionError(
                f"{exc}\n{seen.stdout}{seen.stderr}\n{detail.stdout}\noperator log:\n{log}"
                f"\npod logs:{pods}"
            ) from None

    async def until_pods(self, predicate: Callable[[list[PodEvent]], bool]) -> None:
        """Wait (on the watch, not a timer) until the recorded pod events satisfy `predicate`."""
        async with self.pod_changed:
            await asyncio.wait_for(
                self.pod_changed.wait_for(lambda: predicate(self.pod_events)), 90
            )

    def engine(self, name: str, **spec_overrides: Any) -> dict[str, Any]:
        return engine_manifest(name, self.exchange_url, self.namespace, **spec_overrides)


async def _record_pods(scenario: Scenario, started: asyncio.Event) -> None:
    """Every pod ADDED/DELETED in the namespace, from `kubectl get pods --watch`."""
    # the engine label too: pods are counted per engine, whatever their names
    template = (
        "{.type}|{.object.metadata.name}|{.object.metadata.uid}"
        '|{.object.metadata.labels.hean\\.io/engine}{"\\n"}'
    )
    process = await asyncio.create_subprocess_exec(
        *scenario._base(),
        "-n",
        scenario.namespace,
        "get",
        "pods",
        "--watch",
        "--output-watch-events",
        "-o",
        f"jsonpath={template}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    started.set()
    try:
        while line := await process.stdout.readline():
            kind, name, uid, engine = line.decode().rstrip("\n").split("|")
            if kind in ("ADDED", "DELETED"):
                async with scenario.pod_changed:
                    scenario.pod_events.append((kind, name, uid, engine))
                    scenario.pod_changed.notify_all()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop_recording(recorder: asyncio.Task[None]) -> None:
    """Cancel the pod watch and wait for its kubectl to be reaped (before the loop closes)."""
    recorder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await recorder


async def start_recording(scenario: Scenario) -> asyncio.Task[None]:
    started = asyncio.Event()
    recorder = asyncio.create_task(_record_pods(scenario, started))
    await started.wait()
    # kubectl lists before it watches and reports what it lists as ADDED, so a pod
    # created before its watch connects is still recorded, in order
    return recorder


async def make_sandbox_scenario(
    tmp_path: Path,
    *,
    fake_pods: bool = False,
    exchange: bool = True,
    poll: float = 1.0,
    values: Mapping[str, Any] | None = None,
    watch_namespaces: Sequence[str] | None = None,
    accounts: Sequence[ApiKey] = (),
    balances: Mapping[str, Decimal] | None = None,
    image_venvs: Mapping[str, Path] | None = None,
) -> tuple[Scenario, asyncio.Task[None]]:
    """A sandbox on the session's control plane: a fresh namespace, a node of its own
    and a Helm release of the chart in that namespace, watching it (or
    `watch_namespaces`); `values` are more Helm values. `accounts`: API key pairs
    the exchange simulator holds (for live engines), each with `balances` (None:
    the simulator's default). `image_venvs`: users' images the node plays with
    virtual environments (allowed in the chart too)."""
    sim = None
    if exchange:
        data = write_lines(
            tmp_path / "candles.csv", head_lines(require_shared_file(BTCUSD_CANDLES), 3000)
        )
        sim = ExchangeSimOptions(data=data, port=0, speed=60.0, keys=accounts, balances=balances)
    cluster = await asyncio.to_thread(shared_control_plane)
    namespace = unique("t")
    release = unique("hean")
    options = SandboxOptions(
        kubeconfig=tmp_path / "kubeconfig",
        workdir=tmp_path / "sandbox",
        fake_pods=fake_pods,
        namespace=namespace,
        operator_namespace=namespace,
        release=release,
        watch_namespaces=watch_namespaces,
        poll_interval=poll,
        values=values or {},
        exchange_sim=sim,
        control_plane=cluster,
        image_venvs=image_venvs or {},
    )
    box = Sandbox(options)
    try:
        await box.start()
    except BaseException:
        await box.stop()
        raise

    async def restart() -> None:
        await box.restart_operator(kill=True)

    async def log() -> str:
        return box.operator_logs()

    scenario = Scenario(
        backend="sandbox",
        kubeconfig=options.kubeconfig,
        namespace=namespace,
        exchange_url=box.exchange.url if box.exchange is not None else None,
        restart_operator=restart,
        operator_log=log,
        box=box,
        trust_configmap=f"{release}-liveapproval-trust",
        trust_namespace=namespace,
        kubectl_binary=str(box.kubectl_path),
    )
    return scenario, await start_recording(scenario)


def kind_cluster_ready() -> str | None:
    """Why the kind backend is unavailable, or None when it can run."""
    try:
        context = subprocess.run(
            ["kubectl", "config", "current-context"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "kubectl is not usable"
    if not context.startswith("kind-"):
        return "no kind cluster is the current kubectl context (kind create cluster)"
    probe = subprocess.run(
        ["kubectl", "get", "crd", "tradingengines.hean.io", "--request-timeout=5s"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"HEAN is not installed in {context} (make kind-up): {probe.stderr.strip()[:200]}"
    return None


async def make_kind_scenario() -> tuple[Scenario, asyncio.Task[None]]:
    namespace = f"hean-e2e-{uuid.uuid4().hex[:8]}"

    async def operator_kubectl(*args: str) -> KubectlResult:
        return await scenario.kubectl("-n", KIND_OPERATOR_NAMESPACE, *args, namespaced=False)

    async def restart() -> None:
        await operator_kubectl(
            "delete", "pod", "-l", KIND_OPERATOR_SELECTOR, "--grace-period=0", "--force"
        )
        await operator_kubectl(
            "wait",
            "--for=condition=Ready",
            "pod",
            "-l",
            KIND_OPERATOR_SELECTOR,
            f"--timeout={WAIT}",
        )

    async def log() -> str:
        return (await operator_kubectl("logs", "-l", KIND_OPERATOR_SELECTOR, "--tail=-1")).stdout

    scenario = Scenario(
        backend="kind",
        kubeconfig=None,
        namespace=namespace,
        exchange_url=os.environ.get("HEAN_E2E_EXCHANGE_URL"),
        restart_operator=restart,
        operator_log=log,
        trust_namespace=KIND_OPERATOR_NAMESPACE,
    )
    await scenario.kubectl("create", "namespace", namespace, namespaced=False)
    return scenario, await start_recording(scenario)


def engine_pod_uids(events: list[PodEvent], engine: str) -> set[str]:
    """Uids of the engine's pods that exist after `events` (by the engine label)."""
    alive: set[str] = set()
    for kind, _, uid, owner in events:
        if owner == engine:
            (alive.add if kind == "ADDED" else alive.discard)(uid)
    return alive


def max_concurrent_pods(events: list[PodEvent], engine: str) -> int:
    """The most pods of one engine that existed at once, whatever their names."""
    return max(
        (len(engine_pod_uids(events[: i + 1], engine)) for i in range(len(events))), default=0
    )


def added(uid: str) -> Callable[[list[PodEvent]], bool]:
    return lambda events: any(e[0] == "ADDED" and e[2] == uid for e in events)


def deleted(uid: str) -> Callable[[list[PodEvent]], bool]:
    return lambda events: any(e[0] == "DELETED" and e[2] == uid for e in events)


# Live engines in the sandbox: the simulator's account, its credentials Secret, the
# operator's trust ConfigMap and the engine's manifest, as every live scenario sets
# them up (each scenario then approves, revokes or kills as it needs).
SIM_KEYS = "sim-keys"  # the engines' credentials Secret


@contextlib.asynccontextmanager
async def sandbox_with_account(tmp_path: Path, key: ApiKey) -> AsyncIterator[Scenario]:
    """A sandbox whose exchange simulator holds `key`'s account: 10,000 USDT, no BTC."""
    scenario, recorder = await make_sandbox_scenario(
        tmp_path,
        poll=1.0,
        accounts=[key],
        balances={"USDT": Decimal(10_000), "BTC": Decimal(0)},
    )
    try:
        yield scenario
    finally:
        await stop_recording(recorder)
        assert scenario.box is not None
        await scenario.box.stop()


def public_pem(key: Ed25519PrivateKey) -> str:
    """A signer's public key as the trust ConfigMap holds it (SubjectPublicKeyInfo PEM)."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def trust_configmap(
    scenario: Scenario, signers: Mapping[str, Ed25519PrivateKey], policy: Mapping[str, Any]
) -> dict[str, Any]:
    """The trust ConfigMap that the chart made and the operator reads: KEY_ID.pub each."""
    data = {f"{key_id}.pub": public_pem(key) for key_id, key in signers.items()}
    data["policy.yaml"] = yaml.safe_dump(dict(policy))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": scenario.trust_configmap},
        "data": data,
    }


def credentials_secret(key: ApiKey, name: str = SIM_KEYS) -> dict[str, Any]:
    """The engine's exchange credentials Secret for the simulator's account `key`."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": {"apiKey": b64(key.api_key), "secret": b64(key.secret)},
    }


def live_engine(scenario: Scenario, name: str) -> dict[str, Any]:
    """A live `ema_cross` (2/3, 0.01 BTC) on the simulator, credentials from SIM_KEYS."""
    manifest = scenario.engine(
        name,
        mode="live",
        exchange={
            "id": "binance",
            "endpoint": scenario.exchange_url,
            "credentialsSecret": SIM_KEYS,
        },
        strategy={"name": "ema_cross", "params": {"fast": 2, "slow": 3, "quantity": "0.01"}},
        live={"syncIntervalSeconds": 1, "recvWindowMs": 1000},
    )
    del manifest["spec"]["paper"]
    return manifest
