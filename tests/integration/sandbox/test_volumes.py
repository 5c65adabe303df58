"""The sandbox's local-path provisioner and the node's persistentVolumeClaim volumes on
the real control plane: the PV controller binds what the provisioner makes, and what
one pod writes on a claim the next pod of that claim reads."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from node_support import NodeWorld, local_path_provisioner

from hean_sandbox.provisioner import PROVISIONED_BY, PROVISIONER, STORAGE_CLASS

WRITE = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
READ = "import sys, pathlib; print(pathlib.Path(sys.argv[1]).read_text())"


def claim_pod(name: str, code: str, *args: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": "ghcr.io/hean-io/hean-engine:dev",
                    "command": [sys.executable, "-c", code, *args],
                    "volumeMounts": [{"name": "data", "mountPath": "/var/lib/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "books"}}],
        },
    }


async def run_to_completion(world: NodeWorld, pod: dict[str, Any]) -> None:
    watch = await world.watch_pod(pod["metadata"]["name"])
    try:
        await world.create_pod(pod)
        event = await watch.until(
            lambda e: (e["object"].get("status") or {}).get("phase") in ("Succeeded", "Failed"),
            within=60,
        )
    finally:
        watch.close()
    assert event["object"]["status"]["phase"] == "Succeeded", event["object"]["status"]


async def delete_pod(world: NodeWorld, name: str) -> None:
    watch = await world.watch_pod(name)
    try:
        status, body, _ = await world.http.delete(world.path("pods", name))
        assert status == 200, body
        await watch.until(lambda e: e["type"] == "DELETED", within=30)
    finally:
        watch.close()


def log_of(world: NodeWorld, name: str) -> str:
    [directory] = (world.node.workdir / world.namespace).glob(f"{name}-*")
    return (directory / "logs" / "main.log").read_text()


async def test_a_claim_is_bound_and_its_files_outlive_the_pod(
    world: NodeWorld, tmp_path: Path
) -> None:
    root = tmp_path / "volumes"
    async with local_path_provisioner(world, root):
        claims = world.path("persistentvolumeclaims")
        watch = await world.http.watch(claims, {"fieldSelector": "metadata.name=books"})
        try:
            claim = {
                "metadata": {"name": "books"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "64Mi"}},
                },
            }
            status, created, _ = await world.http.post(claims, claim)
            assert status == 201, created
            # no class asked for: the API server's DefaultStorageClass admission gave it ours
            assert created["spec"]["storageClassName"] == STORAGE_CLASS
            event = await watch.until(
                lambda e: (e["object"].get("status") or {}).get("phase") == "Bound", within=60
            )
        finally:
            watch.close()
        volume_name = event["object"]["spec"]["volumeName"]
        status, volume, _ = await world.http.get(f"/api/v1/persistentvolumes/{volume_name}")
        assert status == 200
        # bound by the real PV controller to the volume our provisioner made
        assert volume["metadata"]["annotations"][PROVISIONED_BY] == PROVISIONER
        assert volume["status"]["phase"] == "Bound"
        assert volume["spec"]["claimRef"]["uid"] == created["metadata"]["uid"]
        directory = Path(volume["spec"]["hostPath"]["path"])
        assert directory.parent == root
        await run_to_completion(
            world, claim_pod("writer", WRITE, "/var/lib/data/note.txt", "fill 812 kept")
        )
        assert (directory / "note.txt").read_text() == "fill 812 kept"
        await delete_pod(world, "writer")
        # a new pod of the claim (as a replaced engine pod) reads what the first wrote
        await run_to_completion(world, claim_pod("reader", READ, "/var/lib/data/note.txt"))
        assert log_of(world, "reader").strip() == "fill 812 kept"
        await delete_pod(world, "reader")
        # the claim deleted: the volume is Released and reclaimed (policy Delete)
        volumes = await world.http.watch(
            "/api/v1/persistentvolumes", {"fieldSelector": f"metadata.name={volume_name}"}
        )
        try:
            status, body, _ = await world.http.delete(world.path("persistentvolumeclaims", "books"))
            assert status == 200, body
            await volumes.until(lambda e: e["type"] == "DELETED", within=60)
        finally:
            volumes.close()
        assert not await asyncio.to_thread(directory.exists)
