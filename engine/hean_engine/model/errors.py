"""Errors that carry a user-facing message naming the field or the line at fault."""

from __future__ import annotations

from hean_contract.errors import ConfigError, HeanError

__all__ = ["ConfigError", "DataError", "HeanError", "LiveTradingRefused", "UnreadableError"]


class UnreadableError(ConfigError):
    """A file could not be read at all (an I/O error such as too many open files).

    Not a verdict on its content: a caller that re-reads (the approval watch)
    treats it as "could not check, try again" rather than as a bad file.
    """


class DataError(HeanError):
    """A market data file is malformed at a given line."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line}: {problem}")


class LiveTradingRefused(HeanError):
    """Live trading was asked for but the live gate did not allow it."""
