"""DeskClient: TradingEngines, their reports and history, with the user's own kubeconfig.

Everything goes through the Kubernetes API server as the user the kubeconfig
names (client certificate, token, exec plugin: whatever kubectl would use),
so RBAC decides what the desk may do and no new credential exists:

- the objects: TradingEngines, Backtests, LiveApprovals, Events, the engine
  pod's log;
- an engine's own API (`GET /status`, the history routes, `POST /test-order`)
  through the API server's pod proxy,
  `/api/v1/namespaces/NS/pods/NAME-engine:8080/proxy/PATH` (RBAC: `get` or
  `create` on `pods/proxy`). The engine wants its control token for anything
  beyond /status's health: the desk reads it from the engine's Secret
  `NAME-control` with the user's RBAC (`get` on `secrets`) and sends it as
  `X-Hean-Token`, because the API server removes the Authorization header of
  every request it authenticated. The token stays in this object's memory: it
  is never printed, logged or put in an error message.

- a Backtest's HTML report, which is on its output volume: a short-lived
  reader pod (hean_desk.report_reader) serves it, read through the same pod
  proxy (RBAC: `get` on `jobs` for the image the Backtest ran, `create`,
  `list`/`watch` and `delete` on `pods`, `get` on `pods/proxy`).

A refusal by RBAC becomes a DeskError that says which verb on which resource
the user lacks. Methods are synchronous (the Kubernetes client is); the
console calls them from worker threads.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

from kubernetes import client, watch
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from hean_contract.report import EngineReport
from hean_contract.spec import API_VERSION
from hean_desk import report_reader
from hean_desk.errors import EXIT_USAGE, DeskError
from hean_desk.report_reader import ReportFile, ReportTarget
from hean_desk.views import HISTORY_KINDS, ApprovalView, BacktestView, EngineView, KubeEvent

GROUP, VERSION = API_VERSION.split("/")
ENGINES = "tradingengines"
APPROVALS = "liveapprovals"
BACKTESTS = "backtests"
# The engine container's HTTP port (hean_operator.builders: CONTROL_PORT, named "http").
# A pod proxy needs the number: the API server does not resolve port names for pods.
ENGINE_PORT = 8080
TOKEN_KEY = "token"  # noqa: S105 - the key's name in the Secret, not a secret
TOKEN_HEADER = "X-Hean-Token"  # noqa: S105 - a header name
PAGE_SIZE = 1000  # the engine's largest page
TIMEOUT = (5.0, 30.0)  # connect, read (seconds)


class _Named(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...


_Listed = TypeVar("_Listed", bound=_Named)


def pod_name(engine: str) -> str:
    return f"{engine}-engine"


def secret_name(engine: str) -> str:
    return f"{engine}-control"


class DeskClient:
    """One user's view of the cluster, from their kubeconfig (and optional context).

    `in_cluster=True` is the chart's read-only console: the pod's own
    ServiceAccount (its mounted token and CA) instead of a kubeconfig, and the
    pod's namespace as the default one.
    """

    def __init__(
        self, kubeconfig: str | None = None, context: str | None = None, *, in_cluster: bool = False
    ) -> None:
        configuration = client.Configuration()
        if in_cluster:
            self.default_namespace = _load_in_cluster(configuration, kubeconfig, context)
        else:
            self.default_namespace = _load_kubeconfig(configuration, kubeconfig, context)
        self.api = client.ApiClient(configuration)
        self._core = client.CoreV1Api(self.api)
        self._custom = client.CustomObjectsApi(self.api)
        self._tokens: dict[tuple[str, str], str] = {}

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    # -- TradingEngines -------------------------------------------------------------

    def list_engines(self, namespace: str | None) -> list[EngineView]:
        """The engines in `namespace` (None: every namespace the user may list), by name."""
        return self._list(ENGINES, namespace, EngineView.from_object)

    def get_engine(self, namespace: str, name: str) -> EngineView:
        with _translated("get", "tradingengines.hean.io", namespace, engine=name):
            found = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, ENGINES, name
            )
        return EngineView.from_object(cast(dict[str, Any], found))

    def patch_spec(self, namespace: str, name: str, patch: Mapping[str, Any]) -> EngineView:
        """A JSON merge patch of the engine's spec (pause, resume, halt), as `kubectl patch`."""
        body = {"spec": dict(patch)}
        with _translated("patch", "tradingengines.hean.io", namespace, engine=name):
            text = self._raw(
                "PATCH",
                f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{ENGINES}/{{name}}",
                {"namespace": namespace, "name": name},
                {},
                {"Content-Type": "application/merge-patch+json"},
                body,
            )
        updated = json.loads(text)
        return EngineView.from_object(cast(dict[str, Any], updated))

    # -- Backtests ------------------------------------------------------------------------

    def list_backtests(self, namespace: str | None) -> list[BacktestView]:
        """The Backtests in `namespace` (None: every namespace the user may list), by name."""
        return self._list(BACKTESTS, namespace, BacktestView.from_object)

    def get_backtest(self, namespace: str, name: str) -> BacktestView:
        with _translated("get", "backtests.hean.io", namespace, missing=("Backtest", name)):
            found = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, BACKTESTS, name
            )
        return BacktestView.from_object(cast(dict[str, Any], found))

    def _list(
        self, plural: str, namespace: str | None, view: Callable[[dict[str, Any]], _Listed]
    ) -> list[_Listed]:
        """The `plural` objects in `namespace` (None: all namespaces) as views, by
        (namespace, name): what `list_engines` and `list_backtests` share."""
        where = namespace or "all namespaces"
        with _translated("list", f"{plural}.{GROUP}", where):
            if namespace is None:
                found = self._custom.list_cluster_custom_object(GROUP, VERSION, plural)
            else:
                found = self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural
                )
        items = cast(dict[str, Any], found).get("items") or []
        views = [view(item) for item in items]
        return sorted(views, key=lambda v: (v.namespace, v.name))

    # -- a Backtest's report, through a reader pod ---------------------------------------

    def backtest_report(
        self,
        namespace: str,
        name: str,
        run: int | None = None,
        timeout: float = report_reader.READY_SECONDS,
    ) -> ReportFile:
        """Read a Backtest's report: start a reader pod, wait for it, read, delete it.

        DeskError (exit status 2) when the Backtest has no report to read."""
        view = self.get_backtest(namespace, name)
        target = report_reader.report_target(view, run)
        pod = self.start_report_reader(target)
        cleanup: str | None = None
        try:
            self.wait_report_reader(namespace, pod, timeout)
            content = self.read_report_file(target, pod)
        finally:
            try:
                self.delete_pod(namespace, pod)
            except DeskError as exc:
                cleanup = exc.message
        return ReportFile(view, target, content, pod, cleanup)

    def start_report_reader(self, target: ReportTarget) -> str:
        """Create the reader pod for `target` (from its Backtest's Job); returns its name."""
        ns = target.namespace
        with _translated(
            "get",
            "jobs.batch",
            ns,
            missing=("Job", target.job),
            needed="the image the Backtest ran, to read its report with",
        ):
            job = json.loads(
                self._raw(
                    "GET",
                    "/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                    {"namespace": ns, "name": target.job},
                    {},
                    {},
                    None,
                )
            )
        manifest = report_reader.reader_pod(target, job)
        with _translated(
            "create",
            "pods",
            ns,
            needed=f"a short-lived pod that reads the report from claim {target.claim}",
        ):
            created = json.loads(
                self._raw(
                    "POST",
                    "/api/v1/namespaces/{namespace}/pods",
                    {"namespace": ns},
                    {},
                    {"Content-Type": "application/json"},
                    manifest,
                )
            )
        return str(created["metadata"]["name"])

    def wait_report_reader(self, namespace: str, pod: str, timeout: float) -> None:
        """Until the reader pod is Ready (a watch of that pod); DeskError when it will not be,
        or is not within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        field = f"metadata.name={pod}"
        seen: dict[str, Any] = {}
        while True:
            with _translated("list", "pods", namespace, needed="waiting for the reader pod"):
                listed = self._core.list_namespaced_pod(namespace, field_selector=field)
            items = [self._plain(p) for p in listed.items or []]
            if not items:
                raise DeskError(f"the reader pod {namespace}/{pod} was deleted before it was Ready")
            seen = items[0]
            if self._reader_done(namespace, seen):
                return
            version = listed.metadata.resource_version if listed.metadata else None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                with _translated("watch", "pods", namespace, needed="waiting for the reader pod"):
                    for event in stream.stream(  # type: ignore[no-untyped-call]
                        self._core.list_namespaced_pod,
                        namespace,
                        field_selector=field,
                        resource_version=version,
                        timeout_seconds=max(1, int(remaining)),
                    ):
                        if event.get("type") == "ERROR":
                            break  # e.g. 410 Gone: list again
                        if event.get("type") == "DELETED":
                            raise DeskError(
                                f"the reader pod {namespace}/{pod} was deleted before it was Ready"
                            )
                        seen = self._plain(event["object"])
                        if self._reader_done(namespace, seen):
                            return
                        if time.monotonic() >= deadline:
                            break
            finally:
                stream.stop()  # type: ignore[no-untyped-call]
            if time.monotonic() >= deadline:
                break
        phase = (seen.get("status") or {}).get("phase") or "Pending"
        raise DeskError(
            f"the reader pod {namespace}/{pod} was not Ready within {timeout:g} s (it is "
            f"{phase}; kubectl describe pod {pod} -n {namespace} says why)"
        )

    def _plain(self, model: Any) -> dict[str, Any]:
        """A client model as the API server's JSON (camelCase keys)."""
        plain: dict[str, Any] = self.api.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
        return plain

    @staticmethod
    def _reader_done(namespace: str, pod: Mapping[str, Any]) -> bool:
        """True when Ready; DeskError when it never will be."""
        if report_reader.is_ready(pod):
            return True
        problem = report_reader.pod_problem(pod)
        if problem is not None:
            name = (pod.get("metadata") or {}).get("name")
            raise DeskError(f"the reader pod {namespace}/{name} cannot serve the report: {problem}")
        return False

    def read_report_file(self, target: ReportTarget, pod: str) -> bytes:
        """The report file, through the API server's pod proxy to the reader pod."""
        ns = target.namespace
        try:
            return self._raw_bytes(
                "GET",
                f"/api/v1/namespaces/{{namespace}}/pods/{{pod}}:{report_reader.READER_PORT}"
                f"/proxy/{{file}}",
                {"namespace": ns, "pod": pod, "file": target.file},
                {},
                {"Accept": "text/html, */*"},
                None,
            )
        except ApiException as exc:
            message = _status_message(exc)
            if exc.status == 403:
                raise DeskError(
                    f"forbidden: your Kubernetes user may not get pods/proxy in namespace "
                    f"{ns!r} (needed to read the report through the API server): {message}"
                ) from None
            if exc.status == 404 and not message.startswith("pods "):
                raise report_reader.ReportMissing(
                    f"the report {target.path} is not on claim {target.claim} "
                    f"(the reader pod answered: {message.strip()})"
                ) from None
            if exc.status == 400 and "address not allowed" in message:
                raise DeskError(
                    f"the API server will not proxy to the reader pod {ns}/{pod}'s address "
                    "(a loopback or link-local IP); see docs/desk.md"
                ) from None
            raise DeskError(
                f"reading the report through pod {ns}/{pod} failed ({exc.status}): {message}"
            ) from None
        except HTTPError as exc:
            raise DeskError(f"the cluster is unreachable: {type(exc).__name__}") from None

    def delete_pod(self, namespace: str, pod: str) -> None:
        """Delete a reader pod (gone already is fine)."""
        try:
            with _translated("delete", "pods", namespace, needed="removing the reader pod"):
                self._core.delete_namespaced_pod(pod, namespace)
        except DeskError as exc:
            if "(404)" not in exc.message:
                raise

    # -- the engine's own API, through the pod proxy ---------------------------------

    def engine_report(self, namespace: str, name: str) -> EngineReport:
        """The engine's `GET /status`, parsed (snake_case or camelCase on the wire)."""
        payload = self._engine_get(namespace, name, "status", {})
        try:
            return EngineReport.model_validate(payload)
        except ValidationError as exc:
            raise DeskError(
                f"engine {namespace}/{name}: its /status is not a report this client reads "
                f"({exc.error_count()} problems, first: {exc.errors()[0]['loc']})"
            ) from None

    def engine_history(
        self,
        namespace: str,
        name: str,
        what: str,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of /fills, /orders, /positions, /equity or /events, oldest first.

        `since`/`until`: RFC 3339 or epoch milliseconds, [since, until). Pages are
        followed through `nextCursor` until there is none, or `limit` rows are read.
        """
        if what not in HISTORY_KINDS:
            raise DeskError(f"history: {what!r} is not one of {', '.join(HISTORY_KINDS)}")
        rows: list[dict[str, Any]] = []
        for page in self._pages(namespace, name, what, since, until, limit):
            rows.extend(page)
            if limit is not None and len(rows) >= limit:
                return rows[:limit]
        return rows

    def _pages(
        self,
        namespace: str,
        name: str,
        what: str,
        since: str | None,
        until: str | None,
        limit: int | None,
    ) -> Iterator[list[dict[str, Any]]]:
        query: dict[str, str] = {"limit": str(min(limit or PAGE_SIZE, PAGE_SIZE))}
        if since is not None:
            query["from"] = since
        if until is not None:
            query["to"] = until
        while True:
            payload = self._engine_get(namespace, name, what, query, token=True)
            items = payload.get("items") if isinstance(payload, dict) else None
            if not isinstance(items, list):
                raise DeskError(f"engine {namespace}/{name}: /{what} is not a page of items")
            yield [item for item in items if isinstance(item, dict)]
            cursor = payload.get("nextCursor")
            if not cursor:
                return
            query["cursor"] = str(cursor)

    def test_order(self, namespace: str, name: str, side: str, quantity: str) -> dict[str, Any]:
        """One market order through a paper engine's `POST /test-order` (the engine refuses
        it for a live engine too)."""
        body = {"side": side, "quantity": quantity}
        answer = self._engine_call(namespace, name, "POST", "test-order", {}, body, token=True)
        if not isinstance(answer, dict):
            raise DeskError(f"engine {namespace}/{name}: /test-order did not answer an object")
        return answer

    def _engine_get(
        self, namespace: str, name: str, path: str, query: Mapping[str, str], token: bool = False
    ) -> Any:
        return self._engine_call(namespace, name, "GET", path, query, None, token=token)

    def _engine_call(
        self,
        namespace: str,
        name: str,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Any,
        *,
        token: bool,
    ) -> Any:
        headers: dict[str, str] = {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers[TOKEN_HEADER] = self._token(namespace, name)
        verb = "get" if method == "GET" else "create"
        pod = pod_name(name)
        try:
            text = self._raw(
                method,
                f"/api/v1/namespaces/{{namespace}}/pods/{{pod}}:{ENGINE_PORT}/proxy/{path}",
                {"namespace": namespace, "pod": pod},
                query,
                headers,
                body,
            )
        except ApiException as exc:
            raise _proxy_error(exc, verb, namespace, name, path) from None
        except HTTPError as exc:
            raise DeskError(f"the cluster is unreachable: {type(exc).__name__}") from None
        try:
            return json.loads(text)
        except ValueError:
            raise DeskError(f"engine {namespace}/{name}: /{path} did not answer JSON") from None

    def _raw(
        self,
        method: str,
        path: str,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: Any,
    ) -> str:
        """One request with the kubeconfig's credentials; the body's text, or ApiException."""
        data = self._raw_bytes(method, path, path_params, query, headers, body)
        return data.decode("utf-8", errors="replace")

    def _raw_bytes(
        self,
        method: str,
        path: str,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: Any,
    ) -> bytes:
        """One request with the kubeconfig's credentials; the body's bytes, or ApiException."""
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            path_params=dict(path_params),
            query_params=list(query.items()),
            header_params={"Accept": "application/json", **headers},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=TIMEOUT)
        response.read()  # type: ignore[no-untyped-call]
        data = response.data or b""
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return bytes(data)

    def _token(self, namespace: str, name: str) -> str:
        """The engine's control token from its Secret (read once, kept in memory only)."""
        key = (namespace, name)
        if key not in self._tokens:
            secret = secret_name(name)
            with _translated(
                "get",
                f"secrets/{secret}",
                namespace,
                engine=name,
                needed="the engine's control token (for its history and test orders)",
            ):
                found = self._core.read_namespaced_secret(secret, namespace)
            encoded = (found.data or {}).get(TOKEN_KEY)
            if not encoded:
                raise DeskError(f"secret {namespace}/{secret} has no {TOKEN_KEY!r} key")
            self._tokens[key] = base64.b64decode(encoded).decode("utf-8").strip()
        return self._tokens[key]

    # -- Kubernetes Events, logs, approvals -------------------------------------------

    def events(self, namespace: str, name: str) -> list[KubeEvent]:
        """The Events about the TradingEngine (the operator's), oldest first."""
        selector = f"involvedObject.name={name},involvedObject.kind=TradingEngine"
        with _translated("list", "events", namespace):
            found = self._core.list_namespaced_event(namespace, field_selector=selector)
        events = [_event(e) for e in found.items or []]
        return sorted(events, key=lambda e: e.time)

    def logs(self, namespace: str, name: str, tail: int | None) -> str:
        """The engine container's log (the last `tail` lines; None: all of it)."""
        with _translated("get", "pods/log", namespace, engine=name):
            text = self._core.read_namespaced_pod_log(
                pod_name(name), namespace, tail_lines=tail, _request_timeout=TIMEOUT
            )
        return str(text)

    def list_approvals(self, namespace: str | None) -> list[ApprovalView]:
        """The LiveApprovals in `namespace` (None: all), soonest to expire first."""
        views = self._list(APPROVALS, namespace, ApprovalView.from_object)
        return sorted(views, key=lambda v: (v.namespace, v.expires_at, v.name))

    def create_approval(self, manifest: dict[str, Any]) -> ApprovalView:
        namespace = manifest["metadata"]["namespace"]
        with _translated("create", "liveapprovals.hean.io", namespace):
            created = self._custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, APPROVALS, manifest
            )
        return ApprovalView.from_object(cast(dict[str, Any], created))

    def approval_verdict(self, namespace: str, name: str, timeout: float) -> ApprovalView | None:
        """The LiveApproval once the operator has judged it (`status.valid` set), or None
        if it has not within `timeout` seconds. A watch on that one object, not a poll:
        the verdict is shown the moment the operator writes it."""
        deadline = time.monotonic() + timeout
        while True:
            with _translated(
                "get", "liveapprovals.hean.io", namespace, missing=("LiveApproval", name)
            ):
                current = cast(
                    dict[str, Any],
                    self._custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, APPROVALS, name
                    ),
                )
            view = ApprovalView.from_object(current)
            left = deadline - time.monotonic()
            if view.valid is not None or left <= 0:
                return view if view.valid is not None else None
            version = str((current.get("metadata") or {}).get("resourceVersion") or "")
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            with _translated("watch", "liveapprovals.hean.io", namespace):
                events = stream.stream(  # type: ignore[no-untyped-call]
                    self._custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    APPROVALS,
                    field_selector=f"metadata.name={name}",
                    resource_version=version,
                    timeout_seconds=max(1, int(left)),
                )
                for event in events:
                    obj = event.get("object")
                    if event.get("type") == "DELETED":
                        raise DeskError(
                            f"LiveApproval {name!r} in namespace {namespace!r} was deleted "
                            "before the operator judged it"
                        )
                    if not isinstance(obj, dict) or event.get("type") == "ERROR":
                        break  # an expired resourceVersion: read the object again
                    if ApprovalView.from_object(obj).valid is not None:
                        stream.stop()  # type: ignore[no-untyped-call]
                        return ApprovalView.from_object(obj)


