"""The in-memory object store: objects, one global resourceVersion, watch history, audit."""

from __future__ import annotations

import copy
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .resources import ResourceInfo, builtin_resources, crd_resources

JsonDict = dict[str, Any]
StorageKey = tuple[str, str]  # (group, plural) of the stored resource
ObjectKey = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class StoredEvent:
    """One committed change, as the watch history keeps it."""

    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    key: StorageKey
    object: JsonDict
    old: JsonDict | None


@dataclass(frozen=True)
class AuditEntry:
    """One write the server handled (no-op writes included, with `changed=False`)."""

    verb: str  # create, update, patch, delete
    group: str
    resource: str
    subresource: str
    namespace: str | None
    name: str
    changed: bool
    resource_version: str
    actor: str  # "client", or the emulated controller: garbage-collector, scheduler, ...


Subscriber = Callable[[StoredEvent], None]


class Registry:
    """The resources the server serves, looked up by group/version/plural (or short name)."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        self._crd_owned: dict[str, list[tuple[str, str, str]]] = {}
        for info in builtin_resources():
            self.add(info)

    def add(self, info: ResourceInfo) -> None:
        self._by_gvr[(info.group, info.version, info.plural)] = info

    def get(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_gvr.get((group, version, plural))

    def all(self) -> list[ResourceInfo]:
        return list(self._by_gvr.values())

    def by_storage(self, key: StorageKey) -> ResourceInfo | None:
        """The resource whose view equals the storage (its own group's first version)."""
        for info in self._by_gvr.values():
            if info.storage is None and (info.group, info.plural) == key:
                return info
        return None

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, in registration order."""
        result: dict[str, list[str]] = {}
        for info in self._by_gvr.values():
            versions = result.setdefault(info.group, [])
            if info.version not in versions:
                versions.append(info.version)
        return result

    def register_crd(self, crd: JsonDict) -> list[ResourceInfo]:
        name = crd["metadata"]["name"]
        self.unregister_crd(name)
        infos = crd_resources(crd)
        for info in infos:
            self.add(info)
        self._crd_owned[name] = [(i.group, i.version, i.plural) for i in infos]
        return infos

    def unregister_crd(self, name: str) -> None:
        for gvr in self._crd_owned.pop(name, []):
            self._by_gvr.pop(gvr, None)


class Store:
    """Objects by storage key, namespace and name; every write gets the next resourceVersion.

    All methods are synchronous: the server runs in one asyncio loop, so a write
    and the delivery of its watch event to every subscriber happen atomically.
    """

    def __init__(self, history_size: int = 10_000) -> None:
        self.registry = Registry()
        self._objects: dict[StorageKey, dict[ObjectKey, JsonDict]] = {}
        self._rv = 0
        self.history_size = history_size
        self.history: deque[StoredEvent] = deque()
        # Events with a resourceVersion <= compacted_rv are gone from the history.
        self.compacted_rv = 0
        self._subscribers: list[Subscriber] = []
        self.audit: list[AuditEntry] = []

    # -- resource versions -------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def compact(self, keep: int = 0) -> None:
        """Drop all but the last `keep` events of the history (forces 410 Gone on old watches)."""
        while len(self.history) > keep:
            self.compacted_rv = self.history.popleft().resource_version

    # -- reading -----------------------------------------------------------------

    def get(self, key: StorageKey, namespace: str | None, name: str) -> JsonDict | None:
        obj = self._objects.get(key, {}).get((namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def peek(self, key: StorageKey, namespace: str | None, name: str) -> JsonDict | None:
        """Like get() without copying: the caller must not modify the result."""
        return self._objects.get(key, {}).get((namespace or "", name))

    def items(self, key: StorageKey, namespace: str | None = None) -> list[JsonDict]:
        """Stored objects (not copied) of one resource, optionally of one namespace."""
        bucket = self._objects.get(key, {})
        return [
            obj for (ns, _), obj in sorted(bucket.items()) if namespace is None or ns == namespace
        ]

    def storage_keys(self) -> list[StorageKey]:
        return list(self._objects)

    def all_objects(self) -> Iterator[tuple[StorageKey, JsonDict]]:
        for key, bucket in list(self._objects.items()):
            for obj in list(bucket.values()):
                yield key, obj

    # -- writing -----------------------------------------------------------------

    def put(
        self, event_type: str, key: StorageKey, obj: JsonDict, old: JsonDict | None
    ) -> JsonDict:
        """Store (or, for DELETED, remove) `obj` with a new resourceVersion; notify watchers."""
        obj = copy.deepcopy(obj)
        rv = self.next_rv()
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        meta = obj["metadata"]
        bucket = self._objects.setdefault(key, {})
        object_key = (meta.get("namespace") or "", meta["name"])
        if event_type == "DELETED":
            bucket.pop(object_key, None)
        else:
            bucket[object_key] = obj
        event = StoredEvent(rv, event_type, key, obj, old)
        self.history.append(event)
        while len(self.history) > self.history_size:
            self.compacted_rv = self.history.popleft().resource_version
        for subscriber in list(self._subscribers):
            subscriber(event)
        return copy.deepcopy(obj)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def events_since(self, rv: int) -> list[StoredEvent]:
        """History after `rv`; raises 410 Gone when part of it was compacted away."""
        if rv < self.compacted_rv:
            oldest = self.history[0].resource_version if self.history else self._rv + 1
            raise ApiError(
                410,
                f"too old resource version: {rv} ({oldest - 1})",
                reason="Expired",
            )
        return [event for event in self.history if event.resource_version > rv]

    # -- audit -------------------------------------------------------------------

    def record(self, entry: AuditEntry) -> None:
        self.audit.append(entry)

    def write_count(
        self,
        verb: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        *,
        subresource: str | None = None,
        actor: str | None = "client",
        changed_only: bool = False,
    ) -> int:
        """How many writes match all the given filters (None = any).

        By default counts what clients sent (`actor="client"`), no-op writes included.
        """
        return sum(
            1
            for e in self.audit
            if (verb is None or e.verb == verb)
            and (resource is None or e.resource == resource)
            and (namespace is None or e.namespace == namespace)
            and (name is None or e.name == name)
            and (subresource is None or e.subresource == subresource)
            and (actor is None or e.actor == actor)
            and (not changed_only or e.changed)
        )

    def write_counts(self, actor: str | None = "client") -> Counter[tuple[str, str]]:
        """(verb, resource[/subresource]) -> number of writes."""
        return Counter(
            (e.verb, f"{e.resource}/{e.subresource}" if e.subresource else e.resource)
            for e in self.audit
            if actor is None or e.actor == actor
        )
