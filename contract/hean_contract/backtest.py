"""The `Backtest` custom resource: a replay of one strategy over a time range, run as a Job.

Its spec reuses the TradingEngine's own models (`StrategySpec`, `MarketSpec`,
`ExchangeSpec`, `RiskSpec`, `PaperSpec`): the replay a Backtest runs is
`hean engine backtest` over an engine spec built from these fields
(`Backtest.engine_spec`), so the same strategy, risk limits and paper account
produce the same fills as they would in a TradingEngine's replay.

The CRD (`backtests.hean.io`, kind `Backtest`, short name `bt`) is generated
from these models by `hean crds generate` (`hean_operator.crds.backtest`).
The operator writes `BacktestStatus` through the status subresource.
"""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, ValidationError, WithJsonSchema, field_validator, model_validator

from hean_contract.errors import ConfigError
from hean_contract.fields import NESTED_MARK, CamelModel, Count
from hean_contract.spec import API_VERSION as API_VERSION
from hean_contract.spec import (
    DECIMAL_PATTERN,
    IMAGE_PATTERN,
    ExchangeSpec,
    MarketSpec,
    PaperSpec,
    RiskSpec,
    StrategySpec,
    TradingEngineSpec,
    _expand,
)

KIND = "Backtest"
PLURAL = "backtests"
SINGULAR = "backtest"
SHORT_NAMES = ["bt"]
CATEGORIES = ["hean"]

# A sweep runs one Job index per parameter combination; its combinations travel
# in a ConfigMap (1 MiB at most), so their number is bounded well below that.
MAX_COMBINATIONS = 1000
# How many candles (or trades) of history a running engine's strategy sees before
# it trades (hean_engine's FeedSettings.history): a Backtest's default warm-up, so
# that a Backtest from T trades as an engine started at T does.
ENGINE_WARMUP = 200
MAX_WARMUP = 10_000
# RFC 3339 as the API server's `format: date-time` has it: a date, a time, an offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_CLAIM_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_PATH_PATTERN = r"^[^/]([^\x00]*[^/])?$"


def rfc3339_ms(text: str) -> int:
    """An RFC 3339 date-time (with its offset) as epoch milliseconds (ValueError if not one)."""
    if not _RFC3339.match(text):
        raise ValueError(
            f"{text!r} is not an RFC 3339 date-time such as 2018-01-01T00:00:00Z "
            "(a Z or +hh:mm offset is required)"
        )
    moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


class VolumeData(CamelModel):
    """Recorded candles or trades in a file on a PersistentVolumeClaim."""

    claim_name: str = Field(
        description="The PersistentVolumeClaim holding the file (mounted read-only).",
        min_length=1,
        max_length=253,
        pattern=_CLAIM_PATTERN,
    )
    path: str = Field(
        description="The file's path inside the volume: a candles or trades CSV (optionally .gz), "
        "as `hean engine replay --data` reads it.",
        min_length=1,
        max_length=1024,
        pattern=_PATH_PATTERN,
    )

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("must stay inside the volume (no '..' component)")
        return value


class ConfigMapData(CamelModel):
    """Tiny data in a ConfigMap key (a ConfigMap holds at most 1 MiB)."""

    name: str = Field(
        description="The ConfigMap's name.", min_length=1, max_length=253, pattern=_CLAIM_PATTERN
    )
    key: str = Field(
        description="The key holding the CSV text (plain, not gzip).",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
    )


class FetchData(CamelModel):
    """Candles fetched once through ccxt's `fetch_ohlcv` from `spec.exchange`, then cached."""

    cache_claim_name: str | None = Field(
        default=None,
        description="A PersistentVolumeClaim where fetched candles are kept, one file per "
        "exchange, symbol, timeframe and range (`candles/<exchange>/<symbol>/<timeframe>/"
        "<from>_<to>.csv.gz`), so that later Backtests and every run of a sweep read the "
        "file instead of the exchange. Without it each run fetches for itself.",
        min_length=1,
        max_length=253,
        pattern=_CLAIM_PATTERN,
    )


