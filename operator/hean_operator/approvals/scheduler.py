"""Re-evaluate an engine's approvals at the exact instant time alone changes their verdict.

An approval turns valid at `notBefore` and invalid at `expiresAt` (or when a signing
key's `notAfter` passes) with nothing changing in the cluster, so no watch event
would tell the operator. Each engine therefore gets one in-memory timer, set to
its approvals' `next_change` and replaced whenever they are evaluated again.

The clock is injected: `SystemClock` runs timers on the event loop, and tests
drive a fake clock forward instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle: ...


class SystemClock:
    """Wall time, with timers on an asyncio loop.

    The loop's timers run on the monotonic clock; should the wall clock jump,
    a timer fires early or late. Early is harmless (the evaluation finds the
    verdict unchanged and sets the timer again); late is covered by the status
    poll, which re-evaluates any engine whose `next_change` has passed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        delay = max(0.0, (when - self.now()).total_seconds())
        return self._loop.call_later(delay, callback)


class Scheduler:
    """At most one pending timer per key; `fire(key)` runs when it is due."""

    def __init__(self, clock: Clock, fire: Callable[[Hashable], None]) -> None:
        self._clock = clock
        self._fire = fire
        self._timers: dict[Hashable, tuple[datetime, TimerHandle]] = {}

    def schedule(self, key: Hashable, when: datetime | None) -> None:
        """Fire `key` at `when` (None: never), replacing any earlier timer for it."""
        current = self._timers.get(key)
        if current is not None and current[0] == when:
            return  # already set for that instant
        self.cancel(key)
        if when is None:
            return

        def due() -> None:
            if self._timers.get(key, (None,))[0] == when:
                del self._timers[key]
            self._fire(key)

        self._timers[key] = (when, self._clock.call_at(when, due))

    def cancel(self, key: Hashable) -> None:
        current = self._timers.pop(key, None)
        if current is not None:
            current[1].cancel()

    def pending(self) -> dict[Hashable, datetime]:
        return {key: when for key, (when, _) in self._timers.items()}
