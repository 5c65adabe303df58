"""Structured JSON logs, and the one place that keeps secrets out of them.

Every record carries the engine's name, namespace and run id (bound once at
start-up) and, inside an HTTP request, the request id (bound through
contextvars, so concurrent requests never mix them up).

Secrets are registered with `Redactor.register` the moment they are read
(exchange keys, the control token). The last processor replaces any registered
secret that appears anywhere in the rendered line, whichever field or
exception message carried it there: belt and braces, since the code never
logs them on purpose.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import uuid
from collections.abc import Hashable, MutableMapping
from typing import Any, TextIO

import structlog

from hean_engine.model.clock import SYSTEM_CLOCK, Clock

REDACTED = "[REDACTED]"
_SIGNATURE = re.compile(r"(signature=)[0-9A-Za-z%+/=_-]+")
# Shorter strings are not secrets worth matching (and would mangle ordinary text).
_MIN_SECRET_LENGTH = 6


class Redactor:
    """Replaces registered secret values (and request signatures) with `[REDACTED]` in any text."""

    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) >= _MIN_SECRET_LENGTH:
            with self._lock:
                self._secrets = self._secrets | {secret}

    def clear(self) -> None:
        with self._lock:
            self._secrets = frozenset()

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "signature=" in text:
            # ccxt's HTTP errors quote the request URL, whose query carries the
            # request's HMAC: not the key, but nothing anyone needs to read.
            text = _SIGNATURE.sub(r"\1" + REDACTED, text)
        return text

    def __call__(self, logger: Any, method: str, event: str) -> str:
        """The last structlog processor: it sees the rendered line."""
        return self.redact(event)


REDACTOR = Redactor()

# A line that repeats is written at most once per this many seconds per key;
# the next one that is written says how many were left out.
THROTTLE_SECONDS = 10.0


class LogThrottle:
    """At most one line per key per `interval` seconds (a flood of refusals, a failing read).

    `allow(key)` answers None when the line is to be left out, or how many lines
    of that key were left out since the last one written (to log with it). Time
    is the engine's `Clock` (a watch on a fake clock throttles on that clock).
    """

    def __init__(self, interval: float = THROTTLE_SECONDS, clock: Clock = SYSTEM_CLOCK) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> int | None:
        now = self._clock.now()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            if len(self._last) > 1024:  # keys are few; never let them grow without bound
                self._last.clear()
            self._last[key] = now
            return self._suppressed.pop(key, 0)


class StdlibBridge(logging.Handler):
    """Records of libraries using `logging` (asyncio, aiohttp) as structured, throttled lines.

    A library's own handler would print a multi-line traceback that bypasses
    the redactor; here a record becomes one JSON line with the exception's type
    and message (redacted like any line), and one that repeats is throttled.
    """

    def __init__(self, throttle: LogThrottle | None = None) -> None:
        super().__init__(logging.WARNING)
        self.throttle = throttle or LogThrottle()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            suppressed = self.throttle.allow((record.name, str(record.msg)))
            if suppressed is None:
                return
            fields: dict[str, Any] = {"logger_name": record.name}
            if suppressed:
                fields["suppressed"] = suppressed
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                fields["error"] = f"{type(exc).__name__}: {exc}"[:500]
            level = record.levelname.lower()
            logger = structlog.get_logger("hean.lib")
            method = getattr(logger, level if level in ("warning", "error", "critical") else "info")
            method(record.getMessage()[:500], **fields)
        except Exception:  # a log line must never take the engine down
            return


def install_stdlib_bridge(throttle: LogThrottle | None = None) -> StdlibBridge:
    """Route the root logger (WARNING and up) through `StdlibBridge`, replacing an earlier one."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StdlibBridge):
            root.removeHandler(handler)
    bridge = StdlibBridge(throttle)
    root.addHandler(bridge)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    return bridge


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def configure_logging(
    *,
    level: str = "info",
    stream: TextIO | None = None,
    redactor: Redactor = REDACTOR,
    **context: Any,
) -> None:
    """JSON lines on `stream` (stderr), with `context` bound to every record."""
    out = stream if stream is not None else sys.stderr
    numeric = logging.getLevelName(level.upper())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _bind(context),
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(sort_keys=True),
        redactor,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    install_stdlib_bridge()


def _bind(context: dict[str, Any]) -> Any:
    def processor(
        logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in context.items():
            event_dict.setdefault(key, value)
        return event_dict

    return processor


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
