"""The trust ConfigMap watch against the real API server: one object, by field selector."""

from __future__ import annotations

import queue
from pathlib import Path

from kubernetes import client
from kubernetes import config as kube_config

from cluster_support import namespace_kubeconfig, shared_control_plane
from hean_operator.kube.trust import TrustFiles, TrustWatcher


def test_the_watch_reports_changes_of_its_configmap_only(tmp_path: Path) -> None:
    namespace, kubeconfig = namespace_kubeconfig(shared_control_plane(), tmp_path)
    api = kube_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    core = client.CoreV1Api(api)
    seen: queue.Queue[TrustFiles] = queue.Queue()
    watcher = TrustWatcher(namespace, "trust", seen.put, api_client=api)
    assert watcher.read() is None  # not there yet
    watcher.start()
    try:
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "other"}, "data": {"x": "1"}}
        )
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "trust"}, "data": {"policy.yaml": "required: 1"}}
        )
        assert seen.get(timeout=10) == {"policy.yaml": "required: 1"}
        core.patch_namespaced_config_map(
            "trust", namespace, {"data": {"policy.yaml": "required: 2"}}
        )
        assert seen.get(timeout=10) == {"policy.yaml": "required: 2"}
        core.delete_namespaced_config_map("trust", namespace)
        assert seen.get(timeout=10) is None
        assert seen.empty()  # nothing about the other ConfigMap
    finally:
        watcher.stop()
