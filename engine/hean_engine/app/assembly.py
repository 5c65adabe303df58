"""Builds the component graph for one engine: ledger, risk, venue, kernel, strategy."""

from __future__ import annotations

from dataclasses import dataclass

from hean_contract.spec import EngineIdentity, TradingEngineSpec
from hean_engine.execution.simulated import SimulatedVenue
from hean_engine.execution.venue import Venue
from hean_engine.kernel.engine import TradingKernel
from hean_engine.model.orders import RiskState
from hean_engine.portfolio.ledger import Ledger
from hean_engine.risk.engine import RiskEngine
from hean_engine.strategy.base import Strategy
from hean_engine.strategy.registry import build_strategy


@dataclass
class Engine:
    identity: EngineIdentity
    spec: TradingEngineSpec
    kernel: TradingKernel
    strategy: Strategy

    @property
    def ledger(self) -> Ledger:
        return self.kernel.ledger

    @property
    def risk(self) -> RiskEngine:
        return self.kernel.risk


def build_simulated_engine(identity: EngineIdentity, spec: TradingEngineSpec) -> Engine:
    """Replay and paper: simulated fills against the spec's paper account."""
    ledger = Ledger(spec.market.base, spec.market.quote, dict(spec.paper.starting_balances))
    venue = SimulatedVenue(spec.paper.fee_rate, spec.paper.slippage_bps, ledger.can_pay)
    return _assemble(identity, spec, ledger, venue)


def build_live_engine(identity: EngineIdentity, spec: TradingEngineSpec, venue: Venue) -> Engine:
    """Live: the books start empty and are taken from the exchange at start-up."""
    ledger = Ledger(spec.market.base, spec.market.quote, {})
    return _assemble(identity, spec, ledger, venue)


def _assemble(
    identity: EngineIdentity, spec: TradingEngineSpec, ledger: Ledger, venue: Venue
) -> Engine:
    risk = RiskEngine(spec.risk, ledger, spec.paper.fee_rate)
    kernel = TradingKernel(ledger, risk, venue)
    strategy = build_strategy(spec.strategy, kernel)
    kernel.attach(strategy)
    if spec.paused:
        kernel.pause()
    if spec.halt:
        kernel.set_risk_state(RiskState.HALTED, "spec.halt")
    return Engine(identity, spec, kernel, strategy)
