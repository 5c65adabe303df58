"""Live execution and the gate in front of it.

Nothing reaches a real exchange unless a `LiveGate` allows it. The gate is
one interface so that the approval check (signed LiveApproval resources) can
replace `DenyAllGate` without touching the engine, and tests can swap in a
gate that allows. The command line offers no way around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hean_contract.spec import EngineIdentity, TradingEngineSpec
from hean_engine.model.errors import LiveTradingRefused


@dataclass(frozen=True, slots=True)
class GateDecision:
    allowed: bool
    reason: str


class LiveGate(Protocol):
    def evaluate(self, identity: EngineIdentity, spec: TradingEngineSpec) -> GateDecision: ...


class DenyAllGate:
    """The gate until approvals exist: live trading is always refused."""

    def evaluate(self, identity: EngineIdentity, spec: TradingEngineSpec) -> GateDecision:
        return GateDecision(False, "no valid LiveApproval")


def require_live_approval(
    gate: LiveGate, identity: EngineIdentity, spec: TradingEngineSpec
) -> None:
    decision = gate.evaluate(identity, spec)
    if not decision.allowed:
        raise LiveTradingRefused(
            f"live trading refused for {identity.namespace}/{identity.name}: {decision.reason}"
        )
