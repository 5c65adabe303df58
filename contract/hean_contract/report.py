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


class BalanceComparison(ReportModel):
    """One currency's total in the engine's books and on the exchange (decimal strings)."""

    engine: str
    exchange: str
    difference: str  # exchange - engine


class ForeignOrder(ReportModel):
    """An open order on the account that this engine did not send (drift)."""

    id: str
    client_order_id: str | None = None
    side: str | None = None
    type: str | None = None
    amount: str | None = None
    price: str | None = None


class ReconcileReport(ReportModel):
    """The last comparison of the engine's books with the exchange's (live only)."""

    result: str  # ok, drift or failed
    time: str
    reason: str | None = None
    balances: dict[str, BalanceComparison] | None = None  # by currency
    difference_value: str | None = None
    tolerance: str | None = None
    foreign_orders: list[ForeignOrder] | None = None
    summary: str | None = None
    drift_since: str | None = None


class ReconcileCounts(ReportModel):
    """Comparisons with the exchange since start, by result."""

    ok: int = 0
    drift: int = 0
    failed: int = 0
    inconclusive: int = 0  # a fill landed while the snapshot was taken


class JournalReport(ReportModel):
    """The intent journal of a live engine."""

    path: str
    writes: int
    unresolved: int
    bytes: int
    compactions: int
    recovered: dict[str, int] = Field(default_factory=dict)  # at start-up, by outcome


class OrderCounts(ReportModel):
    """A live engine's order path since start."""

    submissions: int = 0
    acknowledged: int = 0
    unknown_outcomes: int = 0
    lookups: int = 0
    lookups_found: int = 0
    lookups_absent: int = 0
    resends: int = 0
    duplicates_refused: int = 0
    not_placed: int = 0
    in_flight: int = 0
    adopted: int = 0
    foreign_fills: int = 0


class LiveReport(ReportModel):
    """A live session's counters: for people (and tests), not read by the operator."""

    reconciles: ReconcileCounts
    drift: bool
    journal: JournalReport
    orders: OrderCounts
    exchange_call_failures: int = 0


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
    live: LiveReport | None = None
    approval: ApprovalReport | None = None
    recent_events: list[RecentEvent] = Field(default_factory=list)

    @property
    def halted(self) -> bool:
        return self.risk_state == "HALTED"

    @property
    def is_live(self) -> bool:
        return self.mode == Mode.LIVE.value