def _load_kubeconfig(
    configuration: client.Configuration, kubeconfig: str | None, context: str | None
) -> str:
    """Loads the kubeconfig's credentials; the context's namespace (default: "default")."""
    try:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
        _, active = kube_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (kube_config.ConfigException, OSError, TypeError, ValueError) as exc:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        flag = "--context" if context else "--kubeconfig"
        raise DeskError(
            f"{flag}: no usable cluster configuration in {where}: {exc}", EXIT_USAGE
        ) from None
    if context is not None:
        contexts, _ = kube_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        active = next((c for c in contexts if c.get("name") == context), active)
    return str(((active or {}).get("context") or {}).get("namespace") or "default")


# Where Kubernetes mounts a pod's ServiceAccount (token, CA, namespace).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _load_in_cluster(
    configuration: client.Configuration, kubeconfig: str | None, context: str | None
) -> str:
    """Loads the pod's ServiceAccount credentials; the pod's namespace."""
    if kubeconfig is not None or context is not None:
        flag = "--kubeconfig" if kubeconfig is not None else "--context"
        raise DeskError(
            f"{flag}: not with --in-cluster (the pod's ServiceAccount is the identity)",
            EXIT_USAGE,
        )
    try:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kube_config.ConfigException as exc:
        raise DeskError(
            f"--in-cluster: not running in a Kubernetes pod with a ServiceAccount token: {exc}",
            EXIT_USAGE,
        ) from None
    try:
        namespace = (SERVICE_ACCOUNT_DIR / "namespace").read_text(encoding="utf-8").strip()
    except OSError:
        namespace = ""
    return namespace or "default"