class DataSpec(CamelModel):
    """Where the market data comes from: exactly one of volume, configMap, fetch."""

    volume: VolumeData | None = Field(default=None, description="A file on a volume.")
    config_map: ConfigMapData | None = Field(
        default=None, description="A ConfigMap key, for tiny data."
    )
    fetch: FetchData | None = Field(
        default=None,
        description="Candles fetched through ccxt from spec.exchange for [from, to) (candle "
        "strategies only).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSpec:
        chosen = [n for n in ("volume", "configMap", "fetch") if getattr(self, _snake(n))]
        if len(chosen) != 1:
            raise ValueError(
                "set exactly one of volume, configMap, fetch"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        return self


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


class OutputSpec(CamelModel):
    """Where the full results (the HTML report and the replay's JSON summary) are written."""

    claim_name: str = Field(
        description="A PersistentVolumeClaim, mounted read-write: each run writes "
        "`reports/<namespace>/<backtest>/<uid>/<index>.html` and `.json` there (a report is "
        "far larger than an object's status or a ConfigMap may hold).",
        min_length=1,
        max_length=253,
        pattern=_CLAIM_PATTERN,
    )


class SweepMode(StrEnum):
    GRID = "grid"
    RANDOM = "random"


class RankMetric(StrEnum):
    """Statistics a sweep can rank by; maxDrawdownPct ranks lowest first, the others highest."""

    TOTAL_RETURN_PCT = "totalReturnPct"
    SHARPE = "sharpe"
    SORTINO = "sortino"
    CALMAR = "calmar"
    PROFIT_FACTOR = "profitFactor"
    WIN_RATE_PCT = "winRatePct"
    MAX_DRAWDOWN_PCT = "maxDrawdownPct"

    @property
    def lower_is_better(self) -> bool:
        return self is RankMetric.MAX_DRAWDOWN_PCT


# Integers or strings (decimals are strings, as everywhere in HEAN): one structural type.
SweepValues = Annotated[
    dict[str, list[int | str]],
    WithJsonSchema(
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 20,
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_COMBINATIONS,
                "items": {"x-kubernetes-int-or-string": True},
            },
        }
    ),
]


class SweepSpec(CamelModel):
    """Many runs of the strategy, one per parameter combination, ranked by one statistic."""

    params: SweepValues = Field(
        description="Values to try per strategy parameter, e.g. {fast: [5, 10], slow: [20, 50]} "
        "(integers, or strings for decimals); each combination overrides those keys of "
        "spec.strategy.params. Combinations a built-in strategy refuses (fast >= slow) are "
        "skipped and counted.",
    )
    mode: SweepMode = Field(
        default=SweepMode.GRID,
        description="grid: every combination; random: `samples` of them, drawn without "
        "replacement with `seed` (the same every time).",
    )
    samples: Count | None = Field(
        default=None, ge=1, le=MAX_COMBINATIONS, description="random mode: how many combinations."
    )
    seed: Count = Field(default=0, ge=0, description="random mode: the sampler's seed.")
    parallelism: Count = Field(
        default=1, ge=1, le=100, description="Most runs at once (the Job's parallelism)."
    )
    rank_by: RankMetric = Field(
        default=RankMetric.SHARPE,
        description="The statistic the results are ranked by (maxDrawdownPct: lowest first; "
        "the others highest first; an undefined figure ranks last).",
    )
    top: Count = Field(default=10, ge=1, le=100, description="How many results status lists.")

    @field_validator("params")
    @classmethod
    def _lists(cls, value: dict[str, list[int | str]]) -> dict[str, list[int | str]]:
        if not value:
            raise ValueError("at least one parameter")
        for key, values in value.items():
            if not values:
                raise ValueError(f"{key}: at least one value")
        return value

    @model_validator(mode="after")
    def _mode_fields(self) -> SweepSpec:
        if self.mode is SweepMode.RANDOM and self.samples is None:
            raise ValueError(f"{NESTED_MARK}samples: required when mode is random")
        if self.mode is SweepMode.GRID and self.samples is not None:
            raise ValueError(f"{NESTED_MARK}samples: only for mode random")
        return self


