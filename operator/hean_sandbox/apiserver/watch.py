"""Watch feeds: history replay from a resourceVersion, then live events, filtered.

A feed subscribes to the store synchronously right after replaying the history,
so no event can fall between the two. Selector transitions are translated the
way the watch cache does: an object entering the selection is ADDED, leaving it
is DELETED.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .errors import bad_request
from .operations import Api
from .resources import ResourceInfo
from .selectors import FieldSelector, LabelSelector
from .store import StoredEvent

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    object: JsonDict  # in the client's view
    resource_version: int


_CLOSED = object()


class WatchFeed:
    """The events one watch request receives."""

    def __init__(
        self,
        api: Api,
        info: ResourceInfo,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> None:
        self.api = api
        self.info = info
        self.namespace = namespace if info.namespaced else None
        self.labels = labels
        self.fields = fields
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscribed = False
        # One get() outlives timeouts: cancelling a Queue.get() that a put() has
        # just woken can lose that wake-up (seen under load: a watch stalled with
        # hundreds of events queued), so a timed-out wait leaves it pending.
        self._pending: asyncio.Future[Any] | None = None

    def _matches(self, obj: JsonDict | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)

    def _translate(self, event: StoredEvent) -> WatchEvent | None:
        if event.key != self.info.storage_key:
            return None
        now, before = self._matches(event.object), self._matches(event.old)
        if event.type == "ADDED":
            kind = "ADDED" if now else None
        elif event.type == "DELETED":
            kind = "DELETED" if now else None
        elif now and before:
            kind = "MODIFIED"
        elif now:
            kind = "ADDED"
        elif before:
            kind = "DELETED"
        else:
            kind = None
        if kind is None:
            return None
        return WatchEvent(kind, self.api.view(self.info, event.object), event.resource_version)

    def _on_event(self, event: StoredEvent) -> None:
        translated = self._translate(event)
        if translated is not None:
            self._queue.put_nowait(translated)

    def start(self, resource_version: str | None, *, send_initial: bool = False) -> None:
        """Queue the initial state or the history, then subscribe (atomically).

        Raises a 410 `ApiError` when `resource_version` is older than the history.
        """
        store = self.api.store
        if send_initial or resource_version in (None, "", "0"):
            for obj in store.items(self.info.storage_key, self.namespace):
                if self._matches(obj):
                    rv = int(obj["metadata"]["resourceVersion"])
                    self._queue.put_nowait(WatchEvent("ADDED", self.api.view(self.info, obj), rv))
        else:
            try:
                since = int(str(resource_version))
            except ValueError as exc:
                raise bad_request(f"invalid resource version: {resource_version}") from exc
            for event in store.events_since(since):
                self._on_event(event)
        store.subscribe(self._on_event)
        self._subscribed = True

    def idle(self) -> bool:
        return self._queue.empty()

    async def next(self, wait: float | None) -> WatchEvent | None:
        """The next event; None after `wait` seconds or when the feed was closed."""
        if self._pending is None:
            if not self._queue.empty():
                item = self._queue.get_nowait()
            else:
                self._pending = asyncio.ensure_future(self._queue.get())
        if self._pending is not None:
            done, _ = await asyncio.wait({self._pending}, timeout=wait)
            if not done:
                return None
            item = self._pending.result()
            self._pending = None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)
            return None
        assert isinstance(item, WatchEvent)
        return item

    @property
    def closed(self) -> bool:
        return not self._subscribed

    def close(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
            self._pending = None
        if self._subscribed:
            self.api.store.unsubscribe(self._on_event)
            self._subscribed = False
        self._queue.put_nowait(_CLOSED)
