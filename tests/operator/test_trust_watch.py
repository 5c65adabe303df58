"""The trust ConfigMap watch against the sandbox's API server: one object, by field selector."""

from __future__ import annotations

import queue
from pathlib import Path

from kubernetes import client
from kubernetes import config as kube_config

from hean_operator.kube.trust import TrustFiles, TrustWatcher
from hean_sandbox.apiserver import ServerThread


def test_the_watch_reports_changes_of_its_configmap_only(tmp_path: Path) -> None:
    with ServerThread(port=0) as server:
        kubeconfig = tmp_path / "kubeconfig"
        server.write_kubeconfig(kubeconfig)
        api = kube_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        core = client.CoreV1Api(api)
        seen: queue.Queue[TrustFiles] = queue.Queue()
        watcher = TrustWatcher("default", "trust", seen.put, api_client=api)
        assert watcher.read() is None  # not there yet
        watcher.start()
        try:
            core.create_namespaced_config_map(
                "default", {"metadata": {"name": "other"}, "data": {"x": "1"}}
            )
            core.create_namespaced_config_map(
                "default", {"metadata": {"name": "trust"}, "data": {"policy.yaml": "required: 1"}}
            )
            assert seen.get(timeout=10) == {"policy.yaml": "required: 1"}
            core.patch_namespaced_config_map(
                "trust", "default", {"data": {"policy.yaml": "required: 2"}}
            )
            assert seen.get(timeout=10) == {"policy.yaml": "required: 2"}
            core.delete_namespaced_config_map("trust", "default")
            assert seen.get(timeout=10) is None
            assert seen.empty()  # nothing about the other ConfigMap
        finally:
            watcher.stop()
