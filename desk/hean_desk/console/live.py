"""Live state: a Kubernetes watch of TradingEngines, fanned out to the pages.

One watch per console process (not one per browser tab, and no poll of every
engine): a thread iterates the client's blocking watch and hands each event to
the event loop, which updates the engines it knows and wakes every open
Server-Sent Events stream with the key of the engine that changed. When the
watch ends (the API server closes watches after a while) or fails, it is
started again after a short pause and the list is read again, so nothing that
happened in between is missed.

The overview's sparklines come from here too: each engine's equity as the
watch reports it, seeded from the engine's own equity history the first time
the engine is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

from hean_desk.console.display import candles_before, decimal_or_none
from hean_desk.console.source import ConsoleClient, WatchEvent
from hean_desk.console.views import key_of

LOG = logging.getLogger("hean_desk.console")
SPARK_POINTS = 60
RESTART_PAUSE = 2.0


class EngineHub:
    """The engines as last seen, and the open streams to wake when one changes."""

    def __init__(self, client: ConsoleClient) -> None:
        self.client = client
        self.engines: dict[str, dict[str, Any]] = {}
        self.equity: dict[str, deque[Decimal]] = {}
        self._seeded: set[str] = set()
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.watch_events = 0  # how many watch events arrived
        self.restart_pause = RESTART_PAUSE

    # -- subscribers ---------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._subscribers.discard(queue)

    def close_streams(self) -> None:
        """Ask every open stream to end (the server is shutting down)."""
        for queue in self._subscribers:
            queue.put_nowait(None)

    # -- state ---------------------------------------------------------------------------

    def replace_all(self, engines: list[dict[str, Any]]) -> None:
        """A fresh list: engines not in it are gone."""
        seen = {key_of(engine): engine for engine in engines}
        for key in set(self.engines) - set(seen):
            self.apply(("DELETED", self.engines[key]))
        for engine in engines:
            self.apply(("MODIFIED", engine))

    def apply(self, event: WatchEvent) -> None:
        kind, engine = event
        key = key_of(engine)
        if kind == "DELETED":
            self.engines.pop(key, None)
            self.equity.pop(key, None)
            self._seeded.discard(key)
        else:
            previous = self.engines.get(key)
            self.engines[key] = engine
            self._record_equity(key, engine, previous)
        for queue in self._subscribers:
            queue.put_nowait(key)

    def _record_equity(
        self, key: str, engine: dict[str, Any], previous: dict[str, Any] | None
    ) -> None:
        equity = decimal_or_none((engine.get("status") or {}).get("equity"))
        before = decimal_or_none(((previous or {}).get("status") or {}).get("equity"))
        series = self.equity.setdefault(key, deque(maxlen=SPARK_POINTS))
        if equity is not None and (equity != before or not series):
            series.append(equity)

    async def seed_equity(self, key: str) -> None:
        """The engine's recent equity points, read once, ahead of what the watch adds."""
        if key in self._seeded:
            return
        self._seeded.add(key)
        namespace, name = key.split("/", 1)
        engine = self.engines.get(key, {})
        try:
            points = await asyncio.to_thread(
                self.client.engine_history,
                namespace,
                name,
                "equity",
                # pages are oldest first: ask for the recent ones
                since=candles_before(engine, SPARK_POINTS, from_day_start=False),
            )
        except Exception as exc:  # an engine not running yet has no history to read
            LOG.debug("no equity history for %s: %s", key, exc)
            self._seeded.discard(key)
            return
        values = [v for v in (decimal_or_none(p.get("equity")) for p in points) if v is not None]
        series = self.equity.setdefault(key, deque(maxlen=SPARK_POINTS))
        merged = values[-SPARK_POINTS:] + [v for v in series if not values or v != values[-1]]
        series.clear()
        series.extend(merged[-SPARK_POINTS:])

    # -- the watch thread ----------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(
            target=self._watch_forever, name="engine-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _deliver(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(callback)

    def _watch_forever(self) -> None:
        while not self._stop.is_set():
            try:
                engines = self.client.list_engines()
                self._deliver(partial(self.replace_all, engines))
                for event in self.client.watch_engines():
                    if self._stop.is_set():
                        return
                    self.watch_events += 1
                    self._deliver(partial(self.apply, event))
            except Exception as exc:  # the API server went away, or refused: try again
                if self._stop.is_set():
                    return
                LOG.warning("TradingEngine watch failed (%s); restarting", exc)
            self._stop.wait(self.restart_pause)
