"""The pod runner plays kubelet: processes, env, volumes, probes, restarts, deletion."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apiserver_support import Http, Watch

from hean_sandbox.apiserver import ApiServer
from hean_sandbox.kubelet.api import KubeApi
from hean_sandbox.kubelet.runner import IpAllocator, PodRunner

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
async def runner(server: ApiServer, tmp_path: Path) -> AsyncIterator[PodRunner]:
    async with aiohttp.ClientSession() as session:
        pods = PodRunner(KubeApi(session, server.url, token=None), tmp_path / "pods")
        ready = asyncio.Event()
        task = asyncio.create_task(pods.run(ready))
        await ready.wait()
        try:
            yield pods
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


def pod(
    name: str, code: str, *args: str, restart: str = "Never", **container: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": "local",
                    "command": [sys.executable, "-c", code, *args],
                    **container,
                }
            ],
        },
    }


def pod_status(event: dict[str, Any]) -> dict[str, Any]:
    return dict(event["object"].get("status") or {})


def container_state(event: dict[str, Any]) -> dict[str, Any]:
    statuses = pod_status(event).get("containerStatuses") or [{}]
    return dict(statuses[0])


def log_of(runner: PodRunner, name: str) -> str:
    [directory] = (runner.workdir / "default").glob(f"{name}-*")
    return (directory / "logs" / "main.log").read_text()


async def watch_pod(http: Http, name: str) -> Watch:
    return await http.watch(PODS, {"fieldSelector": f"metadata.name={name}"})


async def test_env_and_mounted_volumes_reach_the_process(http: Http, runner: PodRunner) -> None:
    await http.post(
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "cfg"}, "data": {"engine.yaml": "spec: 1\n", "level": "debug"}},
    )
    await http.post(
        "/api/v1/namespaces/default/secrets",
        {"metadata": {"name": "sec"}, "data": {"token": base64.b64encode(b"s3cret").decode()}},
    )
    code = (
        "import os, sys, stat;"
        "print(open(sys.argv[1]).read().strip());"
        "print(open(sys.argv[2]).read());"
        "print(oct(stat.S_IMODE(os.stat(sys.argv[2]).st_mode)));"
        "print(os.environ['PLAIN'], os.environ['FROM_SECRET'], os.environ['FROM_CM']);"
        "print(os.environ['POD_IP'] == os.environ['HEAN_HOST'], os.environ['POD_NAME'])"
    )
    manifest = pod(
        "env",
        code,
        "/etc/hean/engine.yaml",
        "/var/run/hean/token",
        env=[
            {"name": "PLAIN", "value": "v1"},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
        ],
        volumeMounts=[
            {"name": "config", "mountPath": "/etc/hean"},
            {"name": "control", "mountPath": "/var/run/hean"},
        ],
    )
    manifest["spec"]["volumes"] = [
        {"name": "config", "configMap": {"name": "cfg"}},
        {"name": "control", "secret": {"secretName": "sec"}},
    ]
    watch = await watch_pod(http, "env")
    await http.post(PODS, manifest)
    done = await watch.until(lambda e: pod_status(e).get("phase") == "Succeeded", within=30)
    assert container_state(done)["state"]["terminated"]["exitCode"] == 0
    assert log_of(runner, "env").splitlines() == [
        "spec: 1",
        "s3cret",
        "0o600",
        "v1 s3cret debug",
        "True env",
    ]


async def test_configmap_items_map_keys_to_paths_as_the_kubelet_does(
    http: Http, runner: PodRunner
) -> None:
    # A live engine's approval volume: `trust.X` keys land in `trust/X`; an
    # optional volume skips a listed key the ConfigMap no longer has.
    await http.post(
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "appr"}, "data": {"approval.yaml": "a: 1\n", "trust.k.pub": "PEM"}},
    )
    code = (
        "import os, sys;"
        "print(sorted(os.listdir(sys.argv[1])));"
        "print(open(os.path.join(sys.argv[1], 'trust', 'k.pub')).read())"
    )
    manifest = pod(
        "items",
        code,
        "/etc/hean/approval",
        volumeMounts=[{"name": "approval", "mountPath": "/etc/hean/approval"}],
    )
    manifest["spec"]["volumes"] = [
        {
            "name": "approval",
            "configMap": {
                "name": "appr",
                "optional": True,
                "items": [
                    {"key": "approval.yaml", "path": "approval.yaml"},
                    {"key": "trust.k.pub", "path": "trust/k.pub"},
                    {"key": "trust.gone.pub", "path": "trust/gone.pub"},
                ],
            },
        }
    ]
    watch = await watch_pod(http, "items")
    await http.post(PODS, manifest)
    done = await watch.until(lambda e: pod_status(e).get("phase") == "Succeeded", within=30)
    assert container_state(done)["state"]["terminated"]["exitCode"] == 0
    assert log_of(runner, "items").splitlines() == ["['approval.yaml', 'trust']", "PEM"]


async def test_a_changed_configmap_reaches_the_running_process_as_the_kubelet_does(
    http: Http, runner: PodRunner
) -> None:
    # The running engine re-reads its approval files: a revoked key must reach
    # them in place, without a restart. The process waits for the change itself.
    await http.post(
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "trust"}, "data": {"policy.yaml": "required: 1\n", "old.pub": "X"}},
    )
    code = (
        "import os, sys, time\n"
        "d = sys.argv[1]\n"
        "deadline = time.time() + 20\n"
        "while open(os.path.join(d, 'policy.yaml')).read() == 'required: 1\\n':\n"
        "    assert time.time() < deadline, 'no update'\n"
        "    time.sleep(0.02)\n"
        "print(repr(open(os.path.join(d, 'policy.yaml')).read()))\n"
        "print(sorted(n for n in os.listdir(d) if not n.startswith('.')))\n"
    )
    manifest = pod(
        "refresh", code, "/etc/trust", volumeMounts=[{"name": "trust", "mountPath": "/etc/trust"}]
    )
    manifest["spec"]["volumes"] = [{"name": "trust", "configMap": {"name": "trust"}}]
    watch = await watch_pod(http, "refresh")
    await http.post(PODS, manifest)
    await watch.until(lambda e: container_state(e).get("state", {}).get("running"), within=30)
    await http.put(
        "/api/v1/namespaces/default/configmaps/trust",
        {"metadata": {"name": "trust"}, "data": {"policy.yaml": "revoked: [old]\n"}},
    )
    done = await watch.until(lambda e: pod_status(e).get("phase") == "Succeeded", within=30)
    assert container_state(done)["state"]["terminated"]["exitCode"] == 0, log_of(runner, "refresh")
    assert log_of(runner, "refresh").splitlines() == ["'revoked: [old]\\n'", "['policy.yaml']"]


async def test_readiness_probe_sets_ready_and_delete_stops_the_process(
    http: Http, runner: PodRunner
) -> None:
    serve = (
        "import http.server, os;"
        "http.server.HTTPServer((os.environ['POD_IP'], 8000),"
        " http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    manifest = pod(
        "web",
        serve,
        restart="Always",
        ports=[{"name": "http", "containerPort": 8000}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    )
    watch = await watch_pod(http, "web")
    await http.post(PODS, manifest)

    def ready(event: dict[str, Any]) -> bool:
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod_status(event).get("conditions") or []
        )

    event = await watch.until(ready, within=30)
    ip = pod_status(event)["podIP"]
    assert ip.startswith("127.") and ip != "127.0.0.1"
    async with aiohttp.ClientSession() as session, session.get(f"http://{ip}:8000/") as r:
        assert r.status == 200
    process = runner.pods[event["object"]["metadata"]["uid"]].process
    assert process is not None and process.returncode is None
    await http.delete(f"{PODS}/web")
    await watch.until(lambda e: e["type"] == "DELETED", within=30)
    assert process.returncode is not None  # stopped before the pod was gone


async def test_restart_always_backs_off_into_crash_loop(http: Http, runner: PodRunner) -> None:
    watch = await watch_pod(http, "crash")
    await http.post(PODS, pod("crash", "raise SystemExit(3)", restart="Always"))
    event = await watch.until(
        lambda e: (
            container_state(e).get("restartCount", 0) >= 2
            and "waiting" in (container_state(e).get("state") or {})
        ),
        within=30,
    )
    waiting = container_state(event)["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff"
    assert waiting["message"] == "exit 3"
    assert pod_status(event)["phase"] == "Running"


@pytest.mark.parametrize(
    ("policy", "code", "phase"),
    [
        ("Never", "raise SystemExit(1)", "Failed"),
        ("OnFailure", "pass", "Succeeded"),
        ("Never", "pass", "Succeeded"),
    ],
)
async def test_restart_policies_end_in_the_right_phase(
    http: Http, runner: PodRunner, policy: str, code: str, phase: str
) -> None:
    watch = await watch_pod(http, "once")
    await http.post(PODS, pod("once", code, restart=policy))
    event = await watch.until(
        lambda e: pod_status(e).get("phase") in ("Succeeded", "Failed"), within=30
    )
    assert pod_status(event)["phase"] == phase
    assert container_state(event)["restartCount"] == 0


async def test_on_failure_restarts_a_failing_process(http: Http, runner: PodRunner) -> None:
    watch = await watch_pod(http, "flaky")
    await http.post(PODS, pod("flaky", "raise SystemExit(1)", restart="OnFailure"))
    event = await watch.until(lambda e: container_state(e).get("restartCount", 0) >= 1, within=30)
    assert pod_status(event)["phase"] == "Running"  # restarting, not Failed


async def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    http: Http, runner: PodRunner
) -> None:
    # it ignores SIGTERM first, then answers the readiness probe: once Ready, it is deaf
    stubborn = (
        "import signal, os, http.server; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "http.server.HTTPServer((os.environ['POD_IP'], 8000),"
        " http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    manifest = pod(
        "stubborn",
        stubborn,
        restart="Always",
        readinessProbe={"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 1},
    )
    manifest["spec"]["terminationGracePeriodSeconds"] = 1
    watch = await watch_pod(http, "stubborn")
    await http.post(PODS, manifest)
    event = await watch.until(lambda e: bool(container_state(e).get("ready")), within=30)
    process = runner.pods[event["object"]["metadata"]["uid"]].process
    assert process is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, _ = await http.delete(f"{PODS}/stubborn")
    assert status == 200
    await watch.until(lambda e: e["type"] == "DELETED", within=30)
    assert process.returncode == -9  # SIGKILL, after the 1 s grace
    assert loop.time() - started >= 1.0


async def test_a_missing_configmap_is_a_container_config_error(
    http: Http, runner: PodRunner
) -> None:
    manifest = pod("nocfg", "pass", volumeMounts=[{"name": "c", "mountPath": "/etc/c"}])
    manifest["spec"]["volumes"] = [{"name": "c", "configMap": {"name": "absent"}}]
    watch = await watch_pod(http, "nocfg")
    await http.post(PODS, manifest)
    event = await watch.until(
        lambda e: "waiting" in (container_state(e).get("state") or {}), within=30
    )
    waiting = container_state(event)["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert "absent" in waiting["message"]


def test_ip_allocator_skips_addresses_in_use() -> None:
    import socket

    allocator = IpAllocator(ports=(8080,), block=77)
    first = allocator.next()
    with socket.socket() as taken:
        taken.bind(("127.77.0.3", 8080))
        assert allocator.next() == "127.77.0.4"
    assert first == "127.77.0.2"
