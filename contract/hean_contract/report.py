"""The engine's report: its `GET /status` document, which the operator reads.

One typed document written by the engine (`hean_engine.control.status`), read
by the operator (`hean_operator.engines`) and served by the sandbox's fake
engine, in the way CloudNativePG's instance manager and operator share one
status struct. camelCase on the wire. Money is a decimal string (exact), times
are RFC 3339 UTC. Nothing from the credentials or the control token is part of
it: the engine builds it from its books and its kernel only.

Readers ignore fields they do not know, so an operator reads the report of an
engine image one release newer than itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from hean_contract.spec import Mode


class ReportModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class ReportedOrder(ReportModel):
    id: str
    side: str
    type: str
    quantity: str
    remaining: str
    price: str | None = None
    created: str | None = None
    tag: str = ""


class ReconcileReport(ReportModel):
    """The last comparison of the engine's books with the exchange's (live only)."""

    result: str  # ok, drift or failed
    time: str
    reason: str | None = None
    # currency -> {"engine", "exchange", "difference"} as decimal strings
    balances: dict[str, dict[str, str]] | None = None
    difference_value: str | None = None
    tolerance: str | None = None
    # Open orders on the exchange that are not this engine's (no client-id prefix of its
    # own), as the engine's reconcile lists them: each a mapping of the exchange's fields.
    foreign_orders: list[dict[str, Any]] | None = None
    summary: str | None = None
    drift_since: str | None = None


class ApprovalReport(ReportModel):
    """The latest LiveApproval verdict of a live engine, as the engine checked it."""

    valid: bool
    reason: str
    message: str
    key_ids: list[str] = Field(default_factory=list)
    expires_at: str | None = None
    checked_at: str | None = None


class RecentEvent(ReportModel):
    time: str | None = None
    kind: str
    detail: str


class EngineReport(ReportModel):
    """Everything the operator copies into `TradingEngine.status`, and more."""

    name: str
    namespace: str
    generation: int
    run_id: str
    mode: str  # paper, live or replay
    exchange: str
    symbol: str
    strategy: str
    ready: bool
    ready_reason: str
    risk_state: str  # ACTIVE, REDUCING or HALTED
    risk_state_reason: str = ""
    paused: bool
    position: str
    balances: dict[str, str]
    equity: str
    pnl: str
    max_drawdown: str
    fees: str
    open_orders: list[ReportedOrder]
    orders_submitted: int
    orders_closed: dict[str, int]
    fills: int
    rejections: dict[str, int]
    events: int
    last_data_time: str | None = None
    last_reconcile: ReconcileReport | None = None
    # Live sessions' counters (journal, order outcomes): for people, not read by the operator.
    live: dict[str, Any] | None = None
    approval: ApprovalReport | None = None
    recent_events: list[RecentEvent] = Field(default_factory=list)

    @property
    def halted(self) -> bool:
        return self.risk_state == "HALTED"

    @property
    def is_live(self) -> bool:
        return self.mode == Mode.LIVE.value
