"""The engine's configuration: the `spec` of a `TradingEngine` custom resource.

One pydantic model is the single source of truth for the engine's validation,
for the operator, and for the CRD's OpenAPI schema (generated from it by
`hean crds generate`, `hean_operator.crds.tradingengine`), so every field has a
camelCase name and a description, and bounds live on the fields. The shared
field types are `hean_contract.fields`; the strategies, their parameter models
and their names are the registry's (`hean_contract.strategies`).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import math
import re
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from hean_contract.errors import ConfigError

# The decimal patterns are re-exported: the status and the tests read them from here.
from hean_contract.fields import DECIMAL_PATTERN as DECIMAL_PATTERN
from hean_contract.fields import NESTED_MARK, CamelModel, Count, NonNegativeDecimal, PositiveDecimal
from hean_contract.fields import POSITIVE_PATTERN as POSITIVE_PATTERN
from hean_contract.strategies import (
    BUILTIN_STRATEGIES,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    StrategyParams,
    bad_name_message,
    name_description,
)

API_VERSION = "hean.io/v1alpha1"
KIND = "TradingEngine"


class Mode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


@functools.cache
def known_exchange_ids() -> frozenset[str]:
    """ccxt's exchange ids, read from ccxt's own `exchanges` list.

    Importing ccxt costs a third of a second and 55 MiB of memory (it loads
    every exchange class), too much for validating one string, so the list is
    read from the package's source; the import is the fallback.
    """
    spec = importlib.util.find_spec("ccxt")
    if spec is not None and spec.origin is not None:
        source = Path(spec.origin).read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "exchanges" for t in node.targets
            ):
                return frozenset(ast.literal_eval(node.value))
    import ccxt

    return frozenset(ccxt.exchanges)


class ExchangeSpec(CamelModel):
    id: str = Field(
        default="binance",
        description=(
            "ccxt exchange id (for example binance, okx, kraken). Paper mode takes any; "
            "a live engine trades on binance or okx (others are refused at its start)."
        ),
        min_length=1,
        max_length=64,
    )
    credentials_secret: str | None = Field(
        default=None,
        description=(
            "Live mode only: name of a Secret holding the keys `apiKey` and `secret` "
            "(and `password`, the API key's passphrase, for okx). "
            "Keys are never written inline in the spec."
        ),
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    )

    endpoint: str | None = Field(
        default=None,
        description=(
            "Base URL that replaces the exchange's API host in every ccxt URL, for "
            "example http://127.0.0.1:9000 for `hean sim exchange`. Default: the "
            "exchange's own endpoints."
        ),
        max_length=2048,
        pattern=r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[^\s]*)?$",
    )
    testnet: bool = Field(
        default=False,
        description="Use the exchange's own testnet (ccxt sandbox mode) instead of production.",
    )

    @field_validator("id")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        if value not in known_exchange_ids():
            raise ValueError(f"unknown exchange id {value!r}: not one of ccxt's exchanges")
        return value

    @model_validator(mode="after")
    def _one_endpoint(self) -> ExchangeSpec:
        if self.endpoint is not None and self.testnet:
            raise ValueError(f"{NESTED_MARK}testnet: cannot be combined with endpoint (choose one)")
        return self


TIMEFRAMES: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}

Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]


class MarketSpec(CamelModel):
    symbol: str = Field(
        description="Unified ccxt symbol BASE/QUOTE, for example BTC/USDT.",
        pattern=r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$",
    )
    timeframe: Timeframe = Field(
        default="1m", description="Candle timeframe for candle strategies."
    )

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]

    @property
    def timeframe_ms(self) -> int:
        return TIMEFRAMES[self.timeframe]


P = TypeVar("P", bound=StrategyParams)


def _name_schema(schema: dict[str, Any]) -> None:
    # The list of built-in strategies is the registry's (hean_contract.strategies),
    # filled in whenever a schema is generated; the pattern lets the CRD refuse a
    # malformed name. A well-formed name the registry does not list is accepted:
    # it may be a strategy installed in the engine's image, which the engine checks.
    schema.update(description=name_description(), pattern=NAME_PATTERN, maxLength=NAME_MAX_LENGTH)


class StrategySpec(CamelModel):
    name: str = Field(json_schema_extra=_name_schema)
    params: dict[str, Any] = Field(
        default_factory=dict, description="Strategy parameters; see the strategy's documentation."
    )

    @field_validator("name")
    @classmethod
    def _well_formed_name(cls, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(bad_name_message(value))
        return value

    @model_validator(mode="after")
    def _valid_params(self) -> StrategySpec:
        # Only a built-in's params can be checked here; an installed strategy's
        # are checked by the engine with its own model (`params_as`) at start-up.
        if self.name in BUILTIN_STRATEGIES:
            try:
                self.typed_params()
            except ValidationError as exc:
                raise ValueError(NESTED_MARK + _format_nested(exc, "params")) from None
        return self

    @property
    def builtin(self) -> bool:
        """Whether the name is a built-in strategy's (whose params the spec has checked)."""
        return self.name in BUILTIN_STRATEGIES

    def typed_params(self) -> StrategyParams:
        """The params validated by the built-in strategy's model (KeyError for another name)."""
        return BUILTIN_STRATEGIES[self.name].params.model_validate(self.params)

    def params_as(self, model: type[P]) -> P:
        """The params validated by `model` (an installed strategy's `params_model`).

        Raises ConfigError with one `spec.strategy.params.<field>: problem` line
        per problem, as the spec's own validation words them.
        """
        try:
            return model.model_validate(self.params)
        except ValidationError as exc:
            raise ConfigError(_expand(exc, "spec.strategy.params")) from None

    @field_serializer("params", when_used="json")
    def _params_without_floats(self, params: dict[str, Any]) -> dict[str, Any]:
        # An unquoted YAML `0.001` arrives as a float; in JSON it is written as
        # the decimal text it was (and 3.0 as 3), so that the spec hash a
        # LiveApproval signs never depends on float formatting (signed JSON
        # holds no floats) and `0.001` and "0.001" hash alike.
        return {key: _float_as_text(value) for key, value in params.items()}


