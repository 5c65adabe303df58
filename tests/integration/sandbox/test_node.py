"""The sandbox's node plays kubelet on the real control plane: processes, env, volumes,
probes, restarts, deletion, images, service-account tokens, logs."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from node_support import NodeWorld

from hean_sandbox.kubelet.api import ApiError
from hean_sandbox.kubelet.node import IpAllocator, _resolve


def pod(
    name: str, code: str, *args: str, restart: str = "Never", **container: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": "ghcr.io/hean-io/hean-engine:dev",
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


def log_of(world: NodeWorld, name: str) -> str:
    [directory] = (world.node.workdir / world.namespace).glob(f"{name}-*")
    return (directory / "logs" / "main.log").read_text()


async def test_env_and_mounted_volumes_reach_the_process(world: NodeWorld) -> None:
    await world.http.post(
        world.path("configmaps"),
        {"metadata": {"name": "cfg"}, "data": {"engine.yaml": "spec: 1\n", "level": "debug"}},
    )
    await world.http.post(
        world.path("secrets"),
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
    watch = await world.watch_pod("env")
    await world.create_pod(manifest)
    done = await watch.until(lambda e: pod_status(e).get("phase") == "Succeeded", within=30)
    assert container_state(done)["state"]["terminated"]["exitCode"] == 0
    assert log_of(world, "env").splitlines() == [
        "spec: 1",
        "s3cret",
        "0o600",
        "v1 s3cret debug",
        "True env",
    ]


async def test_configmap_items_map_keys_to_paths_as_the_kubelet_does(world: NodeWorld) -> None:
    # A live engine's approval volume: `trust.X` keys land in `trust/X`; an
    # optional volume skips a listed key the ConfigMap no longer has.
    await world.http.post(
        world.path("configmaps"),
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
    watch = await world.watch_pod("items")
    await world.create_pod(manifest)
    done = await watch.until(lambda e: pod_status(e).get("phase") == "Succeeded", within=30)
    assert container_state(done)["state"]["terminated"]["exitCode"] == 0
    assert log_of(world, "items").splitlines() == ["['approval.yaml', 'trust']", "PEM"]


async def test_a_changed_configmap_reaches_the_running_process_as_the_kubelet_does(
    world: NodeWorld,
) -> None:
    # The running engine re-reads its approval files: a revoked key must reach
    # them in place, without a restart. The process waits for the change itself.
    await world.http.post(
        world.path("configmaps"),
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
    watch = await world.watch_pod("refresh")
    await world.create_pod(manifest)
    await watch.until(lambda e: container_state(e).get("state", {}).get("running"), within=30)
    await world.http.put(
        world.path("configmaps", "trust"),
        {"metadata": {"name": "trust"}, "data": {"policy.yaml": "revoked: [old]\n"}},
    )
    done = await watch.until(lambda e: pod_status(e).get("phase") == "Succeeded", within=30)
    assert container_state(done)["state"]["terminated"]["exitCode"] == 0, log_of(world, "refresh")
    assert log_of(world, "refresh").splitlines() == ["'revoked: [old]\\n'", "['policy.yaml']"]


async def test_readiness_probe_sets_ready_and_delete_stops_the_process(world: NodeWorld) -> None:
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
    watch = await world.watch_pod("web")
    await world.create_pod(manifest)

    def ready(event: dict[str, Any]) -> bool:
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod_status(event).get("conditions") or []
        )

    event = await watch.until(ready, within=30)
    ip = pod_status(event)["podIP"]
    network = world.node.pod_network  # a proxyable local range when the sandbox made one
    if network is None:
        assert ip.startswith("127.") and ip != "127.0.0.1"
    else:
        assert ipaddress.ip_address(ip) in network
    async with aiohttp.ClientSession() as session, session.get(f"http://{ip}:8000/") as r:
        assert r.status == 200
    process = world.node.pods[event["object"]["metadata"]["uid"]].process
    assert process is not None and process.returncode is None
    await world.http.delete(world.path("pods", "web"))
    await watch.until(lambda e: e["type"] == "DELETED", within=30)
    assert process.returncode is not None  # stopped before the pod was gone


async def test_restart_always_backs_off_into_crash_loop(world: NodeWorld) -> None:
    watch = await world.watch_pod("crash")
    await world.create_pod(pod("crash", "raise SystemExit(3)", restart="Always"))
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
    world: NodeWorld, policy: str, code: str, phase: str
) -> None:
    watch = await world.watch_pod("once")
    await world.create_pod(pod("once", code, restart=policy))
    event = await watch.until(
        lambda e: pod_status(e).get("phase") in ("Succeeded", "Failed"), within=30
    )
    assert pod_status(event)["phase"] == phase
    assert container_state(event)["restartCount"] == 0


async def test_on_failure_restarts_a_failing_process(world: NodeWorld) -> None:
    watch = await world.watch_pod("flaky")
    await world.create_pod(pod("flaky", "raise SystemExit(1)", restart="OnFailure"))
    event = await watch.until(lambda e: container_state(e).get("restartCount", 0) >= 1, within=30)
    assert pod_status(event)["phase"] == "Running"  # restarting, not Failed


async def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    world: NodeWorld,
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
    watch = await world.watch_pod("stubborn")
    await world.create_pod(manifest)
    event = await watch.until(lambda e: bool(container_state(e).get("ready")), within=30)
    process = world.node.pods[event["object"]["metadata"]["uid"]].process
    assert process is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, _ = await world.http.delete(world.path("pods", "stubborn"))
    assert status == 200
    await watch.until(lambda e: e["type"] == "DELETED", within=30)
    assert process.returncode == -9  # SIGKILL, after the 1 s grace
    assert loop.time() - started >= 1.0


async def test_a_missing_configmap_is_a_container_config_error_until_it_exists(
    world: NodeWorld,
) -> None:
    manifest = pod("nocfg", "pass", volumeMounts=[{"name": "c", "mountPath": "/etc/c"}])
    manifest["spec"]["volumes"] = [{"name": "c", "configMap": {"name": "absent"}}]
    watch = await world.watch_pod("nocfg")
    await world.create_pod(manifest)
    event = await watch.until(
        lambda e: (
            "absent"
            in (container_state(e).get("state") or {}).get("waiting", {}).get("message", "")
        ),
        within=30,
    )
    waiting = container_state(event)["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert "not found" in waiting["message"]
    # as the kubelet, the node keeps trying: once the ConfigMap exists, the pod runs
    status, _, _ = await world.http.post(
        world.path("configmaps"), {"metadata": {"name": "absent"}, "data": {"k": "v"}}
    )
    assert status == 201
    await watch.until(lambda e: pod_status(e).get("phase") == "Succeeded", within=30)


def test_a_mounts_sub_path_is_a_directory_below_the_volumes(tmp_path: Path) -> None:
    from hean_sandbox.kubelet.node import _sub_path

    assert _sub_path(tmp_path, {"name": "output"}) == tmp_path
    below = _sub_path(tmp_path, {"name": "output", "subPath": "reports/ns/bt"})
    assert below == tmp_path / "reports" / "ns" / "bt" and below.is_dir()
    for bad in ("/etc", "reports/../../etc", ".."):
        with pytest.raises(ValueError, match=r"must be relative, no '\.\.'"):
            _sub_path(tmp_path, {"name": "output", "subPath": bad})


def test_the_images_programs_run_as_their_modules() -> None:
    """`hean` and `kubectl-hean` (the chart's console) are on the images' PATH."""
    assert _resolve(["hean", "operator", "run"]) == [
        sys.executable,
        "-m",
        "hean_engine.cli",
        "operator",
        "run",
    ]
    assert _resolve(["kubectl-hean", "console", "--in-cluster"]) == [
        sys.executable,
        "-m",
        "hean_desk.plugin",
        "console",
        "--in-cluster",
    ]
    assert _resolve(["sh", "-c", "true"]) == ["sh", "-c", "true"]


def test_ip_allocator_skips_addresses_in_use() -> None:
    import socket

    allocator = IpAllocator(ports=(8080,), block=77)
    first = allocator.next()
    with socket.socket() as taken:
        taken.bind(("127.77.0.3", 8080))
        assert allocator.next() == "127.77.0.4"
    assert first == "127.77.0.2"


async def test_the_node_is_registered_ready_with_a_lease(world: NodeWorld) -> None:
    status, node, _ = await world.http.get(f"/api/v1/nodes/{world.node.name}")
    assert status == 200
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    status, lease, _ = await world.http.get(
        f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{world.node.name}"
    )
    assert status == 200
    assert lease["spec"]["holderIdentity"] == world.node.name


async def test_the_node_cannot_read_a_secret_that_none_of_its_pods_uses(
    world: NodeWorld,
) -> None:
    # The API server's Node authorizer: a node reads only what its own pods use.
    status, _, _ = await world.http.post(
        world.path("secrets"),
        {"metadata": {"name": "unrelated"}, "data": {"k": base64.b64encode(b"v").decode()}},
    )
    assert status == 201
    with pytest.raises(ApiError) as refused:
        await world.node.api.get(world.path("secrets", "unrelated"))
    assert refused.value.status == 403


async def test_an_image_the_node_cannot_run_is_an_image_pull_error(world: NodeWorld) -> None:
    manifest = pod("alien", "pass")
    manifest["spec"]["containers"][0]["image"] = "docker.io/library/nginx:1.27"
    watch = await world.watch_pod("alien")
    await world.create_pod(manifest)
    event = await watch.until(
        lambda e: (
            (container_state(e).get("state") or {}).get("waiting", {}).get("reason")
            == "ImagePullBackOff"
        ),
        within=30,
    )
    assert "nginx" in container_state(event)["state"]["waiting"]["message"]
    assert pod_status(event)["phase"] == "Pending"
    status, events, _ = await world.http.get(
        world.path("events"), params={"fieldSelector": "involvedObject.name=alien"}
    )
    assert status == 200
    reasons = {e["reason"] for e in events["items"]}
    assert {"Failed", "BackOff"} <= reasons


async def test_a_pod_talks_to_the_api_server_as_its_service_account(world: NodeWorld) -> None:
    # The projected token, CA and namespace at the path the Kubernetes clients read,
    # in the pod's own mount namespace; KUBERNETES_SERVICE_HOST/PORT lead to the API.
    code = (
        "import json, os, ssl, urllib.request\n"
        "d = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "token = open(d + '/token').read()\n"
        "ctx = ssl.create_default_context(cafile=d + '/ca.crt')\n"
        "url = 'https://%s:%s/apis/authentication.k8s.io/v1/selfsubjectreviews' % ("
        "os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT'])\n"
        "req = urllib.request.Request(url, method='POST', data=json.dumps({"
        "'apiVersion': 'authentication.k8s.io/v1', 'kind': 'SelfSubjectReview'}).encode(),"
        " headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})\n"
        "review = json.load(urllib.request.urlopen(req, context=ctx))\n"
        "print(review['status']['userInfo']['username'])\n"
        "print(open(d + '/namespace').read())\n"
        "print(os.environ['MY_NAME'], os.environ['MY_NODE'])\n"
    )
    manifest = pod(
        "whoami",
        code,
        env=[
            {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ],
    )
    # What the ServiceAccount admission plugin adds to every pod, as the API server does.
    watch = await world.watch_pod("whoami")
    await world.create_pod(manifest)
    done = await watch.until(lambda e: pod_status(e).get("phase") in ("Succeeded", "Failed"), 60)
    assert pod_status(done)["phase"] == "Succeeded", log_of(world, "whoami")
    assert done["object"]["spec"]["volumes"][0]["projected"]  # added by the API server
    assert log_of(world, "whoami").splitlines() == [
        f"system:serviceaccount:{world.namespace}:default",
        world.namespace,
        f"whoami {world.node.name}",
    ]


async def test_kubectl_logs_reads_the_container_log_through_the_api_server(
    world: NodeWorld,
) -> None:
    watch = await world.watch_pod("talker")
    await world.create_pod(pod("talker", "print('hello from the pod')"))
    await watch.until(lambda e: pod_status(e).get("phase") == "Succeeded", within=30)
    status, text, _ = await world.http.get(world.path("pods", "talker") + "/log")
    assert status == 200, text
    assert text == "hello from the pod\n"
