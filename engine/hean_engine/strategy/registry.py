"""Strategy name -> implementation class: the built-ins, then the installed entry points.

A strategy is registered by an entry point in the group `hean.strategies`
(`hean_contract.strategies.ENTRY_POINT_GROUP`): name = the value of
`spec.strategy.name`, object = the strategy class. HEAN's own pyproject.toml
declares the built-ins there too, but the built-ins are also registered here
directly, so that they work from any checkout whose installed metadata is
older than its code (an editable install made before the entry points
existed); a test keeps the two lists equal.

The names, the parameter models and the descriptions of the built-ins are the
contract's registry (`hean_contract.strategies.BUILTIN_STRATEGIES`); a test
proves both list the same names and that each class takes the parameter
model registered under its name.

Only the entry points of the one name asked for are loaded (imported), once,
when the engine is assembled: nothing here runs per event. Every problem
(no such strategy, a broken package, an object that is not a strategy, a name
claimed twice, params its model refuses) is a `ConfigError` naming the field,
which every `hean` command reports as one line and exit status 2.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from hean_contract.errors import ConfigError
from hean_contract.spec import StrategySpec
from hean_contract.strategies import ENTRY_POINT_GROUP, StrategyParams, unknown_strategy_message
from hean_engine.strategy.base import DATA_KINDS, Strategy, StrategyContext
from hean_engine.strategy.ema_cross import EmaCross
from hean_engine.strategy.market_maker import MarketMaker

STRATEGY_CLASSES: dict[str, type[Strategy]] = {cls.name: cls for cls in (EmaCross, MarketMaker)}

_NAME_FIELD = "spec.strategy.name"


def installed_names() -> list[str]:
    """Every strategy name this engine can run: the built-ins and the entry points."""
    names = set(STRATEGY_CLASSES)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def find_strategy(name: str) -> type[Strategy]:
    """The class registered under `name`; ConfigError (naming the field) if there is none.

    A name registered by two different classes (a built-in's name reused by a
    package, or two packages) is refused rather than resolved by install order.
    """
    found: dict[type[Strategy], str] = {}
    builtin = STRATEGY_CLASSES.get(name)
    if builtin is not None:
        found[builtin] = "built in"
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        cls = _load(ep)
        found.setdefault(cls, _origin(ep))
    if not found:
        raise ConfigError([f"{_NAME_FIELD}: {unknown_strategy_message(name, installed_names())}"])
    if len(found) > 1:
        origins = "; ".join(sorted(found.values()))
        raise ConfigError(
            [f"{_NAME_FIELD}: strategy {name!r} is registered by more than one class ({origins})"]
        )
    return next(iter(found))


def build_strategy(spec: StrategySpec, ctx: StrategyContext) -> Strategy:
    """The spec's strategy, constructed with its params validated by its own model."""
    cls = find_strategy(spec.name)
    return cls(ctx, spec.params_as(cls.params_model))


def _origin(ep: EntryPoint) -> str:
    dist = ep.dist.name if ep.dist is not None else "unknown distribution"
    return f"{ep.value} from {dist}"


def _load(ep: EntryPoint) -> type[Strategy]:
    """Import the entry point's object and check that it is a usable strategy class."""
    where = f"the entry point {ep.name!r} in {ENTRY_POINT_GROUP} ({_origin(ep)})"
    try:
        obj = ep.load()
    except Exception as exc:  # a user's package that fails to import: say which and why
        raise ConfigError(
            [f"{_NAME_FIELD}: {where} cannot be loaded: {type(exc).__name__}: {exc}"]
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise ConfigError(
            [f"{_NAME_FIELD}: {where} is not a subclass of hean_engine.strategy.Strategy"]
        )
    consumes = getattr(obj, "consumes", None)
    if consumes not in DATA_KINDS:
        raise ConfigError(
            [f"{_NAME_FIELD}: {where}: `consumes` must be 'candles' or 'trades', not {consumes!r}"]
        )
    model = getattr(obj, "params_model", None)
    if not (isinstance(model, type) and issubclass(model, StrategyParams)):
        raise ConfigError(
            [
                f"{_NAME_FIELD}: {where}: `params_model` must be a subclass of "
                "hean_contract.strategies.StrategyParams"
            ]
        )
    return obj
