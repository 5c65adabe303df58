"""The baseline of `operator_convergence.py`: a bare kopf operator, one pod per TradingEngine.

It does nothing but what any kopf operator must: on create of a TradingEngine
it creates one pod (owned by the resource, through `kopf.adopt`) with the
official `kubernetes` client, from a sync handler (kopf runs it in its thread
pool), exactly as HEAN's operator creates its children. No ConfigMap, no
Secret, no Service, no status polling, no finalizer of its own; kopf's
defaults otherwise (its last-handled-configuration annotation; kopf posts no
Event for a handler that succeeds, so the API server's audit log shows one pod
create and one annotation patch per TradingEngine). The pod declares the same
`http` container port as an engine pod, so that the node does the same work
for it (a fake pod runs a stand-in engine API on that port).

    python benchmarks/baseline_kopf_operator.py --kubeconfig PATH
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import kopf
from kubernetes import client
from kubernetes import config as kube_config

GROUP, VERSION, PLURAL = "hean.io", "v1alpha1", "tradingengines"
ENGINE_PORT = 8080

registry = kopf.OperatorRegistry()
core: client.CoreV1Api | None = None  # one API client for the process, as HEAN's operator has


def pod_for(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-engine", "labels": {"app.kubernetes.io/name": "baseline"}},
        "spec": {
            "containers": [
                {
                    "name": "engine",
                    "image": "ghcr.io/hean-io/hean-engine:0.1.0",
                    "command": ["hean", "engine", "run"],
                    "ports": [{"name": "http", "containerPort": ENGINE_PORT}],
                }
            ]
        },
    }


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_via_client(**kwargs)


@kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
def create_pod(body: kopf.Body, name: str, namespace: str | None, **_: Any) -> None:
    pod: Any = pod_for(name)  # a plain manifest; the client serialises dicts as they are
    kopf.adopt(pod, owner=body)
    assert core is not None
    core.create_namespaced_pod(namespace=namespace or "default", body=pod)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()
    kube_config.load_kube_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    global core
    core = client.CoreV1Api(client.ApiClient())
    asyncio.run(
        kopf.operator(registry=registry, standalone=True, clusterwide=True, liveness_endpoint=None)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