def _float_as_text(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal) and value.is_finite():
        # The YAML reader's exact decimals: spelled as the float path spells the
        # same number (0.0010 -> "0.001", 3.0 -> 3), so both hash alike.
        if value == value.to_integral_value():
            return int(value)
        return format(value.normalize(), "f")
    if isinstance(value, dict):
        return {key: _float_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_float_as_text(item) for item in value]
    return value


class RiskPolicy(StrEnum):
    REDUCE = "reduce"
    HALT = "halt"


class RiskSpec(CamelModel):
    max_order_notional: PositiveDecimal = Field(
        description="Largest notional of one order, in the quote currency.", gt=0
    )
    max_position_notional: PositiveDecimal = Field(
        description="Largest position notional (position x price), in the quote currency.", gt=0
    )
    max_open_orders: Count = Field(
        default=4, ge=1, le=1000, description="Most orders working at the venue at once."
    )
    max_daily_loss: PositiveDecimal = Field(
        description="Loss since the start of the UTC day (quote currency) that halts trading.",
        gt=0,
    )
    max_drawdown_pct: PositiveDecimal = Field(
        description="Drop of equity from its peak, in percent, that halts trading.", gt=0, le=100
    )
    max_orders_per_minute: Count = Field(
        default=30, ge=1, le=100_000, description="Most orders submitted in any 60-second window."
    )


