"""The API calls the operator makes, behind a protocol.

Handlers and reconcilers depend on `Cluster`, not on the client library, so
the RBAC the chart grants can be checked against this one list of calls, and
tests can count writes. `KubernetesCluster` is the real implementation over
the official client (blocking; handlers run it in kopf's thread pool).
"""

from __future__ import annotations

import json
from typing import Any, Protocol, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hean_operator.api.resources import APPROVALS, BACKTESTS, ENGINES, GROUP, VERSION

# Kinds the operator manages, and the verbs it uses on each (docs/operator.md
# and the chart's RBAC are kept in step with this table).
VERBS: dict[str, tuple[str, ...]] = {
    "configmaps": ("get", "create", "update"),
    "secrets": ("get", "create"),
    # list/watch: the operator watches engine pods to poll an engine the moment
    # its pod turns Ready, instead of at the next timer tick.
    "pods": ("get", "create", "delete", "list", "watch"),
    # The history's claim is only created (never changed or deleted: it goes with
    # its engine through the garbage collector).
    "persistentvolumeclaims": ("get", "create"),
    # get: the status writer reads the engine again when its write met a newer one (409)
    ENGINES: ("get",),
    # patch, with metadata.resourceVersion in the patch: a write over a newer status
    # is refused (409) and recomputed (status/writer.py)
    "tradingengines/status": ("patch",),
    # LiveApprovals: kopf's index of them (listed and watched; kopf populates the
    # index before any handler runs); the verdict goes to their status.
    APPROVALS: ("list", "watch"),
    f"{APPROVALS}/status": ("patch",),
    # Events, through kopf's poster (kopf.info/kopf.warn), the operator's name on them.
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

    def create(self, kind: str, body: dict[str, Any]) -> None:
        """Create `body`; raises Conflict (409) when its name exists."""
        ...

    def replace(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, kind: str, namespace: str, name: str) -> None: ...

    def get_engine(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def patch_engine_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any] | None:
        """Merge `status` into the engine's: the engine as written, None if it is gone.

        With `resource_version` the write applies only to that version of the
        engine: raises Conflict (409) when it has changed since.
        """
        ...

    def patch_approval_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...


class KubernetesCluster:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self._api = api_client or client.ApiClient()
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)

    def _call(self, verb: str, kind: str, *, parse: bool = True, **kwargs: Any) -> Any:
        method = getattr(self._core, f"{verb}_namespaced_{_SINGULAR[kind]}")
        try:
            # The answer as JSON, not as the client's model objects: the operator
            # works on plain dicts, and building then flattening a Pod model costs
            # milliseconds of CPU per call (a third of the operator's CPU when a
            # hundred engines are created at once on two cores).
            response = method(**kwargs, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404 and verb in ("read", "delete"):
                return None
            if exc.status == 409:
                raise Conflict(f"{verb} {kind}: {exc.reason}") from None
            raise
        data = response.data
        return json.loads(data) if data and parse else None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call("read", kind, name=name, namespace=namespace)
        return found

    def create(self, kind: str, body: dict[str, Any]) -> None:
        # The answer (the whole object, a pod's the largest) is not decoded: no caller
        # needs it, and decoding it was a tenth of the operator's CPU in its threads
        # when a hundred engines are created at once.
        self._call("create", kind, namespace=body["metadata"]["namespace"], body=body, parse=False)

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

    def patch_engine_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any] | None:
        # A JSON merge patch: a resourceVersion in it is a precondition of the write.
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            written = self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, ENGINES, name, body
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 409:
                raise Conflict(f"patch {ENGINES}/status: {exc.reason}") from None
            raise
        return cast(dict[str, Any], written)

    def patch_approval_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, APPROVALS, name, {"status": status}
            )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report on
                raise


_SINGULAR = {
    "configmaps": "config_map",
    "secrets": "secret",
    "pods": "pod",
    "persistentvolumeclaims": "persistent_volume_claim",
}
