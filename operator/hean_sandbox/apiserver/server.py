"""The HTTP front: aiohttp routes speaking the Kubernetes REST protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import discovery, openapi, protobuf, tables
from .errors import ApiError, bad_request, status_object
from .kubeconfig import kubeconfig
from .operations import Api
from .resources import ResourceInfo
from .selectors import FieldSelector, LabelSelector
from .store import Store
from .watch import WatchFeed

JsonDict = dict[str, Any]
log = logging.getLogger(__name__)

_PUBLIC_PATHS = {"/version", "/healthz", "/livez", "/readyz"}


@dataclass
class Target:
    """What a resource URL points at."""

    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str
    watch_path: bool = False  # the legacy /api/v1/watch/... form


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _json(
    body: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": content_type, **(headers or {})},
    )


def _error(exc: ApiError) -> web.Response:
    return _json(exc.status(), exc.code)


class ApiServer:
    """An in-process Kubernetes API server emulator over real HTTP.

    Usage::

        server = ApiServer(host="127.0.0.1", port=0)
        await server.start()
        server.write_kubeconfig(path)
        ...
        await server.stop()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        history_size: int = 10_000,
        bookmark_interval: float = 60.0,
        node_name: str | None = "sandbox",
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.store = Store(history_size=history_size)
        self.api = Api(self.store, node_name=node_name)
        self.api.bootstrap()
        self._runner: web.AppRunner | None = None
        self._feeds: set[WatchFeed] = set()
        self._feeds_changed = asyncio.Event()
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a watch handler ends as soon as its client disconnects.
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=1.0,
            handler_cancellation=True,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._stopping = True
        for feed in list(self._feeds):
            feed.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def active_watches(self, resource: str | None = None) -> int:
        """How many watch streams are open (of one resource plural, if given)."""
        return sum(1 for f in self._feeds if resource is None or f.info.plural == resource)

    async def wait_for_watchers(
        self, count: int = 1, *, resource: str | None = None, within: float = 10.0
    ) -> None:
        """Wait until at least `count` watch streams (of `resource`) are open."""

        async def reached() -> None:
            while self.active_watches(resource) < count:
                self._feeds_changed.clear()
                await self._feeds_changed.wait()

        await asyncio.wait_for(reached(), within)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(kubeconfig(self.url, token=self.token, namespace=namespace))

    def load_crds(self, paths: Iterable[Path]) -> list[str]:
        """Register (create or replace) the CRDs in these YAML files; returns their names."""
        crd_info = self.store.registry.get(
            "apiextensions.k8s.io", "v1", "customresourcedefinitions"
        )
        assert crd_info is not None
        names = []
        for path in paths:
            for doc in yaml.safe_load_all(Path(path).read_text()):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                name = doc["metadata"]["name"]
                existing = self.store.get(
                    ("apiextensions.k8s.io", "customresourcedefinitions"), None, name
                )
                if existing is None:
                    self.api.create(crd_info, None, doc, actor="sandbox")
                else:
                    doc["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                    self.api.update(crd_info, None, name, doc, actor="sandbox")
                names.append(name)
        return names

    # -- routing -------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            self._authenticate(request)
            return await self._route(request)
        except ApiError as exc:
            return _error(exc)
        except Exception as exc:  # the apiserver never answers with a bare 500 page
            log.exception("internal error serving %s %s", request.method, request.path)
            return _json(
                status_object(
                    code=500, reason="InternalError", message=f"Internal error occurred: {exc!r}"
                ),
                500,
            )

    def _authenticate(self, request: web.Request) -> None:
        if self.token is None or request.path in _PUBLIC_PATHS:
            return
        header = request.headers.get("Authorization", "")
        if not secrets.compare_digest(header, f"Bearer {self.token}"):
            raise ApiError(401, "Unauthorized", reason="Unauthorized")

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        accept = request.headers.get("Accept", "")
        registry = self.store.registry
        if request.method != "GET" and (
            len(parts) < 2
            or parts[0] not in ("api", "apis")
            or (parts[0] == "apis" and len(parts) < 3)
        ):
            raise ApiError(
                405,
                f"the server does not allow this method on the requested "
                f"resource ({request.method} {path})",
                reason="MethodNotAllowed",
            )
        if path == "/version":
            return _json(discovery.version_info())
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/":
            return _json(
                {
                    "paths": sorted(
                        {
                            "/api",
                            "/api/v1",
                            "/apis",
                            "/version",
                            "/healthz",
                            *(f"/apis/{g}" for g in registry.groups() if g),
                        }
                    )
                }
            )
        if parts[0] == "openapi":
            return self._openapi(parts)
        if parts == ["api"]:
            version = discovery.aggregated_version(accept)
            if version:
                return self._aggregated(legacy=True, version=version)
            return _json(discovery.api_versions(f"{self.host}:{self.port}"))
        if parts == ["apis"]:
            version = discovery.aggregated_version(accept)
            if version:
                return self._aggregated(legacy=False, version=version)
            return _json(discovery.api_group_list(registry))
        if parts[0] == "apis" and len(parts) == 2:
            group_doc = discovery.api_group(registry, parts[1])
            if group_doc is None:
                raise _not_found_url()
            return _json(group_doc)
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _not_found_url()
        if not rest:
            doc = discovery.resource_list(registry, group, version)
            if doc is None:
                raise _not_found_url()
            return _json(doc)
        target = self._target(group, version, rest)
        return await self._serve(request, target)

    def _openapi(self, parts: list[str]) -> web.Response:
        registry = self.store.registry
        if parts == ["openapi", "v3"]:
            return _json(openapi.root(registry))
        if len(parts) >= 4 and parts[1] == "v3":
            if parts[2] == "api" and len(parts) == 4:
                doc = openapi.group_version_doc(registry, "", parts[3])
            elif parts[2] == "apis" and len(parts) == 5:
                doc = openapi.group_version_doc(registry, parts[3], parts[4])
            else:
                doc = None
            if doc is not None:
                return _json(doc)
        raise _not_found_url()

    def _aggregated(self, *, legacy: bool, version: str) -> web.Response:
        return _json(
            discovery.aggregated(self.store.registry, legacy=legacy, version=version),
            content_type=(
                f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
            ),
        )

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        registry = self.store.registry
        watch_path = False
        if rest and rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            info = registry.get(group, version, rest[2])
            if info is not None and info.namespaced:
                namespace, rest = rest[1], rest[2:]
        info = registry.get(group, version, rest[0]) if rest else None
        if info is None or len(rest) > 3:
            raise _not_found_url()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        allowed_subs = set(info.subresources) | (
            {"finalize"} if info.plural == "namespaces" and not info.group else set()
        )
        if sub and sub not in allowed_subs:
            raise _not_found_url()
        return Target(info, namespace, name, sub, watch_path)

    # -- resource requests ---------------------------------------------------------

    async def _serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        q = request.query
        info, method = target.info, request.method
        accept = request.headers.get("Accept", "")
        if info.namespaced and target.namespace is None and target.name is not None:
            raise _not_found_url()
        field_validation = _field_validation(q.get("fieldValidation"))
        dry_run = bool(q.getall("dryRun", []))
        if method == "GET":
            if target.watch_path or _flag(q.get("watch")):
                return await self._watch(request, target)
            if target.name is None:
                return self._list(request, target)
            if target.subresource == "log":
                return web.Response(text="", content_type="text/plain")
            obj = self.api.get(info, target.namespace, target.name)
            if tables.wants_table(accept):
                return _json(
                    tables.table(
                        info,
                        [obj],
                        include_object=q.get("includeObject", "Metadata"),
                        list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                    )
                )
            return _json(obj)
        if method == "POST":
            body = await _body(request)
            if target.name is None:
                result = self.api.create(
                    info, target.namespace, body, field_validation=field_validation, dry_run=dry_run
                )
                return _json(result.body, result.code, _warnings(result.warnings))
            if target.subresource == "binding" and target.namespace is not None:
                node = ((body or {}).get("target") or {}).get("name")
                if not node:
                    raise bad_request("binding target name is required")
                self.api.bind(info, target.namespace, target.name, str(node))
                return _json(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "code": 201,
                    },
                    201,
                )
            raise _method_not_allowed(method, request.path)
        if method == "PUT" and target.name is not None:
            body = await _body(request)
            result = self.api.update(
                info,
                target.namespace,
                target.name,
                body,
                subresource=target.subresource,
                field_validation=field_validation,
                dry_run=dry_run,
            )
            return _json(result.body, result.code, _warnings(result.warnings))
        if method == "PATCH" and target.name is not None:
            raw = await request.read()
            result = self.api.patch(
                info,
                target.namespace,
                target.name,
                request.headers.get("Content-Type", ""),
                raw,
                subresource=target.subresource,
                field_validation=field_validation,
                field_manager=q.get("fieldManager"),
                dry_run=dry_run,
            )
            return _json(result.body, result.code, _warnings(result.warnings))
        if method == "DELETE":
            options = await _delete_options(request)
            if target.name is None:
                items = self.api.delete_collection(
                    info,
                    target.namespace,
                    LabelSelector.parse(q.get("labelSelector")),
                    FieldSelector.parse(q.get("fieldSelector"), info),
                    options,
                    dry_run=dry_run,
                )
                return _json(
                    {
                        "kind": f"{info.kind}List",
                        "apiVersion": info.api_version,
                        "metadata": {"resourceVersion": str(self.store.resource_version)},
                        "items": items,
                    }
                )
            if target.subresource:
                raise _method_not_allowed(method, request.path)
            result = self.api.delete(info, target.namespace, target.name, options, dry_run=dry_run)
            return _json(result.body, result.code)
        raise _method_not_allowed(method, request.path)

    def _list(self, request: web.Request, target: Target) -> web.Response:
        q = request.query
        info = target.info
        labels = LabelSelector.parse(q.get("labelSelector"))
        fields = FieldSelector.parse(q.get("fieldSelector"), info)
        items, rv = self.api.list_items(info, target.namespace, labels, fields)
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(
                tables.table(
                    info,
                    items,
                    include_object=q.get("includeObject", "Metadata"),
                    list_meta={"resourceVersion": rv},
                )
            )
        if not info.custom:
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return _json(
            {
                "kind": f"{info.kind}List",
                "apiVersion": info.api_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        q = request.query
        info = target.info
        fields = FieldSelector.parse(q.get("fieldSelector"), info)
        if target.name is not None:
            fields = FieldSelector((*fields.terms, ("metadata.name", "=", target.name)))
        feed = WatchFeed(
            self.api, info, target.namespace, LabelSelector.parse(q.get("labelSelector")), fields
        )
        bookmarks = _flag(q.get("allowWatchBookmarks"))
        send_initial = _flag(q.get("sendInitialEvents"))
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        include = q.get("includeObject", "Metadata")
        timeout = _timeout(q.get("timeoutSeconds"))
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
        )
        try:
            feed.start(q.get("resourceVersion"), send_initial=send_initial)
        except ApiError as exc:
            if exc.code != 410:
                raise
            await response.prepare(request)
            await _send(response, {"type": "ERROR", "object": exc.status()})
            await response.write_eof()
            return response
        self._feeds.add(feed)
        self._feeds_changed.set()
        await response.prepare(request)
        first_table = True
        deadline = time.monotonic() + timeout if timeout is not None else None
        next_bookmark = time.monotonic() + self.bookmark_interval
        try:
            while not self._stopping:
                if send_initial and bookmarks and feed.idle():
                    await _send(response, self._bookmark(info, initial_end=True))
                    send_initial = False
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait = next_bookmark - now if bookmarks else None
                if deadline is not None:
                    wait = min(wait, deadline - now) if wait is not None else deadline - now
                event = await feed.next(max(wait, 0.0) if wait is not None else None)
                if event is None:
                    if feed.closed or self._stopping:
                        break
                    if bookmarks and time.monotonic() >= next_bookmark and feed.idle():
                        await _send(response, self._bookmark(info))
                        next_bookmark = time.monotonic() + self.bookmark_interval
                    continue
                obj: JsonDict = event.object
                if as_table:
                    obj = tables.table(
                        info,
                        [obj],
                        include_object=include,
                        headers=first_table,
                        list_meta={"resourceVersion": str(event.resource_version)},
                    )
                    first_table = False
                await _send(response, {"type": event.type, "object": obj})
        except ConnectionResetError:
            return response  # the client went away
        finally:
            feed.close()
            self._feeds.discard(feed)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    def _bookmark(self, info: ResourceInfo, *, initial_end: bool = False) -> JsonDict:
        meta: JsonDict = {"resourceVersion": str(self.store.resource_version)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {
            "type": "BOOKMARK",
            "object": {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta},
        }


# -- request helpers -------------------------------------------------------------------


def _not_found_url() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", reason="NotFound")


def _method_not_allowed(method: str, path: str) -> ApiError:
    return ApiError(
        405,
        f"the server does not allow this method on the requested resource ({method} {path})",
        reason="MethodNotAllowed",
    )


def _field_validation(value: str | None) -> str:
    if value in (None, ""):
        return "Warn"
    if value not in ("Ignore", "Warn", "Strict"):
        raise bad_request(f"fieldValidation must be one of Ignore, Warn, Strict; got {value}")
    return str(value)


def _timeout(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(str(value))
    except ValueError as exc:
        raise bad_request(f"invalid timeoutSeconds: {value}") from exc


def _warnings(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    return {"Warning": ", ".join(f"299 - {json.dumps(w)}" for w in warnings)}


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    media = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if media == "application/vnd.kubernetes.protobuf":
        return protobuf.decode(raw)
    try:
        if media in ("application/yaml", "application/x-yaml", "text/yaml"):
            return yaml.safe_load(raw.decode() or "null")
        return json.loads(raw.decode() or "null")
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from exc


async def _delete_options(request: web.Request) -> JsonDict:
    options: JsonDict = {}
    raw = await request.read()
    if raw.strip():
        try:
            decoded = json.loads(raw.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request(f"invalid DeleteOptions: {exc}") from exc
        if isinstance(decoded, dict):
            options.update(decoded)
    q = request.query
    if "gracePeriodSeconds" in q:
        try:
            options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        except ValueError as exc:
            raise bad_request(f"invalid gracePeriodSeconds: {q['gracePeriodSeconds']}") from exc
    if "propagationPolicy" in q:
        options["propagationPolicy"] = q["propagationPolicy"]
    if "orphanDependents" in q:
        options["orphanDependents"] = _flag(q["orphanDependents"])
    return options


async def _send(response: web.StreamResponse, event: JsonDict) -> None:
    await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