def _event(event: Any) -> KubeEvent:
    moment = event.last_timestamp or event.event_time or event.first_timestamp
    if moment is None and event.metadata is not None:
        moment = event.metadata.creation_timestamp
    time = moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else ""
    return KubeEvent(
        time=time,
        type=str(event.type or ""),
        reason=str(event.reason or ""),
        message=str(event.message or ""),
        count=int(event.count or 1),
    )


class _translated:
    """Turns the Kubernetes client's errors into DeskErrors a person can act on."""

    def __init__(
        self,
        verb: str,
        resource: str,
        namespace: str,
        *,
        engine: str | None = None,
        needed: str | None = None,
        missing: tuple[str, str] | None = None,
    ) -> None:
        self.verb, self.resource, self.namespace = verb, resource, namespace
        self.engine, self.needed = engine, needed
        self.missing = missing  # (kind, name) of the object a 404 means is not there

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _: Any
    ) -> Literal[False]:
        if isinstance(exc, ApiException):
            raise self._error(exc) from None
        if isinstance(exc, HTTPError):
            raise DeskError(f"the cluster is unreachable: {type(exc).__name__}") from None
        return False

    def _error(self, exc: ApiException) -> DeskError:
        message = _status_message(exc)
        if exc.status == 404 and self.missing is not None:
            kind, name = self.missing
            return DeskError(f"no {kind} {name!r} in namespace {self.namespace!r}")
        if exc.status == 404 and self.engine is not None:
            what = "TradingEngine" if "tradingengines" in self.resource else self.resource
            return DeskError(
                f"no {what} {self.engine!r} in namespace {self.namespace!r}"
                if what == "TradingEngine"
                else f"{what} of engine {self.engine!r} not found in namespace "
                f"{self.namespace!r}: {message}"
            )
        if exc.status == 403:
            why = f" (needed for {self.needed})" if self.needed else ""
            return DeskError(
                f"forbidden: your Kubernetes user may not {self.verb} {self.resource} in "
                f"{_where(self.namespace)}{why}: {message}"
            )
        if exc.status == 401:
            return DeskError(f"the API server did not accept your credentials: {message}")
        return DeskError(f"{self.verb} {self.resource} failed ({exc.status}): {message}")


