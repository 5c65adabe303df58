"""The sandbox's pod runner: a kubelet that runs each pod's container as a local process.

For every pod it sees (through a watch on the apiserver) it:
- gives the pod a loopback IP of its own (127.B.x.y, see IpAllocator), so that pods can all
  listen on the same port, as in a cluster;
- writes the pod's ConfigMap, Secret and emptyDir volumes into a directory
  per pod and rewrites the mount paths in the command to point there;
- starts the first container's command with the pod's env (`valueFrom` of
  Secrets and ConfigMaps included), plus `POD_IP`, `POD_NAME`,
  `POD_NAMESPACE` and `HEAN_HOST` (the address HEAN engines bind to);
- runs the readiness probe (httpGet) and reports phase, podIP, restarts,
  container state and the Ready condition through the status subresource;
- restarts the process per `restartPolicy` with a capped backoff, showing
  CrashLoopBackOff while it waits;
- on deletion sends SIGTERM, waits the grace period, then SIGKILL, and only
  then finishes the deletion, as a kubelet confirms a pod is gone.

`fake=True` (like KWOK) marks pods Running and Ready without any process, for
scale tests of the operator; a pod with a container port named `http` gets a
stand-in engine API there (`fake_engine.py`), so that the operator's status
polls succeed. Deviations from a kubelet are in docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import os
import random
import signal
import socket
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from hean_sandbox.kubelet.api import ApiError, KubeApi
from hean_sandbox.kubelet.fake_engine import FakeEngine, start_fake_engine

log = logging.getLogger("hean.sandbox.kubelet")

PROBE_PERIOD_CAP = 1.0  # seconds: probes run at least this often, for a responsive sandbox
BACKOFF_CAP = 10.0
# ConfigMap and Secret volumes are re-read this often (the kubelet takes up to a
# minute; a sandbox is for fast feedback).
VOLUME_SYNC_SECONDS = 1.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class IpAllocator:
    """Every pod its own loopback address, e.g. 127.57.0.2, 127.57.0.3, ...

    Several sandboxes (or tests) may run on one machine at once, so each runner
    starts in a random /16 of 127.0.0.0/8 and skips any address on which one of
    `ports` is already taken: two pods never contend for one address.
    """

    def __init__(self, ports: tuple[int, ...] = (8080,), block: int | None = None) -> None:
        self._block = block if block is not None else random.randint(2, 254)
        self._ports = ports
        self._counter = itertools.count(1)

    def next(self) -> str:
        for _ in range(65_000):
            n = next(self._counter)
            ip = f"127.{self._block}.{n // 250}.{n % 250 + 1}"
            if all(_free(ip, port) for port in self._ports):
                return ip
        raise RuntimeError("no free loopback address left for another pod")


def _free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


@dataclass
class PodRun:
    namespace: str
    name: str
    uid: str
    ip: str
    directory: Path
    spec: dict[str, Any]
    restarts: int = 0
    ready: bool = False
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    terminator: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: str = field(default_factory=_now)
    process_started: str | None = None  # the current process's start, for startedAt
    fake_engine: FakeEngine | None = None  # fake mode only


class PodRunner:
    def __init__(self, api: KubeApi, workdir: Path, *, fake: bool = False) -> None:
        self.api = api
        self.workdir = workdir
        self.fake = fake
        self.pods: dict[str, PodRun] = {}  # by uid
        self._ips = IpAllocator()
        self._http: aiohttp.ClientSession | None = None

    # -- the watch loop --------------------------------------------------------
    async def run(self, ready: asyncio.Event | None = None) -> None:
        self._http = aiohttp.ClientSession()
        try:
            while True:
                listing = await self.api.list_pods()
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
                    async for event in self.api.watch_pods(version):
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
        finally:
            for run in list(self.pods.values()):
                await self._kill(run, grace=2.0)
            await self._http.close()

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
        if run is None:
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
        )
        self.pods[run.uid] = run
        if self.fake:
            run.fake_engine, run.ip = await start_fake_engine(self.api, pod, run.ip, self._ips.next)
            await self._report(run, running=True, ready=True)
            return
        run.task = asyncio.create_task(self._supervise(run))

    async def _supervise(self, run: PodRun) -> None:
        try:
            mounts = await self._materialise_volumes(run)
            container = run.spec["containers"][0]
            env = await self._environment(run, container)
        except (ApiError, KeyError, ValueError) as exc:
            await self._report(run, running=False, waiting=("CreateContainerConfigError", str(exc)))
            return
        command = [
            _rewrite(arg, mounts)
            for arg in [*container.get("command", []), *container.get("args", [])]
        ]
        policy = run.spec.get("restartPolicy", "Always")
        backoff = 1.0
        refresher = asyncio.create_task(self._refresh_volumes(run))
        try:
            await self._run_container(run, container, command, env, policy, backoff)
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

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
            with log_path.open("ab") as logfile:
                run.process = await asyncio.create_subprocess_exec(
                    *_resolve(command),
                    env=env,
                    stdout=logfile,
                    stderr=logfile,
                    stdin=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )
            run.ready = False
            run.process_started = _now()
            await self._report(run, running=True, ready=False)
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
        """Write each volume to a directory; returns mountPath -> local directory."""
        volumes: dict[str, Path] = {}
        for volume in run.spec.get("volumes", []):
            target = run.directory / "volumes" / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            files = await self._volume_files(run, volume)
            if files is not None:
                _sync_files(target, files, 0o600 if "secret" in volume else 0o644, set())
            volumes[volume["name"]] = target
        mounts: dict[str, Path] = {}
        for mount in run.spec["containers"][0].get("volumeMounts", []):
            if mount["name"] in volumes:
                mounts[mount["mountPath"]] = volumes[mount["name"]]
        return mounts

    async def _volume_files(self, run: PodRun, volume: dict[str, Any]) -> dict[str, bytes] | None:
        """A ConfigMap or Secret volume's files (path -> bytes); None for other volumes."""
        if "configMap" in volume:
            source = volume["configMap"]
            name = source["name"]
            found = await self.api.get(f"/api/v1/namespaces/{run.namespace}/configmaps/{name}")
            if found is None and not source.get("optional"):
                raise ValueError(f"configmap {name!r} not found")
            data = (found or {}).get("data") or {}
            if not source.get("items"):
                return {k: v.encode() for k, v in data.items()}
            # As the kubelet: only the listed keys, at their paths (which may
            # name subdirectories); a missing key fails unless optional.
            files: dict[str, bytes] = {}
            for item in source["items"]:
                if item["key"] in data:
                    files[item["path"]] = data[item["key"]].encode()
                elif not source.get("optional"):
                    raise ValueError(f"configmap {name!r} has no key {item['key']!r}")
            return files
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            found = await self.api.get(f"/api/v1/namespaces/{run.namespace}/secrets/{name}")
            if found is None:
                raise ValueError(f"secret {name!r} not found")
            return {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
        return None

    async def _refresh_volumes(self, run: PodRun) -> None:
        """Keep ConfigMap and Secret volumes current while the pod lives, as the kubelet
        does (it updates them in place within its sync period; subPath mounts aside).
        A running engine relies on it: a revoked key reaches its own approval check."""
        written: dict[str, set[str]] = {}
        while not run.stopping.is_set():
            await asyncio.sleep(VOLUME_SYNC_SECONDS)
            for volume in run.spec.get("volumes", []):
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
                mode = 0o600 if "secret" in volume else 0o644
                before = written.get(volume["name"])
                if before is None:  # what the pod started with
                    before = {
                        str(path.relative_to(target))
                        for path in target.rglob("*")
                        if path.is_file() and not path.name.startswith(".")
                    }
                written[volume["name"]] = _sync_files(target, files, mode, before)

    async def _environment(self, run: PodRun, container: dict[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        env.update(
            {
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
        return env

    async def _value_from(self, run: PodRun, source: dict[str, Any]) -> str:
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

    # -- status ----------------------------------------------------------------------
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
            state: dict[str, Any] = {"running": {"startedAt": run.process_started or _now()}}
        elif waiting is not None:
            state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        else:
            state = {"terminated": {"exitCode": exit_code or 0, "finishedAt": _now()}}
        phase = "Running"
        if final:
            phase = "Succeeded" if exit_code == 0 else "Failed"
        condition = "True" if ready else "False"
        status = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": run.ip,
            "podIPs": [{"ip": run.ip}],
            "startTime": run.started_at,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": condition},
                {"type": "Ready", "status": condition},
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
                }
            ],
        }
        try:
            await self.api.patch_pod_status(run.namespace, run.name, status)
        except ApiError as exc:
            if exc.status != 404:
                raise


def _rewrite(arg: str, mounts: dict[str, Path]) -> str:
    for mount_path, local in sorted(mounts.items(), key=lambda m: -len(m[0])):
        if arg == mount_path or arg.startswith(mount_path.rstrip("/") + "/"):
            return str(local) + arg[len(mount_path.rstrip("/")) :]
    return arg


def _resolve(command: list[str]) -> list[str]:
    """`hean` runs from this interpreter's environment, so a venv needs no activation."""
    if command and command[0] == "hean":
        return [sys.executable, "-m", "hean_engine.cli", *command[1:]]
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