# Fields of the TradingEngine's shared models that a Backtest has no use for: a
# replay places no orders (so reads no keys) and its account starts from
# startingBalances on every run (so has nothing to reset). The model refuses
# them naming the field, and the CRD leaves them out (an unknown field there).
# A reason holds no "; " (the spec's error formatter splits problems there).
UNUSED_FIELDS: dict[str, dict[str, str]] = {
    "exchange": {
        "credentialsSecret": "a Backtest places no orders and reads no keys (only a live "
        "TradingEngine has credentials)",
    },
    "paper": {
        "resetRequest": "a Backtest's account starts from startingBalances on every run, "
        "there is no running account to reset (a TradingEngine's field)",
    },
}


def _refuse_unused(part: str, data: Any) -> Any:
    if isinstance(data, dict):
        problems = [
            f"{name}: not a Backtest field: {why}"
            for name, why in UNUSED_FIELDS[part].items()
            if name in data or _snake(name) in data
        ]
        if problems:
            raise ValueError(NESTED_MARK + "; ".join(problems))
    return data


class BacktestExchangeSpec(ExchangeSpec):
    """A Backtest's exchange: where `data.fetch` fetches candles; no credentials."""

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        return _refuse_unused("exchange", data)


class BacktestPaperSpec(PaperSpec):
    """A Backtest's simulated account: balances, fee and slippage; no reset request."""

    @model_validator(mode="before")
    @classmethod
    def _no_reset(cls, data: Any) -> Any:
        return _refuse_unused("paper", data)


class BacktestSpec(CamelModel):
    """What to replay, over which range and data, and (optionally) over which parameters."""

    image: str | None = Field(
        default=None,
        description="The engine image the Job runs, for a strategy that is not built in; the "
        "same allowlist as a TradingEngine's spec.image (Helm value "
        "engine.allowedImageRepositories). Default: the operator's engine image.",
        max_length=512,
        pattern=IMAGE_PATTERN,
    )
    exchange: BacktestExchangeSpec = Field(
        default_factory=BacktestExchangeSpec,
        description="The exchange: where `data.fetch` fetches candles (its endpoint included).",
    )
    market: MarketSpec = Field(description="The market replayed.")
    strategy: StrategySpec = Field(description="The strategy and its parameters.")
    risk: RiskSpec = Field(description="Limits every order intent is checked against.")
    paper: BacktestPaperSpec = Field(
        default_factory=BacktestPaperSpec,
        description="The simulated account: balances, fee, slippage.",
    )
    start: str = Field(
        alias="from",
        description="The first instant replayed (RFC 3339, inclusive).",
        json_schema_extra={"format": "date-time"},
    )
    end: str = Field(
        alias="to",
        description="The end of the range (RFC 3339, exclusive): [from, to).",
        json_schema_extra={"format": "date-time"},
    )
    data: DataSpec = Field(description="Where the market data comes from.")
    warmup: Count = Field(
        default=ENGINE_WARMUP,
        ge=0,
        le=MAX_WARMUP,
        description="How many candles (or trades) from before `from` the strategy sees first, "
        "with nothing traded on them, as a running TradingEngine's strategy sees 200 of "
        "recent history before it trades: a Backtest from T then makes the fills an engine "
        "started at T makes. Fewer if the data has fewer; 0: the strategy starts cold at "
        "`from`. data.fetch fetches them with the range.",
    )
    output: OutputSpec | None = Field(
        default=None,
        description="Where the HTML report and full summary go. Without it only the summary in "
        "status is kept.",
    )
    sweep: SweepSpec | None = Field(
        default=None, description="A parameter sweep; without it, one run of spec.strategy."
    )

    @field_validator("start", "end")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        rfc3339_ms(value)
        return value

    @model_validator(mode="after")
    def _range(self) -> BacktestSpec:
        if rfc3339_ms(self.end) <= rfc3339_ms(self.start):
            raise ValueError(f"{NESTED_MARK}to: must be later than from")
        return self

    @property
    def start_ms(self) -> int:
        return rfc3339_ms(self.start)

    @property
    def end_ms(self) -> int:
        return rfc3339_ms(self.end)

    def engine_spec(self, params: dict[str, Any] | None = None) -> TradingEngineSpec:
        """The paper TradingEngine spec a run replays (`params` override the strategy's)."""
        strategy = self.strategy.model_dump(mode="json", by_alias=True)
        if params:
            strategy["params"] = {**strategy["params"], **params}
        return TradingEngineSpec.model_validate(
            {
                "image": self.image,
                "mode": "paper",
                "exchange": self.exchange.model_dump(mode="json", by_alias=True),
                "market": self.market.model_dump(mode="json", by_alias=True),
                "strategy": strategy,
                "risk": self.risk.model_dump(mode="json", by_alias=True),
                "paper": self.paper.model_dump(mode="json", by_alias=True),
            }
        )


