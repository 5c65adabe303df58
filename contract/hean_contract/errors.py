"""Errors that carry a user-facing message naming the field at fault."""

from __future__ import annotations


class HeanError(Exception):
    """Base class of HEAN's own errors."""


class ConfigError(HeanError):
    """The configuration is invalid; `problems` lists `field.path: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


# The environment variable naming the file where an engine that refuses to start
# writes its reason (the pod's `terminationMessagePath`, set by the operator's pod
# builder): Kubernetes keeps that text in the container's status for the operator.
TERMINATION_MESSAGE_ENV = "HEAN_TERMINATION_MESSAGE_PATH"
# What the engine's exit status 2 means there: its configuration was refused.
EXIT_INVALID = 2
