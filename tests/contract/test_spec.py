"""The engine's configuration: TradingEngineSpec validation, manifests, and exit status 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from engine_support import (
    CANDLE_HEADER,
    EXAMPLES_DIR,
    manifest_dict,
    run_hean,
    spec_dict,
    write_lines,
)
from hean_contract.spec import (
    EngineIdentity,
    Mode,
    TradingEngineSpec,
    parse_manifest,
    parse_spec,
)
from hean_contract.strategies import EmaCrossParams, MarketMakerParams
from hean_engine.app.config import load_config
from hean_engine.cli import main
from hean_engine.model.errors import ConfigError

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Set a dotted path of the spec dict (creating nothing: parents must exist)."""

    def mutate(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = spec
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = spec
        for part in parents:
            target = target[part]
        del target[last]

    return mutate


def _mm_without_max_position(spec: dict[str, Any]) -> None:
    spec["strategy"] = {"name": "market_maker", "params": {"quantity": "1"}}


# (mutation, the exact problem line, or its start when the rest is pydantic's wording)
BAD_CONFIGS: dict[str, tuple[Mutation, str]] = {
    "unknown top-level field": (_set("bogus", 1), "spec.bogus: unknown field"),
    "unknown risk field": (
        _set("risk.maxOrderNotionl", "5"),
        "spec.risk.maxOrderNotionl: unknown field",
    ),
    "unknown strategy param": (
        _set("strategy.params.fastest", 2),
        "spec.strategy.params.fastest: unknown field",
    ),
    "wrong type: int field given text": (
        _set("risk.maxOpenOrders", "many"),
        "spec.risk.maxOpenOrders: Input should be a valid integer",
    ),
    "wrong type: int field given a boolean": (
        _set("risk.maxOpenOrders", True),
        "spec.risk.maxOpenOrders: Input should be a valid integer",
    ),
    "wrong type: section given a string": (
        _set("market", "BTC/USD"),
        "spec.market: Input should be a valid dictionary",
    ),
    "wrong type: decimal given a list": (
        _set("risk.maxDailyLoss", [1]),
        "spec.risk.maxDailyLoss: expected a decimal string, got list",
    ),
    "fast equal to slow": (
        _set("strategy.params.fast", 5),
        "spec.strategy.params.fast: must be less than slow (fast 5, slow 5)",
    ),
    "fast above slow": (
        _set("strategy.params.fast", 26),
        "spec.strategy.params.fast: must be less than slow (fast 26, slow 5)",
    ),
    "negative limit": (
        _set("risk.maxOrderNotional", "-5"),
        "spec.risk.maxOrderNotional: Input should be greater than 0",
    ),
    "zero limit": (
        _set("risk.maxPositionNotional", "0"),
        "spec.risk.maxPositionNotional: Input should be greater than 0",
    ),
    "negative count": (
        _set("risk.maxOrdersPerMinute", -1),
        "spec.risk.maxOrdersPerMinute: Input should be greater than or equal to 1",
    ),
    "drawdown above 100 percent": (
        _set("risk.maxDrawdownPct", "100.5"),
        "spec.risk.maxDrawdownPct: Input should be less than or equal to 100",
    ),
    "negative fee rate": (
        _set("paper.feeRate", "-0.001"),
        "spec.paper.feeRate: Input should be greater than or equal to 0",
    ),
    "negative starting balance": (
        _set("paper.startingBalances", {"USD": "-1"}),
        "spec.paper.startingBalances: balance of USD must not be negative, got -1",
    ),
    "live mode without credentialsSecret": (
        _set("mode", "live"),
        "spec.exchange.credentialsSecret: required when mode is live",
    ),
    "bad credentialsSecret name": (
        _set("exchange.credentialsSecret", "My_Keys"),
        "spec.exchange.credentialsSecret: String should match pattern",
    ),
    "unknown mode": (_set("mode", "replay"), "spec.mode: Input should be 'paper' or 'live'"),
    # (A well-formed name the registry does not list may be a strategy installed
    # in the engine's image: the engine checks it, tests/engine/test_strategy_plugins.py.)
    "malformed strategy name": (
        _set("strategy.name", "Rsi-Reversion"),
        "spec.strategy.name: 'Rsi-Reversion' is not a strategy name: lower-case letters",
    ),
    "unknown exchange id": (
        _set("exchange.id", "nasdaq"),
        "spec.exchange.id: unknown exchange id 'nasdaq': not one of ccxt's exchanges",
    ),
    "decimal with exponent": (
        _set("risk.maxOrderNotional", "1e3"),
        """spec.risk.maxOrderNotional: expected a plain decimal string such as "0.01", got '1e3'""",
    ),
    "decimal that is not a number": (
        _set("strategy.params.quantity", "abc"),
        """spec.strategy.params.quantity: expected a plain decimal string such as "0.01", """
        "got 'abc'",
    ),
    "decimal NaN": (
        _set("paper.feeRate", "NaN"),
        """spec.paper.feeRate: expected a plain decimal string such as "0.01", got 'NaN'""",
    ),
    "decimal given a boolean": (
        _set("risk.maxDailyLoss", True),
        """spec.risk.maxDailyLoss: expected a decimal string such as "0.01", got a boolean""",
    ),
    "lower-case symbol": (
        _set("market.symbol", "btc/usd"),
        "spec.market.symbol: String should match pattern",
    ),
    "symbol without a slash": (
        _set("market.symbol", "BTCUSD"),
        "spec.market.symbol: String should match pattern",
    ),
    "unknown timeframe": (_set("market.timeframe", "7m"), "spec.market.timeframe: Input should be"),
    "missing required limit": (
        _delete("risk.maxDailyLoss"),
        "spec.risk.maxDailyLoss: Field required",
    ),
    "missing market": (_delete("market"), "spec.market: Field required"),
    "market maker without maxPosition": (
        _mm_without_max_position,
        "spec.strategy.params.maxPosition: Field required",
    ),
}


def _bad_spec(case: str) -> dict[str, Any]:
    spec = spec_dict()
    BAD_CONFIGS[case][0](spec)
    return spec


def _problems(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_manifest(data)
    return info.value.problems


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_spec_names_the_field_and_problem(case: str) -> None:
    expected = BAD_CONFIGS[case][1]
    problems = _problems(_bad_spec(case))
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_manifest_reports_the_same_spec_paths(case: str) -> None:
    expected = BAD_CONFIGS[case][1]
    problems = _problems(manifest_dict(_bad_spec(case)))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_several_problems_are_all_reported() -> None:
    spec = spec_dict(bogus=1, risk={"maxOrderNotional": "-1", "maxOpenOrders": "x"})
    problems = _problems(spec)
    assert sorted(problems) == sorted(
        [
            "spec.bogus: unknown field",
            "spec.risk.maxOrderNotional: Input should be greater than 0",
            "spec.risk.maxOpenOrders: Input should be a valid integer, unable to parse string "
            "as an integer",
        ]
    )


def test_config_error_message_lists_one_problem_per_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(spec_dict(bogus=1, mode="live"))
    assert str(info.value) == "invalid configuration:\n  spec.bogus: unknown field"


# -- manifests and bare specs ------------------------------------------------------


def test_full_manifest_and_bare_spec_give_the_same_spec() -> None:
    spec = spec_dict()
    identity, from_manifest = parse_manifest(
        {
            **manifest_dict(spec, name="btc"),
            "metadata": {"name": "btc", "namespace": "trading", "generation": 7},
        }
    )
    bare_identity, from_bare = parse_manifest(spec)
    assert from_manifest == from_bare
    assert identity == EngineIdentity(name="btc", namespace="trading", generation=7)
    assert bare_identity == EngineIdentity(name="engine", namespace="default", generation=0)


@pytest.mark.parametrize(
    ("manifest", "problems"),
    [
        (
            {"apiVersion": "hean.io/v1", "kind": "TradingEngine"},
            ["apiVersion: expected hean.io/v1alpha1, got 'hean.io/v1'"],
        ),
        (
            {"apiVersion": "hean.io/v1alpha1", "kind": "Deployment"},
            ["kind: expected TradingEngine, got 'Deployment'"],
        ),
        (
            {"apiVersion": "apps/v1", "kind": "Deployment"},
            [
                "apiVersion: expected hean.io/v1alpha1, got 'apps/v1'",
                "kind: expected TradingEngine, got 'Deployment'",
            ],
        ),
    ],
)
def test_wrong_api_version_or_kind_is_rejected(
    manifest: dict[str, Any], problems: list[str]
) -> None:
    assert _problems({**manifest, "spec": spec_dict()}) == problems


def test_manifest_without_spec_is_rejected() -> None:
    manifest = manifest_dict(spec_dict())
    del manifest["spec"]
    assert _problems(manifest) == ["spec: required field missing"]


def test_manifest_with_bad_metadata_is_a_config_error() -> None:
    assert _problems({**manifest_dict(spec_dict()), "metadata": ["x"]}) == [
        "metadata: expected a mapping"
    ]
    bad_generation = manifest_dict(spec_dict())
    bad_generation["metadata"]["generation"] = "seven"
    assert _problems(bad_generation) == ["metadata.generation: expected an integer, got 'seven'"]


@pytest.mark.parametrize("data", [None, [], "spec", 3])
def test_spec_that_is_not_a_mapping_is_rejected(data: Any) -> None:
    assert _problems(data) == [f"spec: expected a mapping, got {type(data).__name__}"]


@pytest.mark.parametrize(
    "name", ["replay-btcusd.yaml", "replay-bnteth-mm.yaml", "paper-engine.yaml"]
)
def test_examples_are_valid(name: str) -> None:
    identity, spec = load_config(EXAMPLES_DIR / name)
    raw = yaml.safe_load((EXAMPLES_DIR / name).read_text(encoding="utf-8"))
    assert identity.name == raw["metadata"]["name"]
    assert spec.strategy.name == raw["spec"]["strategy"]["name"]
    assert spec.mode is Mode.PAPER


def test_replay_example_values() -> None:
    identity, spec = load_config(EXAMPLES_DIR / "replay-btcusd.yaml")
    assert identity == EngineIdentity(name="btcusd-ema", namespace="default", generation=0)
    assert spec.market.base == "BTC" and spec.market.quote == "USD"
    assert spec.market.timeframe_ms == 60_000
    assert spec.strategy.typed_params() == EmaCrossParams(
        fast=12, slow=26, quantity=Decimal("0.01")
    )
    assert spec.paper.starting_balances == {"USD": Decimal(100000)}
    assert spec.paper.fee_rate == Decimal("0.001")


# -- decimals -------------------------------------------------------------------------

YAML_WITH_UNQUOTED_FLOATS = """
market: {symbol: BNT/ETH}
exchange: {id: binance}
strategy:
  name: market_maker
  params: {quantity: 0.01, maxPosition: 2.5, spreadBps: 12.5, tickSize: 0.00001}
risk:
  maxOrderNotional: 1000.1
  maxPositionNotional: 5000
  maxDailyLoss: 0.3
  maxDrawdownPct: 12.75
paper:
  startingBalances: {ETH: 10.2, BNT: 0.000001}
  feeRate: 0.001
  slippageBps: 2.5
"""


def test_unquoted_yaml_floats_become_the_exact_decimals_written(tmp_path: Path) -> None:
    config = tmp_path / "engine.yaml"
    config.write_text(YAML_WITH_UNQUOTED_FLOATS, encoding="utf-8")
    _, spec = load_config(config)
    params = spec.strategy.typed_params()
    assert isinstance(params, MarketMakerParams)
    exact = {
        "quantity": (params.quantity, Decimal("0.01")),
        "maxPosition": (params.max_position, Decimal("2.5")),
        "spreadBps": (params.spread_bps, Decimal("12.5")),
        "tickSize": (params.tick_size, Decimal("0.00001")),
        "maxOrderNotional": (spec.risk.max_order_notional, Decimal("1000.1")),
        "maxPositionNotional": (spec.risk.max_position_notional, Decimal(5000)),
        "maxDailyLoss": (spec.risk.max_daily_loss, Decimal("0.3")),
        "maxDrawdownPct": (spec.risk.max_drawdown_pct, Decimal("12.75")),
        "ETH": (spec.paper.starting_balances["ETH"], Decimal("10.2")),
        "BNT": (spec.paper.starting_balances["BNT"], Decimal("0.000001")),
        "feeRate": (spec.paper.fee_rate, Decimal("0.001")),
        "slippageBps": (spec.paper.slippage_bps, Decimal("2.5")),
    }
    for name, (value, expected) in exact.items():
        assert type(value) is Decimal, name
        assert value == expected, name
        # Exactly the text written, not a binary expansion such as 0.01000000000000000020816.
        assert format(value, "f").rstrip("0").rstrip(".") == format(expected, "f").rstrip(
            "0"
        ).rstrip("."), name


def test_money_fields_are_decimals() -> None:
    spec = parse_spec(spec_dict())
    risk = spec.risk
    for value in (
        risk.max_order_notional,
        risk.max_position_notional,
        risk.max_daily_loss,
        risk.max_drawdown_pct,
        spec.paper.fee_rate,
        spec.paper.slippage_bps,
        *spec.paper.starting_balances.values(),
        spec.strategy.typed_params().quantity,
    ):
        assert type(value) is Decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.01", Decimal("0.01")),
        (" 2.50 ", Decimal("2.50")),
        (".5", Decimal("0.5")),
        ("7.", Decimal(7)),
        ("+3", Decimal(3)),
        (12, Decimal(12)),
        (0.1, Decimal("0.1")),
        (1e-7, Decimal("0.0000001")),
        (123456789.125, Decimal("123456789.125")),
    ],
)
def test_decimal_inputs_accepted(text: Any, expected: Decimal) -> None:
    params = parse_spec(spec_dict(strategy={"params": {"quantity": text}})).strategy.typed_params()
    assert params.quantity == expected


