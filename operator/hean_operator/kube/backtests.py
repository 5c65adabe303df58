"""The API calls the Backtest handlers make, behind a protocol (as kube/cluster.py for engines).

Every verb used here is in `kube.cluster.VERBS`, which the chart's RBAC is
checked against.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hean_operator.api.resources import BACKTESTS, GROUP, VERSION

# The label the Job controller puts on its pods (Kubernetes >= 1.27).
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


class BacktestCluster(Protocol):
    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_configmap(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]: ...

    def get_backtest(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def patch_backtest_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...


class AlreadyExists(Exception):
    """Created meanwhile by someone (409): read it again and judge its owner."""


class KubernetesBacktests:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self._api = api_client or client.ApiClient()
        self._core = client.CoreV1Api(self._api)
        self._batch = client.BatchV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)

    def _plain(self, obj: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self._api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._plain(self._batch.read_namespaced_job(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        plain: Any = body  # the client takes a plain dict as well as its model
        try:
            return self._plain(
                self._batch.create_namespaced_job(body["metadata"]["namespace"], plain)
            )
        except ApiException as exc:
            if exc.status == 409:
                raise AlreadyExists(body["metadata"]["name"]) from None
            raise

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._plain(self._core.read_namespaced_config_map(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_configmap(self, body: dict[str, Any]) -> dict[str, Any]:
        plain: Any = body
        try:
            return self._plain(
                self._core.create_namespaced_config_map(body["metadata"]["namespace"], plain)
            )
        except ApiException as exc:
            if exc.status == 409:
                raise AlreadyExists(body["metadata"]["name"]) from None
            raise

    def job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        found = self._core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={job}")
        return list(self._plain(found).get("items") or [])

    def get_backtest(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any],
                self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, BACKTESTS, name
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_backtest_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, BACKTESTS, name, {"status": status}
            )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report on
                raise