def _where(namespace: str) -> str:
    return namespace if namespace == "all namespaces" else f"namespace {namespace!r}"


def _status_message(exc: ApiException) -> str:
    """The API server's own explanation (its Status object's message), else the reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return str(exc.reason or exc.status)
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, str) and message:
            return message[:500]
    return str(exc.reason or exc.status)


def _proxy_error(exc: ApiException, verb: str, namespace: str, name: str, path: str) -> DeskError:
    """An error on the way to the engine or from it, said by who said it."""
    message = _status_message(exc)
    where = f"engine {namespace}/{name}"
    if exc.status == 403 and "pods/proxy" in message:
        return DeskError(
            f"forbidden: your Kubernetes user may not {verb} pods/proxy in namespace "
            f"{namespace!r} (needed to reach the engine's API): {message}"
        )
    if exc.status == 404:
        if message.startswith("pods ") and "not found" in message:
            return DeskError(f"{where} has no running pod ({pod_name(name)}): {message}")
        return DeskError(f"{where} has no /{path} (an engine image older than this client?)")
    if exc.status == 400 and "address not allowed" in message:
        return DeskError(
            f"{where}: the API server will not proxy to its pod's address (a loopback or "
            "link-local IP); see docs/desk.md"
        )
    if exc.status in (502, 503):
        return DeskError(f"{where} is not answering through the API server's proxy: {message}")
    if exc.status == 401:
        return DeskError(
            f"{where} refused the control token from secret {secret_name(name)} "
            "(was it just rotated? try again)"
        )
    return DeskError(f"{where}: /{path} answered {exc.status}: {message}")
