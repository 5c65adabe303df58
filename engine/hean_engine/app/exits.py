"""How every `hean` command turns the engine's errors into an exit status and one line.

0 success, 1 a runtime failure or a refusal (a live start without approval, an
approval that does not verify), 2 bad configuration or data, with the field
path or file line named on stderr. The engine's command line and its command
groups all use these, so the statuses mean the same everywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

from hean_engine.model.errors import ConfigError, DataError, HeanError

EXIT_RUNTIME = 1
EXIT_INVALID = 2


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


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
