"""Read a TradingEngine from the cluster for `hean approval sign --engine NAME -n NS`.

The signing command lives in the engine's CLI, which must not depend on the
Kubernetes client; it imports this module lazily, only for the `--engine` form.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from hean_engine.model.errors import ConfigError
from hean_operator.api.resources import ENGINES, GROUP, VERSION


def _api(kubeconfig: str | None) -> client.ApiClient:
    try:
        if kubeconfig:
            loaded = kube_config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            return cast(client.ApiClient, loaded)
        try:
            kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except kube_config.ConfigException:
            default = kube_config.new_client_from_config()  # type: ignore[no-untyped-call]
            return cast(client.ApiClient, default)
    except (kube_config.ConfigException, OSError) as exc:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise ConfigError(
            [f"--kubeconfig: no usable cluster configuration ({where}): {exc}"]
        ) from None


def fetch_engine(name: str, namespace: str, kubeconfig: str | None) -> dict[str, Any]:
    """The TradingEngine `namespace/name` as stored (with `metadata.uid` and the spec).

    Raises ConfigError with a message for a person: not found, forbidden, unreachable.
    """
    api = _api(kubeconfig)
    custom = client.CustomObjectsApi(api)
    try:
        found = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, ENGINES, name)
    except ApiException as exc:
        if exc.status == 404:
            raise ConfigError(
                [f"--engine: no TradingEngine {name!r} in namespace {namespace!r}"]
            ) from None
        if exc.status in (401, 403):
            raise ConfigError(
                [f"--engine: not allowed to read TradingEngine {namespace}/{name} ({exc.status})"]
            ) from None
        detail = f"{exc.status} {exc.reason}"
        raise ConfigError(
            [f"--engine: reading TradingEngine {namespace}/{name} failed: {detail}"]
        ) from None
    except HTTPError as exc:
        raise ConfigError([f"--engine: the cluster is unreachable: {type(exc).__name__}"]) from None
    finally:
        api.close()  # type: ignore[no-untyped-call]
    resource = cast(dict[str, Any], found)
    if not (resource.get("metadata") or {}).get("uid"):
        raise ConfigError([f"--engine: TradingEngine {namespace}/{name} has no metadata.uid"])
    return resource
