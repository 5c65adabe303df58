"""Helpers of the node's tests: a node of the test's own on the session's real control
plane, an admin JSON client and a watch reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.error
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from cluster_support import shared_control_plane, unique
from hean_sandbox.controlplane.cluster import ControlPlane
from hean_sandbox.kubelet.api import KubeApi
from hean_sandbox.kubelet.node import Node, mount_namespace_command
from hean_sandbox.kubelet.podnet import local_pod_network


@dataclass
class Http:
    """A thin JSON client for raw protocol checks."""

    session: aiohttp.ClientSession
    base: str

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        data = None
        all_headers = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers["Content-Type"] = content_type
        async with self.session.request(
            method, self.base + path, data=data, params=params, headers=all_headers
        ) as response:
            text = await response.text()
            payload = json.loads(text) if text and text[0] in "{[" else text
            return response.status, payload, dict(response.headers)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return await self.request("PUT", path, body, **kw)

    async def patch(
        self, path: str, body: Any, kind: str = "merge", **kw: Any
    ) -> tuple[int, Any, dict[str, str]]:
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "apply": "application/apply-patch+yaml",
        }[kind]
        return await self.request("PATCH", path, body, content_type=content_type, **kw)

    async def delete(
        self, path: str, body: Any = None, **kw: Any
    ) -> tuple[int, Any, dict[str, str]]:
        return await self.request("DELETE", path, body, **kw)

    async def watch(
        self, path: str, params: dict[str, str], headers: dict[str, str] | None = None
    ) -> Watch:
        response = await self.session.get(
            self.base + path, params={"watch": "true", **params}, headers=headers
        )
        assert response.status == 200, await response.text()
        return Watch(response)


class Watch:
    """Reads one watch stream event by event, never waiting longer than a timeout."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, within: float = 5.0) -> dict[str, Any] | None:
        line = await asyncio.wait_for(self.response.content.readline(), within)
        if not line:
            return None
        event: dict[str, Any] = json.loads(line)
        return event

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 5.0
    ) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            while True:
                event = await self.next(within)
                assert event is not None, "the watch stream ended"
                if predicate(event):
                    return event

        return await asyncio.wait_for(scan(), within)

    def close(self) -> None:
        self.response.close()


def ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@dataclass
class NodeWorld:
    cluster: ControlPlane
    namespace: str
    node: Node
    http: Http  # the cluster admin

    @property
    def pods(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods"

    def path(self, plural: str, name: str = "") -> str:
        base = f"/api/v1/namespaces/{self.namespace}/{plural}"
        return f"{base}/{name}" if name else base

    async def watch_pod(self, name: str) -> Watch:
        return await self.http.watch(self.pods, {"fieldSelector": f"metadata.name={name}"})

    def bind(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The pod, bound to this test's node (as the scheduler would bind it)."""
        pod["metadata"]["namespace"] = self.namespace
        pod["spec"]["nodeName"] = self.node.name
        return pod

    async def create_pod(self, pod: dict[str, Any]) -> None:
        status, body, _ = await self.http.post(self.pods, self.bind(pod))
        assert status == 201, body

    async def start_pod(self, pod: dict[str, Any], within: float = 30) -> dict[str, Any]:
        """Create the pod and return it once the node reported it Ready."""
        watch = await self.watch_pod(pod["metadata"]["name"])
        try:
            await self.create_pod(pod)
            event = await watch.until(lambda e: ready(e["object"]), within=within)
        finally:
            watch.close()
        found: dict[str, Any] = event["object"]
        return found


@contextlib.asynccontextmanager
async def node_world(workdir: Path, *, fake: bool) -> AsyncIterator[NodeWorld]:
    cluster = await asyncio.to_thread(shared_control_plane)
    namespace = unique("node")
    await asyncio.to_thread(cluster.create_namespace, namespace)
    assert cluster.ca is not None
    name = unique("node")
    client = cluster.issue_client(f"node-{name}", f"system:node:{name}", ("system:nodes",))
    serving = cluster.ca.issue(
        f"node-{name}-serving", f"system:node:{name}", server_ips=("127.0.0.1",), client=False
    )
    context = ssl.create_default_context(cafile=str(cluster.ca_path))
    context.load_cert_chain(str(client.cert), str(client.key))
    async with (
        aiohttp.ClientSession() as node_session,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=cluster.ssl_context())) as admin,
    ):
        node = Node(
            KubeApi(node_session, cluster.url, ssl_context=context),
            name,
            workdir / "pods",
            fake=fake,
            serving=(serving.cert, serving.key),
            client_ca=cluster.ca_path,
            mount_prefix=await asyncio.to_thread(mount_namespace_command),
            pod_network=(await asyncio.to_thread(local_pod_network))[0],
        )
        started = asyncio.Event()
        task = asyncio.create_task(node.run(started))
        await asyncio.wait_for(started.wait(), 30)
        try:
            yield NodeWorld(cluster, namespace, node, Http(admin, cluster.url))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for path in (f"/api/v1/nodes/{name}", f"/api/v1/namespaces/{namespace}"):
                with contextlib.suppress(urllib.error.HTTPError):
                    await asyncio.to_thread(cluster.request, "DELETE", path)
