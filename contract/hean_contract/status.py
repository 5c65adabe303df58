"""`TradingEngine.status`: what the operator reports about an engine.

Written only through the status subresource. Money figures are decimal
strings, as everywhere in HEAN, so no client parses them into floats.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from hean_contract.spec import DECIMAL_PATTERN


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Phase(StrEnum):
    PENDING = "Pending"
    STARTING = "Starting"
    RUNNING = "Running"
    PAUSED = "Paused"
    HALTED = "Halted"
    FAILED = "Failed"
    INVALID = "Invalid"
    TERMINATING = "Terminating"


class ConditionType(StrEnum):
    READY = "Ready"
    SPEC_VALID = "SpecValid"
    RECONCILED = "Reconciled"
    LIVE_APPROVED = "LiveApproved"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_Camel):
    """One observation about the engine, in the Kubernetes condition convention."""

    type: ConditionType = Field(description="Ready, SpecValid, Reconciled or LiveApproved.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", max_length=1024, description="One CamelCase word saying why.")
    message: str = Field(default="", max_length=32768, description="Details for a person.")
    last_transition_time: str = Field(
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation this condition was computed from."
    )


_DECIMAL: JsonDict = {"pattern": DECIMAL_PATTERN}


class ReconcileStatus(_Camel):
    """The result of the last comparison of the engine's books with the exchange's."""

    time: str | None = Field(
        default=None,
        description="When the engine last compared its books with the exchange (RFC 3339).",
    )
    result: str | None = Field(default=None, description="ok, drift or failed.")
    drift: str | None = Field(
        default=None,
        description="What differed and by how much (drift), or why the books could not be "
        "compared (failed).",
    )
    since: str | None = Field(
        default=None, description="When the current drift was first seen (RFC 3339)."
    )


class TradingEngineStatus(_Camel):
    """What the operator last observed of the engine; written through the status subresource."""

    phase: Phase | None = Field(default=None, description="Where the engine is in its life.")
    conditions: list[Condition] = Field(default_factory=list, description="Latest observations.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation the operator last acted on."
    )
    mode: str | None = Field(default=None, description="paper or live, as running.")
    equity: str | None = Field(
        default=None, description="Equity in the quote currency.", json_schema_extra=_DECIMAL
    )
    pnl: str | None = Field(
        default=None, description="Equity minus starting equity.", json_schema_extra=_DECIMAL
    )
    max_drawdown: str | None = Field(
        default=None, description="Largest peak-to-trough equity drop.", json_schema_extra=_DECIMAL
    )
    position: str | None = Field(
        default=None, description="Base currency held.", json_schema_extra=_DECIMAL
    )
    open_orders: int | None = Field(default=None, ge=0, description="Orders working now.")
    risk_state: str | None = Field(default=None, description="ACTIVE, REDUCING or HALTED.")
    last_data_time: str | None = Field(
        default=None, description="Time of the latest market data event (RFC 3339)."
    )
    reconcile: ReconcileStatus | None = Field(
        default=None, description="The last reconcile between the engine's books and the exchange."
    )
    message: str | None = Field(default=None, description="Why the phase is what it is.")
    last_handled_spec: str | None = Field(
        default=None,
        description="The spec the operator last acted on, as JSON: what it compares a new "
        "spec with (a change of spec.halt from true to false is the user's explicit reset).",
    )