def parse_backtest_spec(data: Any) -> BacktestSpec:
    """Validate a Backtest's spec, raising ConfigError with `spec.field.path: problem` lines."""
    if not isinstance(data, dict):
        raise ConfigError([f"spec: expected a mapping, got {type(data).__name__}"])
    try:
        return BacktestSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_expand(exc, "spec")) from None


def combinations(spec: BacktestSpec) -> tuple[list[dict[str, Any]], int]:
    """The parameter overrides of each run, and how many combinations were skipped.

    Without a sweep: one run with no override. A grid is the product of the
    values in the order written; random mode samples it with its seed. A
    combination a built-in strategy's parameter model refuses is skipped.
    Raises ConfigError naming spec.sweep when nothing is left or too much is.
    """
    sweep = spec.sweep
    if sweep is None:
        return [{}], 0
    keys = list(sweep.params)
    size = 1
    for values in sweep.params.values():
        size *= len(values)
    if sweep.mode is SweepMode.GRID and size > MAX_COMBINATIONS:
        raise ConfigError(
            [f"spec.sweep.params: {size} combinations; at most {MAX_COMBINATIONS} per Backtest"]
        )
    grid = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*sweep.params.values())
    ]
    if sweep.mode is SweepMode.RANDOM:
        wanted = min(sweep.samples or 1, len(grid))
        grid = random.Random(sweep.seed).sample(grid, wanted)
    runs = [combo for combo in grid if _accepted(spec, combo)]
    if not runs:
        raise ConfigError(
            ["spec.sweep.params: the strategy refuses every combination (see its parameters)"]
        )
    return runs, len(grid) - len(runs)


def _accepted(spec: BacktestSpec, combo: dict[str, Any]) -> bool:
    try:
        spec.engine_spec(combo)
    except ValidationError:
        return False
    return True


class BacktestPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class BacktestConditionType(StrEnum):
    SPEC_VALID = "SpecValid"
    JOB_CREATED = "JobCreated"
    COMPLETE = "Complete"


_DECIMAL: dict[str, Any] = {"pattern": DECIMAL_PATTERN}


def _decimal(description: str) -> Any:
    return Field(default=None, description=description, json_schema_extra=_DECIMAL)