@pytest.mark.parametrize(
    "text", ["1e3", "1E-2", "abc", "1,000", "0x10", "", "Infinity", "inf", "NaN", "1_000", "--1"]
)
def test_decimal_inputs_refused(text: str) -> None:
    problems = _problems(spec_dict(strategy={"params": {"quantity": text}}))
    assert problems == [
        "spec.strategy.params.quantity: expected a plain decimal string such as "
        f'"0.01", got {text!r}'
    ]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_float_nan_and_infinities_refused(value: float) -> None:
    problems = _problems(spec_dict(risk={"maxDailyLoss": value}))
    assert len(problems) == 1
    assert problems[0].startswith("spec.risk.maxDailyLoss: expected a plain decimal string")


def test_spec_round_trips_through_json_with_decimal_strings() -> None:
    spec = parse_spec(spec_dict(paper={"feeRate": 0.0025}))
    dumped = spec.model_dump(mode="json", by_alias=True)
    assert dumped["paper"]["feeRate"] == "0.0025"
    assert dumped["risk"]["maxOrderNotional"] == "1000000"
    assert parse_spec(json.loads(json.dumps(dumped))) == spec


def test_defaults() -> None:
    minimal = spec_dict()
    for key in ("mode", "exchange", "paper", "paused"):
        del minimal[key]
    del minimal["risk"]["maxOpenOrders"], minimal["risk"]["maxOrdersPerMinute"]
    spec = parse_spec(minimal)
    assert spec == TradingEngineSpec.model_validate(minimal)
    assert spec.mode is Mode.PAPER
    assert spec.exchange.id == "binance" and spec.exchange.credentials_secret is None
    assert spec.risk.max_open_orders == 4 and spec.risk.max_orders_per_minute == 30
    assert spec.paper.starting_balances == {"USDT": Decimal(10000)}
    assert spec.paper.fee_rate == Decimal("0.001") and spec.paper.slippage_bps == 0
    assert spec.paused is False and spec.halt is False


