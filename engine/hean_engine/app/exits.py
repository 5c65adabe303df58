"""How every `hean` command turns the engine's errors into an exit status and one line.

0 success, 1 a runtime failure or a refusal (a live start without approval, an
approval that does not verify), 2 bad configuration or data, with the field
path or file line named on stderr. The engine's command line and its command
groups all use these, so the statuses mean the same everywhere.

In a pod the same line is also the container's termination message (the file
named by `HEAN_TERMINATION_MESSAGE_PATH`, which the operator's pod builder
points at the pod's `terminationMessagePath`): Kubernetes keeps it in the
container's status, and the operator shows an engine that exited with status 2
as Invalid with that reason, e.g. an unknown strategy or `spec.strategy.params.
period: ...` (a strategy installed in the image is only checked here, at start-up).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

# Exit status 2 and the termination message are part of the engine's contract
# with the operator, which reads both from the container's status.
from hean_contract.errors import EXIT_INVALID, TERMINATION_MESSAGE_ENV
from hean_engine.model.errors import ConfigError, DataError, HeanError

EXIT_RUNTIME = 1
__all__ = ["EXIT_INVALID", "EXIT_RUNTIME", "fail", "user_errors", "write_termination_message"]

# Kubernetes keeps at most 4096 bytes of a termination message.
_TERMINATION_MESSAGE_BYTES = 4096


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    write_termination_message(message)
    sys.exit(code)


def write_termination_message(message: str) -> None:
    """The reason as the container's last words, where Kubernetes reads them (if asked)."""
    path = os.environ.get(TERMINATION_MESSAGE_ENV)
    if not path:
        return
    # Cut at the byte limit without splitting a character.
    data = message.encode("utf-8")[:_TERMINATION_MESSAGE_BYTES].decode("utf-8", "ignore").encode()
    # Best effort: stderr already has the reason, and failing to write a second
    # copy must not replace the real error with an I/O one.
    with contextlib.suppress(OSError), open(path, "wb") as out:
        out.write(data)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the engine's own errors into exit statuses with a one-line reason."""
    try:
        yield
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)
    except DataError as exc:
        fail(f"bad data file: {exc}", EXIT_INVALID)
    except HeanError as exc:  # LiveTradingRefused included
        fail(str(exc), EXIT_RUNTIME)
