"""PersistentVolumes for the sandbox's claims, the way a local-path provisioner makes them.

The sandbox's StorageClass `hean-local` (provisioner `hean.io/local-path`,
the cluster's default, binding mode Immediate, reclaim policy Delete) is
served by this task, as Rancher's local-path-provisioner serves its class:

- a PersistentVolumeClaim of that class in one of the sandbox's namespaces,
  not yet bound, gets a hostPath PersistentVolume: a directory under the
  sandbox's workdir, pinned to the sandbox's node by node affinity, with a
  `claimRef` to the claim. The real PV controller of kube-controller-manager
  then binds the two (the claim's `spec.volumeName`, both `Bound`), and the
  scheduler places the claim's pods on that node;
- a volume it made that is `Released` (its claim deleted: for an engine, by
  the garbage collector with its TradingEngine) is deleted with its
  directory, as reclaim policy Delete says.

The node (`kubelet.node`) mounts such a claim as its volume's directory, so
what a pod writes there is what the next pod of the claim reads.

Several sandboxes may share one control plane (the tests do): each serves
only its own namespaces, and the StorageClass is created once and shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from hean_sandbox.kubelet.api import ApiError, KubeApi

log = logging.getLogger("hean.sandbox.provisioner")

STORAGE_CLASS = "hean-local"
PROVISIONER = "hean.io/local-path"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
# Which sandbox's node a volume belongs to (its directory is on that sandbox's disk).
NODE_LABEL = "hean.io/sandbox-node"
CLAIMS = "/api/v1/persistentvolumeclaims"
VOLUMES = "/api/v1/persistentvolumes"
CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        # Immediate: the volume is made as soon as the claim is, before any pod is
        # scheduled; its node affinity then tells the scheduler where the pod goes.
        "volumeBindingMode": "Immediate",
    }


def volume_name(claim: dict[str, Any]) -> str:
    """`pvc-<claim uid>`, as the external provisioners name their volumes."""
    return f"pvc-{claim['metadata']['uid']}"


class LocalPathProvisioner:
    def __init__(self, api: KubeApi, root: Path, node: str, namespaces: frozenset[str]) -> None:
        self.api = api
        self.root = root
        self.node = node
        self.namespaces = namespaces
        self._handling: set[asyncio.Task[None]] = set()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Serve the class until cancelled; `ready` is set once both watches are listening."""
        self.root.mkdir(parents=True, exist_ok=True)
        await self.ensure_storage_class()
        claims_ready, volumes_ready = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(self._watch(CLAIMS, self.provision, claims_ready)),
            asyncio.create_task(self._watch(VOLUMES, self.reclaim, volumes_ready)),
        ]
        try:
            await asyncio.wait(
                [
                    asyncio.create_task(claims_ready.wait()),
                    asyncio.create_task(volumes_ready.wait()),
                ]
            )
            if ready is not None:
                ready.set()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def ensure_storage_class(self) -> None:
        try:
            await self.api.request("POST", CLASSES, storage_class())
        except ApiError as exc:
            if exc.status != 409:  # another sandbox of this cluster made it
                raise

    async def _watch(
        self,
        path: str,
        handle: Callable[[dict[str, Any]], Awaitable[None]],
        ready: asyncio.Event,
    ) -> None:
        """List, handle each object, then watch from the listing's version; relist when
        the watch breaks (an event missed meanwhile is found in the next listing)."""
        while True:
            try:
                listing = await self.api.request("GET", path)
                for item in listing.get("items", []):
                    await self._handle(handle, item)
                ready.set()
                version = listing["metadata"].get("resourceVersion", "0")
                params = {"watch": "true", "resourceVersion": version}
                async for event in self.api.watch(path, params):
                    if event.get("type") == "ERROR":
                        break
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        # Each object on its own task, as a provisioner's workers do: a
                        # hundred claims made at once are not provisioned one by one.
                        task = asyncio.create_task(self._handle(handle, event["object"]))
                        self._handling.add(task)
                        task.add_done_callback(self._handling.discard)
            except (aiohttp.ClientError, ApiError) as exc:
                log.warning("watch of %s interrupted: %s", path, exc)
                await asyncio.sleep(0.5)

    async def _handle(
        self, handle: Callable[[dict[str, Any]], Awaitable[None]], obj: dict[str, Any]
    ) -> None:
        try:
            await handle(obj)
        except (ApiError, OSError) as exc:  # the next event or listing tries again
            meta = obj.get("metadata") or {}
            log.warning("%s/%s: %s", meta.get("namespace", ""), meta.get("name"), exc)

    # -- provisioning ----------------------------------------------------------------
    async def provision(self, claim: dict[str, Any]) -> None:
        """A hostPath volume for an unbound claim of the class in one of our namespaces."""
        meta, spec = claim["metadata"], claim.get("spec") or {}
        if (
            meta["namespace"] not in self.namespaces
            or meta.get("deletionTimestamp")
            or spec.get("volumeName")
            or spec.get("storageClassName") != STORAGE_CLASS
        ):
            return
        name = volume_name(claim)
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {PROVISIONED_BY: PROVISIONER},
                "labels": {NODE_LABEL: self.node},
            },
            "spec": {
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "volumeMode": "Filesystem",
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
                "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [self.node],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        }
        try:
            await self.api.request("POST", VOLUMES, volume)
        except ApiError as exc:
            if exc.status != 409:  # made already: a relist sees the claim again
                raise
            return
        log.info("provisioned %s for %s/%s", name, meta["namespace"], meta["name"])

    # -- reclaiming ------------------------------------------------------------------
    def _ours(self, volume: dict[str, Any]) -> bool:
        meta = volume["metadata"]
        return (meta.get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER and (
            meta.get("labels") or {}
        ).get(NODE_LABEL) == self.node

    async def reclaim(self, volume: dict[str, Any]) -> None:
        """Delete a Released volume of ours and its directory (reclaim policy Delete)."""
        spec = volume.get("spec") or {}
        if (
            not self._ours(volume)
            or (volume.get("status") or {}).get("phase") != "Released"
            or spec.get("persistentVolumeReclaimPolicy") != "Delete"
        ):
            return
        await self._delete(volume)

    async def _delete(self, volume: dict[str, Any]) -> None:
        path = Path(((volume.get("spec") or {}).get("hostPath") or {}).get("path", ""))
        if path.parent == self.root:  # never anything outside the sandbox's own directory
            await asyncio.to_thread(shutil.rmtree, path, True)
        try:
            await self.api.request("DELETE", f"{VOLUMES}/{volume['metadata']['name']}")
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def remove_all(self) -> None:
        """Delete every volume this sandbox made (a shared cluster outlives the sandbox)."""
        listing = await self.api.request(
            "GET", VOLUMES, params={"labelSelector": f"{NODE_LABEL}={self.node}"}
        )
        for volume in listing.get("items", []):
            if self._ours(volume):
                with contextlib.suppress(ApiError, OSError):
                    await self._delete(volume)
