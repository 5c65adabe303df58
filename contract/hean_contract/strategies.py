"""The built-in strategies: one registry, from which everything else is derived.

Each entry names a strategy, the pydantic model of its `params` and a
one-line summary. From this registry alone come:

- the spec's validation (`StrategySpec` in `hean_contract.spec`: a built-in
  name's params are valid for its model);
- the CRD's CEL rules on `spec.strategy` and the description of
  `spec.strategy.name` (`hean_operator.crds.tradingengine`), including the
  defaults a cross-field rule falls back to when a parameter is absent;
- the reference's section on strategy parameters (`hean_operator.crds.reference`);
- and, in the engine, the implementation classes (`hean_engine.strategy.registry`
  maps the same names to classes; a test proves the two key sets equal).

Users' strategies are not listed here: the operator cannot import their code.
They are Python packages installed into the engine's image and found by the
engine through the entry-point group `ENTRY_POINT_GROUP` (name = the value of
`spec.strategy.name`, object = the strategy class). The spec and the CRD
accept any name of `NAME_PATTERN`'s form with params that are an object; the
engine validates the rest at start-up with the installed strategy's own model.

Adding a built-in strategy is adding one `StrategyInfo` to `BUILTIN_STRATEGIES`
(its class to the engine, and its entry point to pyproject.toml). The operator
imports this module, never strategy code: so the parameter models live here,
not beside their implementations. Consumers read `BUILTIN_STRATEGIES` when
they run, not when they are imported (tests extend it).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field, model_validator

from hean_contract.fields import NESTED_MARK, CamelModel, Count, PositiveDecimal


class StrategyParams(CamelModel):
    """The base of every strategy's parameter model.

    `ordered` lists pairs (smaller, larger) of integer parameters where the
    first must be strictly less than the second. The model checks them here,
    and the CRD generator turns each pair into a CEL rule (so the apiserver
    refuses such a spec before the operator sees it), with the fields' own
    defaults standing in for absent parameters.
    """

    ordered: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def _strictly_ordered(self) -> StrategyParams:
        for smaller, larger in self.ordered:
            low, high = getattr(self, smaller), getattr(self, larger)
            if low >= high:
                a, b = wire_name(type(self), smaller), wire_name(type(self), larger)
                raise ValueError(f"{NESTED_MARK}{a}: must be less than {b} ({a} {low}, {b} {high})")
        return self


def wire_name(model: type[CamelModel], field: str) -> str:
    """The camelCase name a parameter is written under in a spec."""
    return model.model_fields[field].alias or field


def default_of(model: type[CamelModel], field: str) -> Any:
    """A parameter's default (what an absent parameter means); KeyError when it has none."""
    info = model.model_fields[field]
    if info.is_required():
        raise KeyError(f"{model.__name__}.{field} has no default")
    return info.get_default(call_default_factory=True)


class EmaCrossParams(StrategyParams):
    ordered: ClassVar[tuple[tuple[str, str], ...]] = (("fast", "slow"),)

    fast: Count = Field(default=12, ge=1, le=10_000, description="Fast EMA length in candles.")
    slow: Count = Field(default=26, ge=2, le=10_000, description="Slow EMA length in candles.")
    quantity: PositiveDecimal = Field(description="Base quantity bought on a golden cross.", gt=0)


class MarketMakerParams(StrategyParams):
    quantity: PositiveDecimal = Field(description="Base quantity of each resting quote.", gt=0)
    spread_bps: PositiveDecimal = Field(
        default=Decimal(20),
        gt=0,
        le=5000,
        description="Distance of each quote from the reference price, in basis points.",
    )
    requote_bps: PositiveDecimal = Field(
        default=Decimal(10),
        gt=0,
        le=5000,
        description="Move of the reference price (in basis points) that makes the quotes move.",
    )
    max_position: PositiveDecimal = Field(
        description="Largest base position; no bid is quoted while the position is at or above it.",
        gt=0,
    )
    tick_size: PositiveDecimal = Field(
        default=Decimal("0.00000001"),
        gt=0,
        description="Price increment quotes are rounded to (bids down, asks up).",
    )
    window: Count = Field(
        default=50, ge=1, le=100_000, description="Trades in the reference price's EMA."
    )


@dataclass(frozen=True)
class StrategyInfo:
    """One strategy as the spec, the CRD and the docs know it (not its implementation)."""

    name: str
    params: type[StrategyParams]
    # What it reads and how it trades, in a few words ("candles, market orders"):
    # the CRD's description of `spec.strategy.name` lists it after the name.
    summary: str


def _registry(*entries: StrategyInfo) -> dict[str, StrategyInfo]:
    registry: dict[str, StrategyInfo] = {}
    for entry in entries:
        if entry.name in registry:
            raise ValueError(f"strategy {entry.name!r} is registered twice")
        registry[entry.name] = entry
    return registry


BUILTIN_STRATEGIES: dict[str, StrategyInfo] = _registry(
    StrategyInfo("ema_cross", EmaCrossParams, "candles, market orders"),
    StrategyInfo("market_maker", MarketMakerParams, "trades, resting limit orders"),
)


# The entry-point group a strategy is registered in (the contract).
ENTRY_POINT_GROUP = "hean.strategies"

# The form of every strategy name, built-in or installed: a Python-identifier-like
# entry point name in lower case (what the spec and the CRD check for a name they
# do not know). 63 characters at most, as a Kubernetes label value.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
NAME_MAX_LENGTH = 63


def strategy_names() -> list[str]:
    """The registered names, in registration order."""
    return list(BUILTIN_STRATEGIES)


def bad_name_message(name: str) -> str:
    """What the spec says about a name no strategy could be registered under."""
    return (
        f"{name!r} is not a strategy name: lower-case letters, digits and underscores, "
        f"starting with a letter, at most {NAME_MAX_LENGTH} characters"
    )


def unknown_strategy_message(name: str, installed: list[str]) -> str:
    """What the engine says when no installed strategy has the spec's name."""
    return (
        f"unknown strategy {name!r}: no strategy of that name is installed in this engine "
        f"(installed: {', '.join(sorted(installed)) or 'none'}); a strategy package "
        f"registers its class under the entry-point group {ENTRY_POINT_GROUP}"
    )


def name_description() -> str:
    """The description of `spec.strategy.name`: every built-in strategy, then the others."""
    listed = [f"{info.name} ({info.summary})" for info in BUILTIN_STRATEGIES.values()]
    if len(listed) > 1:
        listed = [", ".join(listed[:-1]) + " or " + listed[-1]]
    builtin = listed[0] if listed else "none built in"
    return (
        f"Strategy name: {builtin}; or the name of a strategy installed in the engine's "
        f"image (an entry point in the group {ENTRY_POINT_GROUP}), whose params the engine "
        "checks at start-up."
    )
