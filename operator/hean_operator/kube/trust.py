"""Watch the trust ConfigMap: the one object in the operator's namespace that says
which keys may sign LiveApprovals, and how many must.

A plain list + watch with a field selector on the object's name (not a kopf
handler): kopf would list every ConfigMap of the namespace, and the chart grants
the operator list/watch on this one name only. The watch runs in a daemon thread
(the official client blocks) and hands each new version of the data to a callback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, cast

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("hean.operator.trust")

TrustFiles = dict[str, str] | None  # the ConfigMap's data; None: it does not exist
WATCH_TIMEOUT = 60  # seconds a watch request lasts before it is renewed
RETRY_DELAY = 2.0


class TrustWatcher:
    def __init__(
        self,
        namespace: str,
        name: str,
        on_change: Callable[[TrustFiles], None],
        api_client: client.ApiClient | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self._on_change = on_change
        self._core = client.CoreV1Api(api_client or client.ApiClient())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._version = ""

    def read(self) -> TrustFiles:
        """The ConfigMap's data now (and remember where the watch resumes)."""
        found = self._core.list_namespaced_config_map(
            self.namespace, field_selector=f"metadata.name={self.name}"
        )
        self._version = str(getattr(found.metadata, "resource_version", "") or "")
        if not found.items:
            return None
        return dict(found.items[0].data or {})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trust-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch_once()
            except ApiException as exc:
                if exc.status == 410:  # too old a resourceVersion: list again
                    self._relist()
                    continue
                log.warning("trust ConfigMap watch failed: %s %s", exc.status, exc.reason)
                self._stop.wait(RETRY_DELAY)
                self._relist()
            except Exception as exc:  # the connection dropped: list again, then watch
                log.warning("trust ConfigMap watch failed: %s", type(exc).__name__)
                self._stop.wait(RETRY_DELAY)
                self._relist()

    def _relist(self) -> None:
        if self._stop.is_set():
            return
        try:
            self._on_change(self.read())
        except Exception as exc:
            log.warning("trust ConfigMap read failed: %s", type(exc).__name__)

    def _watch_once(self) -> None:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        events = stream.stream(  # type: ignore[no-untyped-call]
            self._core.list_namespaced_config_map,
            self.namespace,
            field_selector=f"metadata.name={self.name}",
            resource_version=self._version,
            timeout_seconds=WATCH_TIMEOUT,
        )
        for event in events:
            if self._stop.is_set():
                stream.stop()  # type: ignore[no-untyped-call]
                return
            kind = event["type"]
            obj = cast(Any, event["object"])
            if kind == "ERROR":  # the client raises for 410 itself; anything else: relist
                code = obj.get("code") if isinstance(obj, dict) else None
                raise ApiException(status=int(code or 500))
            self._version = str(obj.metadata.resource_version or self._version)
            if kind == "DELETED":
                self._on_change(None)
            elif kind in ("ADDED", "MODIFIED"):
                self._on_change(dict(obj.data or {}))
