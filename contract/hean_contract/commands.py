"""What the operator may ask a running engine to do: `POST /control`.

`resume` only unpauses. `reset-halt` is the one command that lifts a HALTED or
REDUCING risk state, and the operator sends it only when a user sets
`spec.halt` from true to false: never a poll, a reconcile or a restart.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

Command = Literal["pause", "resume", "reduce", "halt", "reset-halt"]
COMMANDS: tuple[Command, ...] = get_args(Command)


class ControlRequest(BaseModel):
    """The body of `POST /control`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Command
