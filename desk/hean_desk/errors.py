"""The desk's one error type: a message for a person and the exit status it means."""

from __future__ import annotations

# Exit statuses of `kubectl hean`, as kubectl and click use them.
EXIT_FAILED = 1  # the request was understood but failed: not found, refused, unreachable
EXIT_USAGE = 2  # bad input (an option, an argument) or a missing dependency


class DeskError(Exception):
    """What went wrong, said for a person; never a traceback, never a secret."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
