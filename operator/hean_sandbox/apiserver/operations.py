"""The REST semantics of one resource: create, update, patch, delete, and the controllers.

Everything here is synchronous and runs in the server's event loop, so each
request is atomic. After each client write the emulated controllers run to a
fixed point: CRD establishment and cleanup, namespace lifecycle, the default
ServiceAccount, pod scheduling (binding to the sandbox node) and the garbage
collector (owner references, foreground and orphan propagation).
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import patch as patches
from . import strategy
from .errors import (
    ApiError,
    Cause,
    already_exists,
    bad_request,
    conflict,
    not_found,
    success_status,
)
from .resources import ResourceInfo
from .selectors import FieldSelector, LabelSelector
from .store import AuditEntry, StorageKey, Store, StoredEvent

JsonDict = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

NAMESPACES: StorageKey = ("", "namespaces")
PODS: StorageKey = ("", "pods")
CRDS: StorageKey = ("apiextensions.k8s.io", "customresourcedefinitions")
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
FOREGROUND = "foregroundDeletion"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class Result:
    body: JsonDict
    code: int = 200
    warnings: list[str] = field(default_factory=list)


def _meta(obj: JsonDict) -> JsonDict:
    meta: JsonDict = obj.setdefault("metadata", {})
    return meta


class Api:
    """The apiserver's registry layer over a `Store`."""

    def __init__(self, store: Store, *, node_name: str | None = "sandbox") -> None:
        self.store = store
        self.node_name = node_name
        self._reconciling = False
        self._random = random.Random()
        # The garbage collector scans every object, so it runs only after a change
        # that can give it work: a deletion, or a change of ownerReferences,
        # finalizers or deletionTimestamp. Status patches and Events (most writes)
        # cannot, and skipping the scan for them keeps writes O(1) at scale.
        self._gc_dirty = True
        store.subscribe(self._notice_for_gc)

    # -- helpers -------------------------------------------------------------------

    def view(self, info: ResourceInfo, obj: JsonDict) -> JsonDict:
        out = info.to_view(obj) if info.storage else copy.deepcopy(obj)
        if info.custom:
            out["apiVersion"] = info.api_version
        return out

    def info_for(self, key: StorageKey) -> ResourceInfo:
        info = self.store.registry.by_storage(key)
        if info is None:
            raise ApiError(500, f"no resource serves {key}")
        return info

    def _ns(self, info: ResourceInfo, namespace: str | None) -> str | None:
        return namespace if info.namespaced else None

    def _audit(
        self, verb: str, info: ResourceInfo, sub: str, obj: JsonDict, changed: bool, actor: str
    ) -> None:
        meta = obj.get("metadata", {})
        self.store.record(
            AuditEntry(
                verb=verb,
                group=info.group,
                resource=info.plural,
                subresource=sub,
                namespace=meta.get("namespace"),
                name=str(meta.get("name", "")),
                changed=changed,
                resource_version=str(meta.get("resourceVersion", "")),
                actor=actor,
            )
        )

    def _check_type(self, info: ResourceInfo, body: JsonDict) -> None:
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != info.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({info.api_version})"
            )
        if kind and kind != info.kind:
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({info.kind})"
            )

    @contextmanager
    def _settling(self) -> Iterator[None]:
        """Run the controllers once the outermost write is done."""
        outer = not self._reconciling
        self._reconciling = True
        try:
            yield
        finally:
            if outer:
                try:
                    self._reconcile()
                finally:
                    self._reconciling = False

    # -- reads ---------------------------------------------------------------------

    def get(self, info: ResourceInfo, namespace: str | None, name: str) -> JsonDict:
        obj = self.store.get(info.storage_key, self._ns(info, namespace), name)
        if obj is None:
            raise not_found(info.plural, name, info.group)
        return self.view(info, obj)

    def list_items(
        self,
        info: ResourceInfo,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> tuple[list[JsonDict], str]:
        items = [
            self.view(info, obj)
            for obj in self.store.items(info.storage_key, self._ns(info, namespace))
            if labels.matches(obj) and fields.matches(obj)
        ]
        return items, str(self.store.resource_version)

    # -- create --------------------------------------------------------------------

    def create(
        self,
        info: ResourceInfo,
        namespace: str | None,
        body: Any,
        *,
        field_validation: str = "Warn",
        dry_run: bool = False,
        actor: str = "client",
    ) -> Result:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        with self._settling():
            return self._create(info, namespace, body, field_validation, dry_run, actor)

    def _create(
        self,
        info: ResourceInfo,
        namespace: str | None,
        body: JsonDict,
        field_validation: str,
        dry_run: bool,
        actor: str,
    ) -> Result:
        self._check_type(info, body)
        obj = info.from_view(copy.deepcopy(body))
        if not info.storage:
            obj["apiVersion"], obj["kind"] = info.api_version, info.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if info.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            namespace = meta.get("namespace") or namespace
            if not namespace:
                raise bad_request("a namespace is required")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = None
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        for system in (
            "uid",
            "selfLink",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
        ):
            meta.pop(system, None)
        key = info.storage_key
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise strategy.fail(
                    info,
                    "",
                    [
                        Cause(
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                            "metadata.name",
                        )
                    ],
                )
            for _ in range(100):
                name = str(prefix) + "".join(self._random.choice(_NAME_CHARS) for _ in range(5))
                if self.store.peek(key, namespace, name) is None:
                    break
            meta["name"] = name
        name = str(meta["name"])
        if namespace is not None:
            ns_obj = self.store.peek(NAMESPACES, None, namespace)
            if ns_obj is None:
                raise not_found("namespaces", namespace)
            if ns_obj["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    f'{info.qualified} "{name}" is forbidden: unable to create new content in '
                    f"namespace {namespace} because it is being terminated",
                    reason="Forbidden",
                    name=name,
                    group=info.group,
                    kind=info.plural,
                    causes=[
                        Cause(
                            "NamespaceTerminating",
                            f"namespace {namespace} is being terminated",
                            "metadata.namespace",
                        )
                    ],
                )
        strategy.prepare_create(info, obj)
        if key == ("", "secrets"):
            strategy.secret_string_data(obj)
        causes = strategy.name_causes(info, name) + strategy.metadata_causes(obj)
        causes += strategy.builtin_causes(info, obj, None)
        if causes:
            raise strategy.fail(info, name, causes)
        warnings: list[str] = []
        if info.custom:
            warnings = strategy.process_custom(info, obj, None, field_validation)
        if self.store.peek(key, namespace, name) is not None:
            raise already_exists(info.plural, name, info.group)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = strategy.now()
        if info.has_generation:
            meta["generation"] = 1
        if dry_run:
            return Result(self.view(info, obj), 201, warnings)
        stored = self.store.put("ADDED", key, obj, None)
        self._audit("create", info, "", stored, True, actor)
        if key == CRDS:
            self.store.registry.register_crd(stored)
        return Result(self.view(info, stored), 201, warnings)

    # -- update --------------------------------------------------------------------

    def update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        field_validation: str = "Warn",
        dry_run: bool = False,
        actor: str = "client",
        verb: str = "update",
    ) -> Result:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        with self._settling():
            return self._update(
                info, namespace, name, body, subresource, field_validation, dry_run, actor, verb
            )

    def _update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: JsonDict,
        subresource: str,
        field_validation: str,
        dry_run: bool,
        actor: str,
        verb: str,
    ) -> Result:
        key = info.storage_key
        namespace = self._ns(info, namespace)
        old = self.store.get(key, namespace, name)
        if old is None:
            raise not_found(info.plural, name, info.group)
        self._check_type(info, body)
        new = info.from_view(copy.deepcopy(body)) if info.storage else copy.deepcopy(body)
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        if info.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        old_meta = old["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise conflict(
                info.plural,
                name,
                info.group,
                "the object has been modified; please apply your changes to the "
                "latest version and try again",
            )
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            raise conflict(
                info.plural,
                name,
                info.group,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in "
                f"object meta: {old_meta['uid']}",
            )
        for system in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ):
            if system in old_meta:
                meta[system] = old_meta[system]
            else:
                meta.pop(system, None)
        meta.pop("selfLink", None)
        meta.pop("managedFields", None)
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif subresource == "finalize" and key == NAMESPACES:
            finalizers = (new.get("spec") or {}).get("finalizers", [])
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["finalizers"] = finalizers
        elif info.status_subresource:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        if old_meta.get("deletionTimestamp"):
            added = [
                f
                for f in new["metadata"].get("finalizers") or []
                if f not in (old_meta.get("finalizers") or [])
            ]
            if added:
                raise strategy.fail(
                    info,
                    name,
                    [
                        Cause(
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is being "
                            f"deleted, found new finalizers {json.dumps(added)}",
                            "metadata.finalizers",
                        )
                    ],
                )
        strategy.prepare_update(info, new, old)
        if key == ("", "secrets"):
            strategy.secret_string_data(new)
        causes = strategy.metadata_causes(new) + strategy.builtin_causes(info, new, old)
        if causes:
            raise strategy.fail(info, name, causes)
        warnings: list[str] = []
        if info.custom:
            warnings = strategy.process_custom(info, new, old, field_validation)
        if info.has_generation and self._spec_changed(info, new, old):
            new["metadata"]["generation"] = int(old_meta.get("generation") or 0) + 1
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            self._audit(verb, info, subresource, old, False, actor)
            return Result(self.view(info, old), 200, warnings)
        if dry_run:
            return Result(self.view(info, new), 200, warnings)
        if (
            new["metadata"].get("deletionTimestamp")
            and not self._pending(new)
            and int(new["metadata"].get("deletionGracePeriodSeconds") or 0) == 0
        ):
            gone = self._remove(info, old, actor, verb, subresource)
            return Result(self.view(info, gone), 200, warnings)
        stored = self.store.put("MODIFIED", key, new, old)
        self._audit(verb, info, subresource, stored, True, actor)
        if key == CRDS:
            self.store.registry.register_crd(stored)
        return Result(self.view(info, stored), 200, warnings)

    @staticmethod
    def _spec_changed(info: ResourceInfo, new: JsonDict, old: JsonDict) -> bool:
        ignored = {"metadata", "status"} if info.status_subresource else {"metadata"}
        return {k: v for k, v in new.items() if k not in ignored} != {
            k: v for k, v in old.items() if k not in ignored
        }

    @staticmethod
    def _pending(obj: JsonDict) -> bool:
        """Whether finalizers still hold the object (namespaces: spec.finalizers too)."""
        if obj.get("metadata", {}).get("finalizers"):
            return True
        return obj.get("kind") == "Namespace" and bool((obj.get("spec") or {}).get("finalizers"))

    def _remove(
        self, info: ResourceInfo, obj: JsonDict, actor: str, verb: str, subresource: str = ""
    ) -> JsonDict:
        """Delete for good: one DELETED event carrying the last stored state."""
        gone = self.store.put("DELETED", info.storage_key, obj, obj)
        self._audit(verb, info, subresource, gone, True, actor)
        if info.storage_key == CRDS:
            self.store.registry.unregister_crd(obj["metadata"]["name"])
        return gone

    # -- patch ---------------------------------------------------------------------

    def patch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        *,
        subresource: str = "",
        field_validation: str = "Warn",
        field_manager: str | None = None,
        dry_run: bool = False,
        actor: str = "client",
    ) -> Result:
        media = content_type.split(";")[0].strip().lower()
        accepted = [t for t in PATCH_TYPES if not (info.custom and t == STRATEGIC_PATCH)]
        if media not in accepted:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(accepted)}",
                reason="UnsupportedMediaType",
            )
        with self._settling():
            namespace = self._ns(info, namespace)
            old = self.store.get(info.storage_key, namespace, name)
            if media == APPLY_PATCH:
                if not field_manager:
                    raise bad_request("PATCH /apply requires fieldManager to be set")
                try:
                    applied = yaml.safe_load(raw.decode() or "{}")
                except yaml.YAMLError as exc:
                    raise bad_request(f"error decoding YAML: {exc}") from exc
                if not isinstance(applied, dict):
                    raise bad_request("an apply patch must be an object")
                if old is None:
                    if subresource:
                        raise not_found(info.plural, name, info.group)
                    applied.setdefault("metadata", {}).setdefault("name", name)
                    return self._create(info, namespace, applied, field_validation, dry_run, actor)
                patched = (
                    patches.merge_patch(self.view(info, old), applied)
                    if info.custom
                    else patches.strategic_merge_patch(self.view(info, old), applied)
                )
            else:
                if old is None:
                    raise not_found(info.plural, name, info.group)
                try:
                    document = json.loads(raw.decode() or "null")
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise bad_request(f"error decoding patch: {exc}") from exc
                current = self.view(info, old)
                if media == MERGE_PATCH:
                    if not isinstance(document, dict):
                        raise bad_request("a merge patch must be a JSON object")
                    patched = patches.merge_patch(current, document)
                elif media == JSON_PATCH:
                    patched = patches.json_patch(current, document)
                else:
                    if not isinstance(document, dict):
                        raise bad_request("a strategic merge patch must be a JSON object")
                    patched = patches.strategic_merge_patch(current, document)
            if not isinstance(patched, dict):
                raise patches.PatchError("the patched object is not a JSON object")
            return self._update(
                info,
                namespace,
                name,
                patched,
                subresource,
                field_validation,
                dry_run,
                actor,
                "patch",
            )

    # -- delete --------------------------------------------------------------------

    def delete(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        options: JsonDict | None = None,
        *,
        dry_run: bool = False,
        actor: str = "client",
    ) -> Result:
        with self._settling():
            return self._delete(
                info, self._ns(info, namespace), name, options or {}, dry_run, actor
            )

    def _delete(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        options: JsonDict,
        dry_run: bool,
        actor: str,
    ) -> Result:
        key = info.storage_key
        old = self.store.get(key, namespace, name)
        if old is None:
            raise not_found(info.plural, name, info.group)
        meta = old["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
            raise conflict(
                info.plural,
                name,
                info.group,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {meta.get('uid')}",
            )
        if preconditions.get("resourceVersion") and (
            preconditions["resourceVersion"] != meta.get("resourceVersion")
        ):
            raise conflict(
                info.plural,
                name,
                info.group,
                "Precondition failed: ResourceVersion in precondition: "
                f"{preconditions['resourceVersion']}, ResourceVersion in object "
                f"meta: {meta.get('resourceVersion')}",
            )
        policy = options.get("propagationPolicy")
        if policy is None:
            orphan = options.get("orphanDependents")
            policy = "Orphan" if orphan else "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise strategy.fail(
                info,
                name,
                [
                    Cause(
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", '
                        '"Background", "Orphan"',
                        "propagationPolicy",
                    )
                ],
            )
        grace = 0
        if key == PODS:
            requested = options.get("gracePeriodSeconds")
            spec = old.get("spec") or {}
            grace = int(
                requested
                if requested is not None
                else spec.get("terminationGracePeriodSeconds", 30)
            )
            grace = max(grace, 0) if requested is None or int(requested) >= 0 else 1
            phase = (old.get("status") or {}).get("phase")
            if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                grace = 0
        if dry_run:
            return Result(self.view(info, old))
        if policy == "Orphan":
            self._orphan_dependents(meta["uid"])
        deleting = bool(meta.get("deletionTimestamp"))
        if deleting:
            current = int(meta.get("deletionGracePeriodSeconds") or 0)
            if key != PODS or grace >= current:
                self._audit("delete", info, "", old, False, actor)
                return Result(self.view(info, old))
        new = copy.deepcopy(old)
        new_meta = new["metadata"]
        if policy == "Foreground" and not deleting and self._dependents(meta["uid"]):
            new_meta.setdefault("finalizers", []).append(FOREGROUND)
        if grace == 0 and not self._pending(new):
            gone = self._remove(info, old, actor, "delete")
            body = (
                self.view(info, gone)
                if info.return_deleted_object
                else success_status(
                    {"name": name, "group": info.group, "kind": info.plural, "uid": meta.get("uid")}
                )
            )
            return Result(body)
        new_meta["deletionTimestamp"] = strategy.timestamp_in(grace)
        new_meta["deletionGracePeriodSeconds"] = grace
        if info.has_generation and not deleting:
            new_meta["generation"] = int(new_meta.get("generation") or 0) + 1
        if key == NAMESPACES:
            new.setdefault("status", {})["phase"] = "Terminating"
        stored = self.store.put("MODIFIED", key, new, old)
        self._audit("delete", info, "", stored, True, actor)
        return Result(self.view(info, stored))

    def delete_collection(
        self,
        info: ResourceInfo,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        options: JsonDict | None = None,
        dry_run: bool = False,
    ) -> list[JsonDict]:
        deleted = []
        with self._settling():
            for obj in list(self.store.items(info.storage_key, self._ns(info, namespace))):
                if labels.matches(obj) and fields.matches(obj):
                    meta = obj["metadata"]
                    try:
                        result = self._delete(
                            info,
                            meta.get("namespace"),
                            meta["name"],
                            options or {},
                            dry_run,
                            "client",
                        )
                    except ApiError as exc:
                        if exc.code != 404:
                            raise
                        continue
                    deleted.append(
                        self.view(info, obj) if result.body.get("kind") == "Status" else result.body
                    )
        return deleted

    # -- controllers ---------------------------------------------------------------

    def _reconcile(self) -> None:
        for _ in range(200):
            if not self._reconcile_once():
                return

    def _reconcile_once(self) -> bool:
        for controller in (
            self._crd_controller,
            self._namespace_controller,
            self._scheduler,
            self._garbage_collector,
        ):
            try:
                if controller():
                    return True
            except ApiError:
                continue
        return False

    def _crd_controller(self) -> bool:
        info = self.info_for(CRDS)
        for crd in self.store.items(CRDS):
            meta, name = crd["metadata"], crd["metadata"]["name"]
            if meta.get("deletionTimestamp"):
                spec = crd["spec"]
                remaining = self.store.items((spec["group"], spec["names"]["plural"]))
                for obj in remaining:
                    if not obj["metadata"].get("deletionTimestamp"):
                        custom = self.store.registry.by_storage(
                            (spec["group"], spec["names"]["plural"])
                        )
                        if custom is not None:
                            self._delete(
                                custom,
                                obj["metadata"].get("namespace"),
                                obj["metadata"]["name"],
                                {},
                                False,
                                "apiextensions-controller",
                            )
                            return True
                if not remaining and CRD_CLEANUP_FINALIZER in (meta.get("finalizers") or []):
                    body = copy.deepcopy(crd)
                    body["metadata"]["finalizers"].remove(CRD_CLEANUP_FINALIZER)
                    self._controller_update(info, None, name, body, "apiextensions-controller")
                    return True
                continue
            wanted = strategy.crd_status(crd)
            status = crd.get("status") or {}
            if (
                status.get("acceptedNames") != wanted["acceptedNames"]
                or status.get("storedVersions") != wanted["storedVersions"]
            ):
                body = copy.deepcopy(crd)
                body["status"] = wanted
                self._controller_update(
                    info, None, name, body, "apiextensions-controller", subresource="status"
                )
                return True
            if CRD_CLEANUP_FINALIZER not in (meta.get("finalizers") or []):
                body = copy.deepcopy(crd)
                body["metadata"].setdefault("finalizers", []).append(CRD_CLEANUP_FINALIZER)
                self._controller_update(info, None, name, body, "apiextensions-controller")
                return True
        return False

    def _namespace_controller(self) -> bool:
        ns_info = self.info_for(NAMESPACES)
        for ns in self.store.items(NAMESPACES):
            name = ns["metadata"]["name"]
            if not ns["metadata"].get("deletionTimestamp"):
                if self.store.peek(("", "serviceaccounts"), name, "default") is None:
                    self._create(
                        self.info_for(("", "serviceaccounts")),
                        name,
                        {"metadata": {"name": "default"}},
                        "Ignore",
                        False,
                        "serviceaccount-controller",
                    )
                    return True
                continue
            remaining = False
            for key in self.store.storage_keys():
                info = self.store.registry.by_storage(key)
                if info is None or not info.namespaced:
                    continue
                for obj in self.store.items(key, name):
                    remaining = True
                    if not obj["metadata"].get("deletionTimestamp"):
                        self._delete(
                            info, name, obj["metadata"]["name"], {}, False, "namespace-controller"
                        )
                        return True
            if not remaining and (ns.get("spec") or {}).get("finalizers"):
                body = copy.deepcopy(ns)
                body["spec"]["finalizers"] = []
                self._controller_update(
                    ns_info, None, name, body, "namespace-controller", subresource="finalize"
                )
                return True
        return False

    def _scheduler(self) -> bool:
        if not self.node_name:
            return False
        info = self.info_for(PODS)
        for pod in self.store.items(PODS):
            if (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            self.bind(
                info,
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                self.node_name,
                actor="scheduler",
            )
            return True
        return False

    def bind(
        self, info: ResourceInfo, namespace: str, name: str, node: str, actor: str = "client"
    ) -> JsonDict:
        """pods/binding: set spec.nodeName and the PodScheduled condition in one write."""
        old = self.store.get(PODS, namespace, name)
        if old is None:
            raise not_found("pods", name)
        if (old.get("spec") or {}).get("nodeName"):
            raise conflict(
                "pods",
                name,
                "",
                f'pod {name} is already assigned to node "{old["spec"]["nodeName"]}"',
            )
        new = copy.deepcopy(old)
        new["spec"]["nodeName"] = node
        conditions = new.setdefault("status", {}).setdefault("conditions", [])
        conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastTransitionTime": strategy.now(),
                "lastProbeTime": None,
            }
        )
        stored = self.store.put("MODIFIED", PODS, new, old)
        self._audit("create", info, "binding", stored, True, actor)
        return stored

    def _index(self) -> dict[str, tuple[StorageKey, JsonDict]]:
        return {str(obj["metadata"]["uid"]): (key, obj) for key, obj in self.store.all_objects()}

    def _dependents(self, uid: str) -> list[tuple[StorageKey, JsonDict]]:
        return [
            (key, obj)
            for key, obj in self.store.all_objects()
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    def _orphan_dependents(self, uid: str) -> None:
        for key, obj in self._dependents(uid):
            body = copy.deepcopy(obj)
            refs = [r for r in body["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if refs:
                body["metadata"]["ownerReferences"] = refs
            else:
                body["metadata"].pop("ownerReferences")
            info = self.info_for(key)
            self._controller_update(
                info,
                obj["metadata"].get("namespace"),
                obj["metadata"]["name"],
                self.view(info, body),
                "garbage-collector",
            )

    def _controller_update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: JsonDict,
        actor: str,
        subresource: str = "",
    ) -> None:
        """An update by one of the emulated controllers (never a conflict check)."""
        self._update(info, namespace, name, body, subresource, "Ignore", False, actor, "update")

    def _notice_for_gc(self, event: StoredEvent) -> None:
        if self._gc_dirty:
            return
        if event.type == "DELETED":
            self._gc_dirty = True
            return
        new = event.object["metadata"]
        old = (event.old or {}).get("metadata") or {}
        for key in ("ownerReferences", "finalizers", "deletionTimestamp"):
            if new.get(key) != old.get(key):
                self._gc_dirty = True
                return

    def _garbage_collector(self) -> bool:
        if not self._gc_dirty:
            return False
        acted = self._collect_garbage()
        if not acted:
            self._gc_dirty = False
        return acted

    def _collect_garbage(self) -> bool:
        index = self._index()
        for key, obj in self.store.all_objects():
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if refs and not meta.get("deletionTimestamp"):
                info = self.info_for(key)
                dangling = [r for r in refs if r.get("uid") not in index]
                waiting = [
                    r
                    for r in refs
                    if r.get("uid") in index
                    and FOREGROUND in (index[r["uid"]][1]["metadata"].get("finalizers") or [])
                    and index[r["uid"]][1]["metadata"].get("deletionTimestamp")
                ]
                if len(dangling) == len(refs) or (
                    waiting and len(dangling) + len(waiting) == len(refs)
                ):
                    self._delete(
                        info, meta.get("namespace"), meta["name"], {}, False, "garbage-collector"
                    )
                    return True
                if dangling:
                    body = copy.deepcopy(obj)
                    body["metadata"]["ownerReferences"] = [r for r in refs if r not in dangling]
                    self._controller_update(
                        info,
                        meta.get("namespace"),
                        meta["name"],
                        self.view(info, body),
                        "garbage-collector",
                    )
                    return True
            if (
                FOREGROUND in (meta.get("finalizers") or [])
                and meta.get("deletionTimestamp")
                and not self._dependents(str(meta["uid"]))
            ):
                info = self.info_for(key)
                body = copy.deepcopy(obj)
                body["metadata"]["finalizers"].remove(FOREGROUND)
                self._controller_update(
                    info,
                    meta.get("namespace"),
                    meta["name"],
                    self.view(info, body),
                    "garbage-collector",
                )
                return True
        return False

    # -- bootstrap -----------------------------------------------------------------

    def bootstrap(self) -> None:
        info = self.info_for(NAMESPACES)
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if self.store.peek(NAMESPACES, None, name) is None:
                self.create(info, None, {"metadata": {"name": name}}, actor="bootstrap")
