"""The plugin's DeskClient as the console's client, plus the TradingEngine watch.

The DeskClient returns typed views (EngineView, KubeEvent, ApprovalView); the
console renders from the objects' own fields, so this adapter hands it the
objects (EngineView.raw) and plain mappings. It adds what only the console
needs: a Kubernetes watch of TradingEngines, with the same credentials.

A Backtest's report is read through a reader pod (hean_desk.report_reader),
which the console keeps while it runs (one per Backtest: the next read, of
that run or another of its sweep, is one proxy request) and deletes when it
stops.

Scope: every namespace when the user may list TradingEngines cluster-wide,
else the kubeconfig context's namespace (a user whose RBAC is one namespace
still gets a console of that namespace rather than a refusal). `namespaces`
names the scope instead: the chart's in-cluster console is given the
operator's watched namespaces, because its ServiceAccount may read those and
no others (one watch per namespace, merged).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from kubernetes import client, watch

from hean_contract.report import EngineReport
from hean_desk.client import ENGINES, GROUP, VERSION, DeskClient
from hean_desk.console.source import WatchEvent
from hean_desk.errors import DeskError
from hean_desk.report_reader import READY_SECONDS, ReportMissing, report_target

LOG = logging.getLogger("hean_desk.console")
WATCH_SECONDS = 300  # the API server ends the watch after this; the console starts another


class _Named(Protocol):
    @property
    def namespace(self) -> str: ...


_View = TypeVar("_View", bound=_Named)


class DeskSource:
    """ConsoleClient over a DeskClient."""

    def __init__(self, desk: DeskClient, namespaces: Sequence[str] = ()) -> None:
        self.desk = desk
        self._custom = client.CustomObjectsApi(desk.api)
        # None: all namespaces (until a refusal scopes it to the context's)
        self._scopes: tuple[str, ...] | None = tuple(dict.fromkeys(namespaces)) or None
        self._scoped = bool(namespaces)
        # (namespace, Backtest, its report directory) -> the reader pod serving it
        self._readers: dict[tuple[str, str, str], str] = {}
        self._readers_lock = threading.Lock()

    def _in_scope(
        self, asked: str | None, read: Callable[[str | None], list[_View]], *, narrow: bool
    ) -> list[_View]:
        """`read` of the namespace asked for, else of every namespace in scope.

        Unscoped, all namespaces at once; when the user is refused that, the context's
        namespace, from then on if `narrow` (the engines decide the console's scope),
        else for this read only."""
        if asked is not None:
            return read(asked)
        scopes = self._scopes
        if not self._scoped:
            try:
                return read(None)
            except DeskError as exc:
                if not str(exc).startswith("forbidden"):
                    raise
                # no cluster-wide list: the context's namespace is what this user sees
                scopes = (self.desk.default_namespace,)
                if narrow:
                    self._scopes, self._scoped = scopes, True
        return [view for namespace in scopes or () for view in read(namespace)]

    def list_engines(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [view.raw for view in self._in_scope(namespace, self.desk.list_engines, narrow=True)]

    def get_engine(self, namespace: str, name: str) -> dict[str, Any]:
        return self.desk.get_engine(namespace, name).raw

    def engine_report(self, namespace: str, name: str) -> EngineReport:
        return self.desk.engine_report(namespace, name)

    def engine_history(
        self,
        namespace: str,
        name: str,
        what: str,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return self.desk.engine_history(
            namespace, name, what, since=since, until=until, limit=limit
        )

    def patch_spec(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.desk.patch_spec(namespace, name, patch).raw

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [
            {
                "lastTimestamp": event.time,
                "type": event.type,
                "reason": event.reason,
                "message": event.message,
                "count": event.count,
            }
            for event in self.desk.events(namespace, name)
        ]

    def logs(self, namespace: str, name: str, tail: int = 200) -> str:
        return self.desk.logs(namespace, name, tail)

    def list_approvals(self, namespace: str | None = None) -> list[dict[str, Any]]:
        views = self._in_scope(namespace, self.desk.list_approvals, narrow=False)
        return [
            {
                "metadata": {"name": view.name, "namespace": view.namespace},
                "spec": {
                    "engineRef": {"name": view.engine},
                    "notBefore": view.not_before,
                    "expiresAt": view.expires_at,
                    "signatures": [{"keyId": key} for key in view.signers],
                },
                "status": (
                    {"valid": view.valid, "reason": view.reason, "message": view.message}
                    if view.valid is not None
                    else {}
                ),
            }
            for view in views
        ]

    def list_backtests(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            view.raw for view in self._in_scope(namespace, self.desk.list_backtests, narrow=False)
        ]

    def get_backtest(self, namespace: str, name: str) -> dict[str, Any]:
        return self.desk.get_backtest(namespace, name).raw

    def backtest_report(self, namespace: str, name: str, run: int | None = None) -> bytes:
        view = self.desk.get_backtest(namespace, name)
        target = report_target(view, run)
        key = (namespace, name, target.directory)
        with self._readers_lock:  # one reader pod per Backtest, even with two tabs
            pod = self._readers.get(key)
            if pod is not None:
                try:
                    return self.desk.read_report_file(target, pod)
                except ReportMissing:
                    raise
                except DeskError as exc:  # the pod ended (idle, deadline, deleted): a new one
                    LOG.info("reader pod %s/%s gone (%s): starting another", namespace, pod, exc)
                    self._readers.pop(key, None)
                    self._delete_quietly(namespace, pod)
            pod = self.desk.start_report_reader(target)
            self._readers[key] = pod
            try:
                self.desk.wait_report_reader(namespace, pod, READY_SECONDS)
                return self.desk.read_report_file(target, pod)
            except DeskError:
                self._readers.pop(key, None)
                self._delete_quietly(namespace, pod)
                raise

    def close_report_readers(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, {}
        for (namespace, _, _), pod in readers.items():
            self._delete_quietly(namespace, pod)

    def _delete_quietly(self, namespace: str, pod: str) -> None:
        try:
            self.desk.delete_pod(namespace, pod)
        except DeskError as exc:  # it ends by itself (idle exit, activeDeadlineSeconds)
            LOG.warning("reader pod %s/%s not deleted: %s", namespace, pod, exc)

    def watch_engines(self) -> Iterator[WatchEvent]:
        """ADDED/MODIFIED/DELETED TradingEngines until the API server ends the watch
        (with several namespaces in scope: until it ends any of their watches)."""
        if self._scopes is None:
            yield from self._watch(None)
        elif len(self._scopes) == 1:
            yield from self._watch(self._scopes[0])
        else:
            yield from self._merged(self._scopes)

    def _watch(
        self, namespace: str | None, stop: threading.Event | None = None
    ) -> Iterator[WatchEvent]:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        if namespace is None:
            method: Any = self._custom.list_cluster_custom_object
            args: tuple[str, ...] = (GROUP, VERSION, ENGINES)
        else:
            method = self._custom.list_namespaced_custom_object
            args = (GROUP, VERSION, namespace, ENGINES)
        try:
            events = stream.stream(  # type: ignore[no-untyped-call]
                method, *args, timeout_seconds=WATCH_SECONDS
            )
            for event in events:
                if stop is not None and stop.is_set():
                    return
                kind, obj = event.get("type"), event.get("object")
                if kind == "ERROR" or not isinstance(obj, dict):
                    return  # e.g. 410 Gone: the console lists and watches again
                yield str(kind), obj
        finally:
            stream.stop()  # type: ignore[no-untyped-call]

    def _merged(self, namespaces: Sequence[str]) -> Iterator[WatchEvent]:
        """One watch per namespace, each in a thread, their events in arrival order.
        The first to end ends them all: the console then lists and watches again."""
        events: queue.Queue[WatchEvent | None] = queue.Queue()
        stop = threading.Event()

        def pump(namespace: str) -> None:
            try:
                for event in self._watch(namespace, stop):
                    events.put(event)
            except Exception as exc:  # refused or unreachable: the console restarts all
                LOG.warning("TradingEngine watch of %s failed: %s", namespace, exc)
            finally:
                events.put(None)

        threads = [
            threading.Thread(target=pump, args=(ns,), name=f"engine-watch-{ns}", daemon=True)
            for ns in namespaces
        ]
        for thread in threads:
            thread.start()
        try:
            while (event := events.get()) is not None:
                yield event
        finally:
            stop.set()  # the others end at their next event or their timeout
