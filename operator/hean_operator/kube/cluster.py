"""The API calls the operator makes, behind a protocol.

Handlers and reconcilers depend on `Cluster`, not on the client library, so
the RBAC the chart grants can be checked against this one list of calls, and
tests can count writes. `KubernetesCluster` is the real implementation over
the official client (blocking; handlers run it in kopf's thread pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hean_engine.model.timefmt import now_iso
from hean_operator.api.messages import truncate_message
from hean_operator.api.resources import APPROVALS, BACKTESTS, ENGINES, GROUP, VERSION
from hean_operator.kube import reporting

# Kinds the operator manages, and the verbs it uses on each (docs/operator.md
# and the chart's RBAC are kept in step with this table).
VERBS: dict[str, tuple[str, ...]] = {
    "configmaps": ("get", "create", "update"),
    "secrets": ("get", "create"),
    "services": ("get", "create"),
    # list/watch: the operator watches engine pods to poll an engine the moment
    # its pod turns Ready, instead of at the next timer tick.
    "pods": ("get", "create", "delete", "list", "watch"),
    ENGINES: ("get",),
    "tradingengines/status": ("patch",),
    # LiveApprovals: listed once at start-up (so that no running engine is judged
    # before its approvals are known), then watched; the verdict goes to status.
    APPROVALS: ("list", "watch"),
    f"{APPROVALS}/status": ("patch",),
    # Events about approvals, posted from timers and watches outside kopf's handlers.
    "events": ("create",),
    # Backtests (kube/backtests.py): each runs as a Job, watched (list/watch) so
    # that status follows it; its pods (listed above) carry the runs' summaries.
    "jobs": ("get", "create", "list", "watch"),
    BACKTESTS: ("get",),
    f"{BACKTESTS}/status": ("patch",),
}

# The trust ConfigMap: one object in the operator's own namespace, read with a
# field selector on its name, so the chart grants these verbs on that name only.
TRUST_VERBS: dict[str, tuple[str, ...]] = {"configmaps": ("list", "watch")}


class Conflict(Exception):
    """The object already exists (or changed under us): retry shortly."""


class Cluster(Protocol):
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, kind: str, namespace: str, name: str) -> None: ...

    def patch_engine_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...

    def get_engine(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list_approvals(self, namespace: str | None) -> list[dict[str, Any]]: ...

    def patch_approval_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...

    def create_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None: ...


class KubernetesCluster:
    def __init__(
        self, api_client: client.ApiClient | None = None, *, reporting_instance: str | None = None
    ) -> None:
        self._api = api_client or client.ApiClient()
        self._instance = reporting_instance or reporting.reporting_instance()
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)

    def _call(self, verb: str, kind: str, **kwargs: Any) -> Any:
        method = getattr(self._core, f"{verb}_namespaced_{_SINGULAR[kind]}")
        try:
            result = method(**kwargs)
        except ApiException as exc:
            if exc.status == 404 and verb in ("read", "delete"):
                return None
            if exc.status == 409:
                raise Conflict(f"{verb} {kind}: {exc.reason}") from None
            raise
        return self._api.sanitize_for_serialization(result)  # type: ignore[no-untyped-call]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call("read", kind, name=name, namespace=namespace)
        return found

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self._call(
            "create", kind, namespace=body["metadata"]["namespace"], body=body
        )
        return created

    def replace(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        replaced: dict[str, Any] = self._call(
            "replace", kind, name=meta["name"], namespace=meta["namespace"], body=body
        )
        return replaced

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._call("delete", kind, name=name, namespace=namespace)

    def get_engine(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = cast(
                dict[str, Any],
                self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, ENGINES, name),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def patch_engine_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, ENGINES, name, {"status": status}
        )

    def list_approvals(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every LiveApproval in `namespace` (None: in all namespaces)."""
        if namespace is None:
            found = self._custom.list_cluster_custom_object(GROUP, VERSION, APPROVALS)
        else:
            found = self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, APPROVALS)
        items = cast(dict[str, Any], found).get("items") or []
        for item in items:  # list items carry no apiVersion/kind; Events need them
            item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
            item.setdefault("kind", "LiveApproval")
        return list(items)

    def patch_approval_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, APPROVALS, name, {"status": status}
            )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report on
                raise

    def create_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """A core v1 Event about `involved`, as kopf posts them (same reporting controller)."""
        meta = involved["metadata"]
        now = now_iso()
        body: Any = {  # the client takes a plain dict as well as its model
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": truncate_message(message),
            "source": {"component": reporting.REPORTING_COMPONENT},
            "reportingComponent": reporting.REPORTING_COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._core.create_namespaced_event(meta["namespace"], body)


_SINGULAR = {
    "configmaps": "config_map",
    "secrets": "secret",
    "services": "service",
    "pods": "pod",
}