class PaperSpec(CamelModel):
    starting_balances: dict[str, NonNegativeDecimal] = Field(
        default_factory=lambda: {"USDT": Decimal(10_000)},
        description="Simulated account balances at start, by currency code.",
    )
    fee_rate: NonNegativeDecimal = Field(
        default=Decimal("0.001"),
        ge=0,
        lt=1,
        description="Fee as a fraction of fill notional, charged in the quote currency.",
    )
    slippage_bps: NonNegativeDecimal = Field(
        default=Decimal(0),
        ge=0,
        le=10_000,
        description="Simulated market order slippage against the order, in basis points.",
    )

    @field_validator("starting_balances")
    @classmethod
    def _non_negative(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency, amount in value.items():
            if not re.fullmatch(r"[A-Z0-9]{1,20}", currency):
                raise ValueError(f"currency code {currency!r} must be upper-case letters/digits")
            if amount < 0:
                raise ValueError(f"balance of {currency} must not be negative, got {amount}")
        return value


class LiveSpec(CamelModel):
    """How a live engine keeps its books honest against the exchange's."""

    reconcile_interval_seconds: Count = Field(
        default=30,
        ge=1,
        le=3600,
        description="Seconds between comparisons of the engine's books with the exchange's "
        "(balances, position, open orders); one also runs after every failed exchange call.",
    )
    sync_interval_seconds: Count = Field(
        default=2,
        ge=1,
        le=300,
        description="Seconds between polls of the account's trades and open orders (fills).",
    )
    drift_tolerance: NonNegativeDecimal = Field(
        default=Decimal(0),
        description="Difference between the engine's and the exchange's balances, valued in "
        "the quote currency, that counts as drift. 0: any difference.",
    )
    on_drift: RiskPolicy = Field(
        default=RiskPolicy.HALT,
        description="What drift or a foreign order does to the risk state: halt (no orders; "
        "open ones cancelled) or reduce (only orders that shrink the position).",
    )
    on_approval_loss: RiskPolicy = Field(
        default=RiskPolicy.HALT,
        description="What losing the LiveApproval while running (expired, revoked, re-signed "
        "keys removed) does to the risk state: halt (no orders; open ones cancelled) or reduce "
        "(only orders that shrink the position).",
    )
    recv_window_ms: Count = Field(
        default=5000,
        ge=100,
        le=60_000,
        description="The exchange's recvWindow for signed requests. An order whose outcome is "
        "unknown is only taken as never placed once this window (plus 1 s of clock skew) has "
        "passed since it was sent.",
    )


# A container image reference as Docker's grammar has it:
# [domain[:port]/]path[:tag][@sha256:digest]. The first component is a domain only
# if it has a dot or a port (or is localhost); path components are lower case.
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = (
    rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+(?::[0-9]{{1,5}})?"
    rf"|{_DOMAIN_LABEL}:[0-9]{{1,5}}|localhost)"
)
IMAGE_PATTERN = (
    rf"^(?:{_DOMAIN}/)?{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


class TradingEngineSpec(CamelModel):
    """What an engine trades, how, and within which limits."""

    image: str | None = Field(
        default=None,
        description="The engine's container image, for a strategy that is not built in: "
        "an image derived from the HEAN engine image with the strategy's package installed "
        "(docs/strategies.md). Its repository must be one the operator allows (Helm value "
        "engine.allowedImageRepositories), or the engine is Invalid. Default: the operator's "
        "engine image.",
        max_length=512,
        pattern=IMAGE_PATTERN,
    )

    mode: Mode = Field(
        default=Mode.PAPER,
        description="paper (live data, simulated fills) or live (real orders; needs a valid "
        "LiveApproval). Replay is chosen by the command, not the spec.",
    )
    exchange: ExchangeSpec = Field(
        default_factory=ExchangeSpec, description="The exchange and, in live mode, its keys."
    )
    market: MarketSpec = Field(description="The one market this engine trades.")
    strategy: StrategySpec = Field(description="The strategy and its parameters.")
    risk: RiskSpec = Field(description="Limits every order intent is checked against.")
    paper: PaperSpec = Field(
        default_factory=PaperSpec, description="Simulated account and fills (paper and replay)."
    )
    live: LiveSpec = Field(
        default_factory=LiveSpec,
        description="Live mode: reconciliation with the exchange and what drift does.",
    )
    paused: bool = Field(
        default=False,
        description="When true the engine keeps its data flowing but sends no orders.",
    )
    halt: bool = Field(
        default=False,
        description="When true the engine halts: it cancels its open orders and sends no "
        "new ones; the pod is kept for inspection. Setting it back to false resumes.",
    )

    @model_validator(mode="after")
    def _cross_field(self) -> TradingEngineSpec:
        if self.mode is Mode.LIVE and not self.exchange.credentials_secret:
            raise ValueError(NESTED_MARK + "exchange.credentialsSecret: required when mode is live")
        return self


def _format_nested(exc: ValidationError, prefix: str) -> str:
    return "; ".join(_expand(exc, prefix))


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(str(item))
    return ".".join(parts)


def _expand(exc: ValidationError, prefix: str) -> list[str]:
    """`path: problem` lines; a nested-mark message expands to one line per part."""
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        msg = _message(err)
        path = _path(prefix, tuple(err["loc"]))
        if msg.startswith(NESTED_MARK):
            problems.extend(f"{path}.{part}" for part in msg[len(NESTED_MARK) :].split("; "))
            continue
        problems.append(f"{path}: {msg}")
    return problems


def _problems(exc: ValidationError) -> list[str]:
    return _expand(exc, "spec")


def parse_spec(data: Any) -> TradingEngineSpec:
    """Validate a spec dict, raising ConfigError with `spec.field.path: problem` lines."""
    if not isinstance(data, dict):
        raise ConfigError([f"spec: expected a mapping, got {type(data).__name__}"])
    try:
        return TradingEngineSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None


class EngineIdentity(BaseModel):
    """Where an engine's name comes from: the manifest's metadata, or a default."""

    model_config = ConfigDict(frozen=True)
    name: str = "engine"
    namespace: str = "default"
    generation: int = 0
    # metadata.uid: a LiveApproval is bound to it, so an engine deleted and
    # re-created under the same name needs a new approval. "" when unknown.
    uid: str = ""


def parse_manifest(data: Any) -> tuple[EngineIdentity, TradingEngineSpec]:
    """Accept a full TradingEngine manifest or a bare spec."""
    if isinstance(data, dict) and ("kind" in data or "apiVersion" in data or "spec" in data):
        problems = []
        if data.get("apiVersion") not in (None, API_VERSION):
            problems.append(f"apiVersion: expected {API_VERSION}, got {data.get('apiVersion')!r}")
        if data.get("kind") not in (None, KIND):
            problems.append(f"kind: expected {KIND}, got {data.get('kind')!r}")
        if "spec" not in data:
            problems.append("spec: required field missing")
        if problems:
            raise ConfigError(problems)
        meta = data.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ConfigError(["metadata: expected a mapping"])
        generation = meta.get("generation", 0) or 0
        if isinstance(generation, bool) or not isinstance(generation, int):
            raise ConfigError([f"metadata.generation: expected an integer, got {generation!r}"])
        uid = meta.get("uid", "") or ""
        if not isinstance(uid, str):
            raise ConfigError([f"metadata.uid: expected a string, got {uid!r}"])
        identity = EngineIdentity(
            name=str(meta.get("name", "engine")),
            namespace=str(meta.get("namespace", "default")),
            generation=generation,
            uid=uid,
        )
        return identity, parse_spec(data["spec"])
    return EngineIdentity(), parse_spec(data)
