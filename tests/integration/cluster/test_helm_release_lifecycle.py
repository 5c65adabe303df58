"""`helm install`, `helm upgrade` and `helm uninstall` of the chart on the real cluster.

The release runs on a node of the test's own with fake pods (KWOK-style: the
operator's pod is scheduled by the real scheduler and reported Ready, without a
process), so what is tested is Helm and Kubernetes: the objects the chart
renders, the Deployment's rollout on upgrade (Recreate: the old pod goes, a new
one comes up Ready with the new arguments), and an uninstall that leaves
nothing of the release behind but the CRDs (Helm never deletes crds/).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml
from real_cluster_support import CRDS, WAIT, Kube, Result, start_sandbox

from hean_sandbox.up import OPERATOR_SELECTOR, Sandbox


async def _kubectl(kube: Kube, *args: str, check: bool = True) -> Result:
    # off the event loop: the sandbox's node runs on it, and answers pod deletions
    return await asyncio.to_thread(kube.kubectl, *args, check=check)


async def _helm_json(box: Sandbox, *args: str) -> Any:
    _, out = await box.helm(*args, "--namespace", box.options.operator_namespace, "-o", "json")
    return json.loads(out)


def _targets(manifest: str) -> list[tuple[str, str]]:
    """(kind/name, namespace) of every object a release's manifest holds."""
    found = []
    for doc in yaml.safe_load_all(manifest):
        if doc:
            meta = doc["metadata"]
            found.append((f"{doc['kind'].lower()}/{meta['name']}", meta.get("namespace", "")))
    return found


def _operator_args(deployment: dict[str, Any]) -> list[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


async def test_install_upgrade_and_uninstall(tmp_path: Path, kube: Kube) -> None:
    box = await start_sandbox(tmp_path, fake_pods=True)
    namespace, release = box.options.operator_namespace, box.options.release
    try:
        # -- install (the sandbox ran `helm install --wait`) -------------------------
        status = await _helm_json(box, "status", release)
        assert (status["info"]["status"], status["version"]) == ("deployed", 1)
        _, manifest = await box.helm("get", "manifest", release, "--namespace", namespace)
        targets = _targets(manifest)
        kinds = {target.split("/")[0] for target, _ in targets}
        assert {
            "serviceaccount",
            "configmap",
            "clusterrole",
            "clusterrolebinding",
            "role",
            "rolebinding",
            "service",
            "deployment",
        } <= kinds, kinds
        for target, where in targets:
            await _kubectl(kube, "-n", where or namespace, "get", target)
        deployment = (
            await _kubectl(kube, "-n", namespace, "get", "deployment", release, "-o", "json")
        ).json()
        assert "--poll-interval=1" in _operator_args(deployment)
        assert deployment["status"]["readyReplicas"] == 1
        first = await box.operator_pod()
        assert first is not None, await box.diagnose()

        # -- upgrade: a changed value reaches the Deployment and a new pod ------------
        await box.install(upgrade=True, extra={"pollInterval": 7})
        status = await _helm_json(box, "status", release)
        assert (status["info"]["status"], status["version"]) == ("deployed", 2)
        deployment = (
            await _kubectl(kube, "-n", namespace, "get", "deployment", release, "-o", "json")
        ).json()
        args = _operator_args(deployment)
        assert "--poll-interval=7" in args and "--poll-interval=1" not in args
        assert (
            deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"] == 2
        )
        await _kubectl(
            kube,
            "-n",
            namespace,
            "wait",
            "--for=delete",
            f"pod/{first['metadata']['name']}",
            f"--timeout={WAIT}",
        )
        second = await box.operator_pod()
        assert second is not None, await box.diagnose()
        assert second["metadata"]["uid"] != first["metadata"]["uid"]
        assert "--poll-interval=7" in second["spec"]["containers"][0]["args"]
        history = await _helm_json(box, "history", release)
        assert [(h["revision"], h["status"]) for h in history] == [
            (1, "superseded"),
            (2, "deployed"),
        ]

        # -- uninstall: nothing of the release is left, the CRDs are ------------------
        await box.uninstall()
        for target, where in targets:
            done = await _kubectl(
                kube, "-n", where or namespace, "get", target, "--ignore-not-found", "-o", "name"
            )
            assert done.stdout.strip() == "", f"{target} outlived helm uninstall"
        # the pods of the Deployment's ReplicaSets go through the garbage collector
        selector = f"{OPERATOR_SELECTOR},app.kubernetes.io/instance={release}"
        await _kubectl(
            kube,
            "-n",
            namespace,
            "wait",
            "--for=delete",
            "pod",
            "-l",
            selector,
            f"--timeout={WAIT}",
        )
        leftovers = await _kubectl(
            kube,
            "get",
            "all,configmaps,secrets,serviceaccounts,roles,rolebindings",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={release}",
            "-o",
            "name",
        )
        assert leftovers.stdout.strip() == ""
        cluster_scoped = await _kubectl(
            kube,
            "get",
            "clusterroles,clusterrolebindings",
            "-l",
            f"app.kubernetes.io/instance={release}",
            "-o",
            "name",
        )
        assert cluster_scoped.stdout.strip() == ""
        # Helm's own record of the release (its Secrets) is gone too
        records = await _kubectl(
            kube,
            "-n",
            namespace,
            "get",
            "secrets",
            "-l",
            f"owner=helm,name={release}",
            "-o",
            "name",
        )
        assert records.stdout.strip() == ""
        code, out = await box.helm("status", release, "--namespace", namespace, check=False)
        assert code != 0 and "not found" in out
        for crd in CRDS:
            await _kubectl(kube, "get", "crd", crd)
    finally:
        await box.stop()