def test_live_mode_with_credentials_secret_is_valid() -> None:
    spec = parse_spec(spec_dict(mode="live", exchange={"credentialsSecret": "bitfinex-keys"}))
    assert spec.mode is Mode.LIVE
    assert spec.exchange.credentials_secret == "bitfinex-keys"


# -- loading files ---------------------------------------------------------------------


def test_load_config_accepts_json(tmp_path: Path) -> None:
    config = tmp_path / "engine.json"
    config.write_text(json.dumps(manifest_dict(spec_dict(), name="from-json")), encoding="utf-8")
    identity, spec = load_config(config)
    assert identity.name == "from-json"
    assert spec == parse_spec(spec_dict())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "must hold exactly one document, found 0"),
        ("a: 1\n---\nb: 2\n", "must hold exactly one document, found 2"),
        ("market: [unclosed\n", "is not valid YAML"),
    ],
)
def test_load_config_file_problems(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "engine.yaml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    (line,) = info.value.problems
    assert line.startswith(f"--config: {config} ")
    assert problem in line


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.problems == [
        f"--config: cannot read {tmp_path / 'nope.yaml'}: No such file or directory"
    ]


# -- through the command line: exit status 2 before any work ---------------------------


def _write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _tiny_candles(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "candles.csv", [CANDLE_HEADER, "2017-01-01T00:00:00Z,10,11,9,10,1"]
    )


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to start a replay fail the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the replay started despite an invalid configuration")

    monkeypatch.setattr("hean_engine.app.replay.run_replay", refuse)


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
@pytest.mark.parametrize("as_manifest", [False, True], ids=["bare", "manifest"])
def test_replay_with_bad_config_exits_2_naming_the_field(
    tmp_path: Path, case: str, as_manifest: bool
) -> None:
    spec = _bad_spec(case)
    config = _write_config(tmp_path, manifest_dict(spec) if as_manifest else spec)
    result = CliRunner().invoke(
        main, ["engine", "replay", "--config", str(config), "--data", str(_tiny_candles(tmp_path))]
    )
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "error: invalid configuration:"
    assert lines[1].startswith("  " + BAD_CONFIGS[case][1]), result.stderr


@pytest.mark.parametrize(
    "case", ["fast above slow", "negative limit", "live mode without credentialsSecret"]
)
def test_run_with_bad_config_exits_2_naming_the_field(tmp_path: Path, case: str) -> None:
    config = _write_config(tmp_path, manifest_dict(_bad_spec(case)))
    result = CliRunner().invoke(main, ["engine", "run", "--config", str(config), "--port", "0"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.splitlines() == [
        "error: invalid configuration:",
        "  " + BAD_CONFIGS[case][1],
    ]


def test_replay_subprocess_with_bad_config_exits_2(tmp_path: Path) -> None:
    config = _write_config(tmp_path, manifest_dict(_bad_spec("negative limit")))
    done = run_hean(
        "engine", "replay", "--config", config, "--data", _tiny_candles(tmp_path), "--json"
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "error: invalid configuration:\n"
        "  spec.risk.maxOrderNotional: Input should be greater than 0\n"
    )


@pytest.mark.usefixtures("no_work")
def test_replay_with_wrong_kind_exits_2(tmp_path: Path) -> None:
    manifest = manifest_dict(spec_dict())
    manifest["kind"] = "Engine"
    result = CliRunner().invoke(
        main,
        [
            "engine",
            "replay",
            "--config",
            str(_write_config(tmp_path, manifest)),
            "--data",
            str(_tiny_candles(tmp_path)),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: invalid configuration:\n  kind: expected TradingEngine, got 'Engine'\n"
    )
