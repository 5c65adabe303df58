"""Strategies found by entry point (`hean.strategies`): discovery, the built-ins, every error.

A strategy is registered by an entry point in the group `hean.strategies`:
name = the value of `spec.strategy.name`, object = the strategy class. The
spec and the CRD accept any well-formed name (the operator cannot import a
user's code); the engine finds the class when it starts and refuses, with a
reason naming the field, what it cannot run. Packages are installed into
throwaway directories put on sys.path, never into the shared environment.
"""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from engine_support import REPO_ROOT, candle, manifest_dict, spec_dict
from hean_contract.errors import TERMINATION_MESSAGE_ENV, ConfigError
from hean_contract.spec import EngineIdentity, parse_spec
from hean_contract.strategies import BUILTIN_STRATEGIES, ENTRY_POINT_GROUP
from hean_engine.app.assembly import build_simulated_engine
from hean_engine.cli import main
from hean_engine.strategy import registry
from hean_engine.strategy.registry import STRATEGY_CLASSES, find_strategy, installed_names
from hean_operator.crds.tradingengine import build_tradingengine_crd
from strategy_support import write_package

TOY_SOURCE = """
from typing import ClassVar

from pydantic import Field

from hean_engine.strategy import Candle, Count, OrderIntent, Side, Strategy, StrategyParams


class EveryNParams(StrategyParams):
    every: Count = Field(default=3, ge=1, le=100, description="Buy on every n-th candle.")
    quantity: str = Field(default="0.01", description="Base quantity.")


class EveryN(Strategy):
    consumes = "candles"
    params_model = EveryNParams

    def __init__(self, ctx, params):
        super().__init__(ctx, params)
        self.seen = 0
        self.balances = []

    def on_candle(self, candle: Candle) -> None:
        self.seen += 1
        self.balances.append(dict(self.ctx.balances))
        if self.seen % self.params.every == 0:
            from decimal import Decimal
            self.ctx.submit(OrderIntent(Side.BUY, Decimal(self.params.quantity)))


class NotAStrategy:
    pass


class ReadsTicks(EveryN):
    consumes = "ticks"


class UntypedParams(EveryN):
    params_model = dict

"""

BROKEN_SOURCE = "import a_module_nobody_installed\n"


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution `toy-plugin` on sys.path registering the toy's classes."""
    target = write_package(
        tmp_path / "site",
        "toy_plugin",
        TOY_SOURCE,
        {
            "every_n": "toy_plugin:EveryN",
            "not_a_strategy": "toy_plugin:NotAStrategy",
            "reads_ticks": "toy_plugin:ReadsTicks",
            "untyped_params": "toy_plugin:UntypedParams",
            "missing_class": "toy_plugin:Nowhere",
            # A built-in's name taken by another class: refused, never resolved by order.
            "ema_cross": "toy_plugin:EveryN",
        },
    )
    write_package(target, "broken_plugin", BROKEN_SOURCE, {"broken": "broken_plugin:X"})
    monkeypatch.syspath_prepend(str(target))
    yield target
    for module in ("toy_plugin", "broken_plugin"):
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


def _spec(name: str, params: dict[str, Any]) -> Any:
    data = spec_dict()
    data["strategy"] = {"name": name, "params": params}
    return parse_spec(data)


