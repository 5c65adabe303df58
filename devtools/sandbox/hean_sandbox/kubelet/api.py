"""A minimal async client for the Kubernetes API calls the sandbox's node makes.

The node authenticates as `system:node:<name>` with a client certificate, as a
kubelet does, so the API server's Node authorizer and the NodeRestriction
admission plugin limit it to its own Node, its Lease, the pods bound to it and
the ConfigMaps, Secrets and service-account tokens those pods use. It speaks
plain REST over aiohttp: register and heartbeat, list and watch its pods, read
volumes' sources, request tokens, patch pod status, post Events, and finish a
pod's deletion.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class KubeApi:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._session = session
        self._server = server.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True

    @property
    def server(self) -> str:
        return self._server

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with self._session.request(
            method, self._server + path, data=data, headers=headers, params=params, ssl=self._ssl
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise ApiError(response.status, text[:300])
            return json.loads(text) if text else None

    async def list_pods(self, node: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "GET", "/api/v1/pods", params={"fieldSelector": f"spec.nodeName={node}"}
        )
        return result

    async def watch_pods(self, node: str, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "fieldSelector": f"spec.nodeName={node}",
        }
        async with self._session.get(
            self._server + "/api/v1/pods",
            params=params,
            headers=self._headers,
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as response:
            if response.status >= 400:
                raise ApiError(response.status, (await response.text())[:300])
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)

    async def watch(self, path: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch of `path` (params carry `watch=true` and the version)."""
        async with self._session.get(
            self._server + path,
            params=params,
            headers=self._headers,
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as response:
            if response.status >= 400:
                raise ApiError(response.status, (await response.text())[:300])
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": status},
            content_type="application/strategic-merge-patch+json",
        )

    async def finish_pod_deletion(self, namespace: str, name: str, uid: str) -> None:
        """What a kubelet does once a pod's containers are gone: delete it for good."""
        try:
            await self.request(
                "DELETE",
                f"/api/v1/namespaces/{namespace}/pods/{name}",
                {
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid},
                },
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    async def request_token(
        self, namespace: str, service_account: str, pod: str, pod_uid: str, seconds: int
    ) -> str:
        """A bound service-account token for one pod (the TokenRequest API)."""
        result = await self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": seconds,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": pod,
                        "uid": pod_uid,
                    },
                },
            },
        )
        token: str = result["status"]["token"]
        return token

    async def post_event(self, namespace: str, event: dict[str, Any]) -> None:
        await self.request("POST", f"/api/v1/namespaces/{namespace}/events", event)
