"""What the operator may ask a running engine to do (`POST /control`), and its answer.

`resume` only unpauses. `reset-halt` is the one command that lifts a HALTED or
REDUCING risk state, and the operator sends it only when a user sets
`spec.halt` from true to false: never a poll, a reconcile or a restart.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

Command = Literal["pause", "resume", "reduce", "halt", "reset-halt"]
COMMANDS: tuple[Command, ...] = get_args(Command)


class ControlRequest(BaseModel):
    """The body of `POST /control`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Command


class ControlReply(BaseModel):
    """The engine's answer to `POST /control`: its risk state once the command is applied.

    camelCase on the wire (snake_case accepted too, as an engine image of an earlier
    release writes it); unknown fields are ignored, as in the report.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    command: Command
    risk_state: str  # ACTIVE, REDUCING or HALTED
    risk_state_reason: str = ""
    paused: bool
    open_orders: int  # how many orders are still open