def _problems(name: str, params: dict[str, Any] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        build_simulated_engine(EngineIdentity(), _spec(name, params or {}))
    return refused.value.problems


# -- the built-ins are on the same mechanism ---------------------------------------


def test_pyproject_registers_every_builtin_under_its_name() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert set(declared) == set(STRATEGY_CLASSES) == set(BUILTIN_STRATEGIES)
    for name, value in declared.items():
        module, _, attr = value.partition(":")
        assert getattr(importlib.import_module(module), attr) is STRATEGY_CLASSES[name]


def test_builtins_run_without_any_entry_point_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    # An install whose metadata predates the entry points still runs the built-ins.
    monkeypatch.setattr(registry, "entry_points", lambda **_: [])
    assert find_strategy("ema_cross") is STRATEGY_CLASSES["ema_cross"]
    assert installed_names() == sorted(STRATEGY_CLASSES)


# -- a user's package ----------------------------------------------------------------


def test_a_package_on_the_path_is_found_by_its_entry_point_name(toy: Path) -> None:
    assert "every_n" in installed_names()
    engine = build_simulated_engine(EngineIdentity(), _spec("every_n", {"every": 2}))
    strategy: Any = engine.strategy
    assert type(strategy).__module__ == "toy_plugin" and type(strategy).__name__ == "EveryN"
    assert strategy.params.every == 2
    for minute in range(4):
        engine.kernel.on_candle(candle(minute, 100.0))
    assert strategy.seen == 4
    assert strategy.balances[0] == {"BTC": 0, "USD": 10_000}
    # Every second candle buys; a market order fills at the next candle's open.
    assert len(engine.kernel.fills) == 1 and engine.kernel.orders_submitted == 2


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"every": 0}, "spec.strategy.params.every: Input should be greater than or equal to 1"),
        ({"evry": 2}, "spec.strategy.params.evry: unknown field"),
        ({"every": "often"}, "spec.strategy.params.every: Input should be a valid integer"),
    ],
)
def test_bad_params_are_refused_naming_the_field(
    toy: Path, params: dict[str, Any], problem: str
) -> None:
    problems = _problems("every_n", params)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_an_unknown_name_lists_what_is_installed(toy: Path) -> None:
    [problem] = _problems("no_such_strategy")
    assert problem.startswith(
        "spec.strategy.name: unknown strategy 'no_such_strategy': no strategy of that name "
        "is installed in this engine (installed: "
    )
    assert "every_n" in problem and "market_maker" in problem
    assert problem.endswith("registers its class under the entry-point group hean.strategies")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("not_a_strategy", "is not a subclass of hean_engine.strategy.Strategy"),
        ("reads_ticks", "`consumes` must be 'candles' or 'trades', not 'ticks'"),
        ("untyped_params", "`params_model` must be a subclass of"),
        ("missing_class", "cannot be loaded: AttributeError"),
        ("broken", "cannot be loaded: ModuleNotFoundError: No module named"),
        ("ema_cross", "is registered by more than one class (built in; toy_plugin:EveryN"),
    ],
)
def test_what_cannot_run_is_refused_with_a_reason(toy: Path, name: str, problem: str) -> None:
    params = dict(spec_dict()["strategy"]["params"]) if name == "ema_cross" else {}
    [message] = _problems(name, params)
    heads = (f"spec.strategy.name: the entry point {name!r}", "spec.strategy.name: strategy ")
    assert message.startswith(heads), message
    assert problem in message, message


# -- the spec and the CRD accept what they cannot check -----------------------------


def test_the_spec_accepts_any_well_formed_name_and_keeps_its_params() -> None:
    spec = _spec("rsi_mean_reversion", {"period": 14, "quantity": "0.01", "nested": {"a": 1}})
    assert not spec.strategy.builtin
    assert spec.strategy.params == {"period": 14, "quantity": "0.01", "nested": {"a": 1}}
    with pytest.raises(ConfigError) as not_object:
        _spec("rsi_mean_reversion", [1, 2])  # type: ignore[arg-type]
    assert not_object.value.problems == ["spec.strategy.params: Input should be a valid dictionary"]
    # The built-ins keep their exact validation.
    with pytest.raises(ConfigError) as builtin:
        _spec("ema_cross", {"fast": 30, "slow": 20, "quantity": "1"})
    assert builtin.value.problems[0].startswith("spec.strategy.params.fast: must be less than")


@pytest.mark.parametrize("name", ["Rsi", "rsi-reversion", "1rsi", "", "r" * 64, "rsi reversion"])
def test_malformed_names_are_refused_by_spec_and_crd(name: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _spec(name, {})
    assert refused.value.problems[0].startswith(f"spec.strategy.name: {name!r} is not a strategy")
    schema = build_tradingengine_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    field = schema["properties"]["spec"]["properties"]["strategy"]["properties"]["name"]
    well_formed = re.fullmatch(field["pattern"], name) and len(name) <= field["maxLength"]
    assert not well_formed
    assert re.fullmatch(field["pattern"], "rsi_mean_reversion")


# -- the command line: exit 2, the reason on stderr and as the termination message --


def test_replay_of_an_unknown_strategy_exits_2_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy: Path
) -> None:
    spec = spec_dict()
    spec["strategy"] = {"name": "every_n", "params": {"every": 0}}
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(manifest_dict(spec)), encoding="utf-8")
    data = tmp_path / "candles.csv"
    data.write_text("timestamp,open,high,low,close,volume\n2017-01-01T00:00:00Z,1,1,1,1,1\n")
    last_words = tmp_path / "termination-log"
    monkeypatch.setenv(TERMINATION_MESSAGE_ENV, str(last_words))
    result = CliRunner().invoke(
        main, ["engine", "replay", "--config", str(config), "--data", str(data)]
    )
    assert result.exit_code == 2, result.output
    reason = "spec.strategy.params.every: Input should be greater than or equal to 1"
    assert result.stderr.splitlines() == ["error: invalid configuration:", f"  {reason}"]
    assert last_words.read_text(encoding="utf-8") == f"invalid configuration:\n  {reason}"
