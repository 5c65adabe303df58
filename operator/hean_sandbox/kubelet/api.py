"""A minimal async client for the few Kubernetes API calls the pod runner makes.

The pod runner plays kubelet against any apiserver (the sandbox's emulator or
a real one), so it speaks plain REST over aiohttp: list and watch pods, read
ConfigMaps and Secrets, patch pod status, and finish a pod's deletion.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class KubeApi:
    def __init__(self, session: aiohttp.ClientSession, server: str, token: str | None) -> None:
        self._session = session
        self._server = server.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def _json(
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
            method, self._server + path, data=data, headers=headers, params=params
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise ApiError(response.status, text[:300])
            return json.loads(text) if text else None

    async def list_pods(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", "/api/v1/pods")
        return result

    async def watch_pods(self, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
        }
        async with self._session.get(
            self._server + "/api/v1/pods",
            params=params,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as response:
            if response.status >= 400:
                raise ApiError(response.status, (await response.text())[:300])
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._json("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._json(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )

    async def finish_pod_deletion(self, namespace: str, name: str, uid: str) -> None:
        """What a kubelet does once a pod's containers are gone: delete it for good."""
        try:
            await self._json(
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
