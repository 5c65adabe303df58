"""Errors that carry a user-facing message naming the field at fault."""

from __future__ import annotations


class HeanError(Exception):
    """Base class of HEAN's own errors."""


class ConfigError(HeanError):
    """The configuration is invalid; `problems` lists `field.path: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
