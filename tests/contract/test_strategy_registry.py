"""One strategy registry (hean_contract.strategies): everything else is derived from it.

The spec's validation, the CRD's CEL rules and descriptions, the reference
and the engine's implementation classes all follow the registry; these tests
change the registry and watch each of them follow, so that a hand-made copy
(a literal list of names, a default copied into a rule) fails here.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field

from engine_support import spec_dict
from hean_contract import strategies
from hean_contract.errors import ConfigError
from hean_contract.fields import Count
from hean_contract.spec import parse_spec
from hean_contract.strategies import (
    BUILTIN_STRATEGIES,
    EmaCrossParams,
    StrategyInfo,
    StrategyParams,
)
from hean_engine.strategy.registry import STRATEGY_CLASSES
from hean_operator.crds.reference import render_reference
from hean_operator.crds.tradingengine import build_tradingengine_crd, strategy_rules

ROOT = Path(__file__).resolve().parents[2]


class ToyParams(StrategyParams):
    ordered: ClassVar[tuple[tuple[str, str], ...]] = (("short_window", "long_window"),)

    short_window: Count = Field(default=3, ge=1, description="Short window in candles.")
    long_window: Count = Field(default=9, ge=2, description="Long window in candles.")


TOY = StrategyInfo("toy", ToyParams, "candles, nothing sent")


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILTIN_STRATEGIES, "toy", TOY)


def _with_strategy(name: str, params: dict[str, typing.Any]) -> dict[str, typing.Any]:
    spec = spec_dict()
    spec["strategy"] = {"name": name, "params": params}
    return spec


def _strategy_schema() -> dict[str, typing.Any]:
    spec = build_tradingengine_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    strategy: dict[str, typing.Any] = spec["properties"]["spec"]["properties"]["strategy"]
    return strategy


def test_engine_implements_exactly_the_registered_strategies() -> None:
    assert set(STRATEGY_CLASSES) == set(BUILTIN_STRATEGIES)
    for name, cls in STRATEGY_CLASSES.items():
        assert cls.name == name
        registered = BUILTIN_STRATEGIES[name].params
        assert cls.params_model is registered, name
        # ... and the constructor takes that model, not another.
        hints = typing.get_type_hints(cls.__init__)
        assert hints["params"] is registered, name


def test_spec_validation_follows_the_registry(
    monkeypatch: pytest.MonkeyPatch, toy_registered: None
) -> None:
    spec = parse_spec(_with_strategy("toy", {"longWindow": 20}))
    assert spec.strategy.typed_params() == ToyParams(short_window=3, long_window=20)
    with pytest.raises(ConfigError) as refused:
        parse_spec(_with_strategy("toy", {"shortWindow": 9}))
    assert refused.value.problems == [
        "spec.strategy.params.shortWindow: must be less than longWindow "
        "(shortWindow 9, longWindow 9)"
    ]
    # A name the registry does not list may be a strategy installed in the
    # engine's image: the spec accepts it (params unchecked), the engine decides.
    with pytest.raises(ConfigError):
        parse_spec(_with_strategy("market_maker", {}))  # a built-in: quantity is required
    monkeypatch.delitem(BUILTIN_STRATEGIES, "market_maker")
    spec = parse_spec(_with_strategy("market_maker", {}))
    assert not spec.strategy.builtin and spec.strategy.params == {}


def test_cel_rules_are_generated_from_the_registry(toy_registered: None) -> None:
    rules = {rule["message"]: rule["rule"] for rule in strategy_rules()}
    # No rule lists the names: an installed strategy's name must pass the CRD.
    assert set(rules) == {
        "ema_cross needs params.fast < params.slow",
        "toy needs params.shortWindow < params.longWindow",
    }
    # The defaults in the rule are the model's, read when the CRD is built.
    assert rules["toy needs params.shortWindow < params.longWindow"] == (
        "self.name != 'toy' || !has(self.params) || "
        "(has(self.params.shortWindow) ? int(self.params.shortWindow) : 3) < "
        "(has(self.params.longWindow) ? int(self.params.longWindow) : 9)"
    )
    strategy = _strategy_schema()
    assert strategy["x-kubernetes-validations"] == strategy_rules()
    # CEL reaches only declared fields: each compared parameter is declared.
    declared = strategy["properties"]["params"]["properties"]
    assert set(declared) == {"fast", "slow", "shortWindow", "longWindow"}
    assert declared["longWindow"]["description"] == "toy: Long window in candles."


def test_a_changed_default_changes_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    class SlowerEmaCross(EmaCrossParams):
        fast: Count = Field(default=50, ge=1, description="Fast EMA length in candles.")
        slow: Count = Field(default=200, ge=2, description="Slow EMA length in candles.")

    monkeypatch.setitem(
        BUILTIN_STRATEGIES, "ema_cross", StrategyInfo("ema_cross", SlowerEmaCross, "candles")
    )
    rule = next(r["rule"] for r in strategy_rules() if r["message"].startswith("ema_cross"))
    assert ": 50) < " in rule and ": 200)" in rule
    assert ": 12)" not in rule and ": 26)" not in rule


def test_descriptions_and_reference_follow_the_registry(toy_registered: None) -> None:
    description = _strategy_schema()["properties"]["name"]["description"]
    assert description == (
        "Strategy name: ema_cross (candles, market orders), market_maker "
        "(trades, resting limit orders) or toy (candles, nothing sent); or the name of a "
        "strategy installed in the engine's image (an entry point in the group "
        "hean.strategies), whose params the engine checks at start-up."
    )
    reference = render_reference()
    assert "### `toy`\n\nData and orders: candles, nothing sent." in reference
    assert "| `params.shortWindow` | integer | `3` |" in reference


def test_the_registry_refuses_a_name_twice() -> None:
    with pytest.raises(ValueError, match="'toy' is registered twice"):
        strategies._registry(TOY, TOY)


@pytest.mark.parametrize(
    "path",
    [
        "contract/hean_contract/spec.py",
        "operator/hean_operator/crds/tradingengine.py",
        "operator/hean_operator/crds/reference.py",
    ],
)
def test_no_copy_of_a_strategy_name_outside_the_registry(path: str) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    for name in BUILTIN_STRATEGIES:
        assert not re.search(rf"\b{name}\b", source), f"{path} names {name!r}: use the registry"


def test_the_engine_registry_keys_its_classes_by_their_own_names() -> None:
    # (Its imports name the strategy modules; a quoted name would be a copy.)
    source = (ROOT / "engine/hean_engine/strategy/registry.py").read_text(encoding="utf-8")
    for name in BUILTIN_STRATEGIES:
        assert not re.search(rf"[\"']{name}[\"']", source), f"the engine's registry spells {name}"