class BacktestStats(CamelModel):
    """The replay's statistics (docs/backtesting.md defines each), as decimal strings."""

    total_return_pct: str | None = _decimal("Final over starting equity, in percent.")
    annual_return_pct: str | None = _decimal("CAGR over the range, in percent.")
    sharpe: str | None = _decimal("Daily returns, annualised with sqrt(365), risk-free 0.")
    sortino: str | None = _decimal("As Sharpe, with downside deviation.")
    calmar: str | None = _decimal("Annual return over max drawdown.")
    max_drawdown_pct: str | None = _decimal("Largest peak-to-trough equity drop, in percent.")
    win_rate_pct: str | None = _decimal("Winning closed round trips, in percent.")
    profit_factor: str | None = _decimal("Gross profit over gross loss.")
    expectancy: str | None = _decimal("Mean profit per closed round trip (quote currency).")
    exposure_pct: str | None = _decimal("Time with a position, in percent.")
    trades: int | None = Field(default=None, ge=0, description="Closed round trips.")
    fills: int | None = Field(default=None, ge=0, description="Fills.")
    fees: str | None = _decimal("Fees paid (quote currency).")
    starting_equity: str | None = _decimal("Equity at the first event.")
    final_equity: str | None = _decimal("Equity at the last event.")
    pnl: str | None = _decimal("Final minus starting equity.")
    undefined: list[str] = Field(
        default_factory=list,
        description="Figures undefined for this run (written as 0), e.g. sharpe with one day.",
    )


# The statistics' keys as they travel (camelCase), in the model's order: what a
# Backtest run reports and status carries, derived so that a statistic added to
# the model cannot be left out of the run's summary or of a test's comparison.
STATS_FIELDS: tuple[str, ...] = tuple(
    field.alias or name for name, field in BacktestStats.model_fields.items()
)


class RankedRun(CamelModel):
    """One run of a sweep, as status ranks it."""

    index: int = Field(ge=0, description="The run's Job completion index.")
    params: dict[str, Any] = Field(
        description="The parameters of this run (overrides of spec.strategy.params).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    value: str | None = _decimal("The ranking statistic's value.")
    stats: BacktestStats = Field(description="The run's statistics.")


class ReportLocation(CamelModel):
    claim_name: str = Field(description="The output PersistentVolumeClaim.")
    path: str = Field(
        description="The report of the best run (or the only one) inside the volume; the "
        "other runs' reports sit next to it, named by their index."
    )


class SweepStatus(CamelModel):
    runs: int = Field(ge=0, description="Runs (parameter combinations) in the Job.")
    succeeded: int = Field(default=0, ge=0, description="Runs finished with a result.")
    failed: int = Field(default=0, ge=0, description="Runs that failed.")
    skipped: int = Field(
        default=0, ge=0, description="Combinations the strategy refused, never run."
    )
    rank_by: RankMetric = Field(description="The ranking statistic.")
    top: list[RankedRun] = Field(default_factory=list, description="The best runs, best first.")


class BacktestCondition(CamelModel):
    type: BacktestConditionType = Field(description="SpecValid, JobCreated or Complete.")
    status: str = Field(description="True, False or Unknown.", pattern="^(True|False|Unknown)$")
    reason: str = Field(default="", max_length=1024, description="One CamelCase word.")
    message: str = Field(default="", max_length=32768, description="Details for a person.")
    last_transition_time: str = Field(
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )


class BacktestStatus(CamelModel):
    """What the operator observed of the Backtest's Job; written through the status subresource."""

    phase: BacktestPhase | None = Field(
        default=None, description="Pending, Running, Succeeded or Failed."
    )
    message: str | None = Field(default=None, description="Why the phase is what it is.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation acted on."
    )
    job_name: str | None = Field(default=None, description="The Job that runs the replay.")
    start_time: str | None = Field(default=None, description="When the Job started (RFC 3339).")
    completion_time: str | None = Field(
        default=None, description="When the last run finished (RFC 3339)."
    )
    params: dict[str, Any] | None = Field(
        default=None,
        description="The strategy parameters of `stats` (the best run's, in a sweep).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    stats: BacktestStats | None = Field(
        default=None, description="The run's statistics (in a sweep: the best run's)."
    )
    report: ReportLocation | None = Field(
        default=None, description="Where the full report is (with spec.output)."
    )
    sweep: SweepStatus | None = Field(default=None, description="A sweep's progress and ranking.")
    conditions: list[BacktestCondition] = Field(
        default_factory=list, description="Latest observations."
    )
