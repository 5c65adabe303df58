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
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"
_SIGNATURE = re.compile(r"(signature=)[0-9A-Za-z%+/=_-]+")
# Shorter strings are not secrets worth matching (and would mangle ordinary text).
_MIN_SECRET_LENGTH = 6


class Redactor:
    """Replaces registered secret values with a placeholder in any text."""

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
