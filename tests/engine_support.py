"""Plain helpers for the engine core's tests (imported by tests and by conftest.py).

Kept out of conftest.py so that hypothesis test bodies and module-level code
can import them; conftest.py wraps the ones tests want as fixtures.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hean_contract.spec import EngineIdentity, TradingEngineSpec, parse_spec
from hean_contract.strategies import StrategyParams
from hean_engine.app.assembly import Engine, build_simulated_engine
from hean_engine.model.market import Candle, MarketEvent, Trade
from hean_engine.model.orders import Fill, Order, OrderIntent
from hean_engine.strategy.base import DataKind, Strategy, StrategyContext

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
BTCUSD_CANDLES = SHARED_DATA_DIR / "btcusd_bitfinex_1m_2017-2018.csv.gz"
BNTETH_TRADES = SHARED_DATA_DIR / "bnteth_binance_trades_2017-2018.csv.gz"
EXAMPLES_DIR = REPO_ROOT / "examples"

CANDLE_HEADER = "timestamp,open,high,low,close,volume"
TRADE_HEADER = "timestamp,side,price,amount"

T0 = 1_483_228_800_000  # 2017-01-01T00:00:00Z in epoch ms
MINUTE = 60_000
DAY = 86_400_000


def require_shared_file(path: Path) -> Path:
    """The shared data file, or a loud failure (never a skip) naming where it should be."""
    if not path.is_file():
        pytest.fail(
            f"shared market data file missing: {path}\n"
            f"The engine tests read the recorded data from <repo>/../shared/data "
            f"({SHARED_DATA_DIR}); see that directory's README. Do not copy it into the repo.",
            pytrace=False,
        )
    return path


# -- time -------------------------------------------------------------------------


class FakeClock:
    """The engine's `Clock` on a fake timeline: a sleep moves it at once; jitter is seeded.

    `time` is the clock's Unix seconds (a test moves it too); `sleeps` lists
    every sleep asked for, in order.
    """

    def __init__(self, start: float = 1_700_000_000.0, *, seed: int = 7) -> None:
        self.time = start
        self.rng = random.Random(seed)
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
        await asyncio.sleep(0)  # other tasks run, as during a real sleep


# -- specs ------------------------------------------------------------------------

EMA_CROSS_PARAMS: dict[str, Any] = {"fast": 3, "slow": 5, "quantity": "1"}
MARKET_MAKER_PARAMS: dict[str, Any] = {
    "quantity": "1",
    "maxPosition": "3",
    "spreadBps": "20",
    "requoteBps": "10",
    "tickSize": "0.01",
    "window": 1,
}


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `overrides` merged in: dicts merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def spec_dict(strategy_name: str = "ema_cross", /, **overrides: Any) -> dict[str, Any]:
    """A valid bare TradingEngineSpec dict (camelCase) with wide limits, plus `overrides`.

    The risk limits are wide so that a test narrows only the limit it is about.
    `strategy_name` picks the base parameters (ema_cross or market_maker);
    overrides merge into nested dicts, so `risk={"maxOpenOrders": 1}` changes
    one limit and `strategy={"params": {"fast": 2}}` one parameter.
    """
    params = {"ema_cross": EMA_CROSS_PARAMS, "market_maker": MARKET_MAKER_PARAMS}[strategy_name]
    base: dict[str, Any] = {
        "mode": "paper",
        "exchange": {"id": "bitfinex"},
        "market": {"symbol": "BTC/USD", "timeframe": "1m"},
        "strategy": {"name": strategy_name, "params": dict(params)},
        "risk": {
            "maxOrderNotional": "1000000",
            "maxPositionNotional": "1000000",
            "maxOpenOrders": 10,
            "maxDailyLoss": "1000000",
            "maxDrawdownPct": "100",
            "maxOrdersPerMinute": 1000,
        },
        "paper": {"startingBalances": {"USD": "10000"}, "feeRate": "0.001", "slippageBps": "0"},
        "paused": False,
    }
    return deep_merge(base, overrides)


def manifest_dict(spec: dict[str, Any], name: str = "test-engine") -> dict[str, Any]:
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


# -- engines ----------------------------------------------------------------------


class ScriptedStrategy(Strategy):
    """A strategy the test drives: it records what it sees and calls optional hooks.

    The test submits through `engine.kernel` (the strategy context) directly.
    """

    name: ClassVar[str] = "scripted"
    consumes: ClassVar[DataKind] = "candles"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx, StrategyParams())
        self.events: list[MarketEvent] = []
        self.fills: list[Fill] = []
        self.closed: list[Order] = []
        self.position_seen: list[Decimal] = []  # ctx.position as each event was seen
        self.on_event: Callable[[MarketEvent], None] | None = None
        self.after_fill: Callable[[Fill, Order], None] | None = None

    def on_candle(self, candle: Candle) -> None:
        self._seen(candle)

    def on_trade(self, trade: Trade) -> None:
        self._seen(trade)

    def _seen(self, event: MarketEvent) -> None:
        self.events.append(event)
        self.position_seen.append(self.ctx.position)
        if self.on_event is not None:
            self.on_event(event)

    def on_fill(self, fill: Fill, order: Order) -> None:
        self.fills.append(fill)
        if self.after_fill is not None:
            self.after_fill(fill, order)

    def on_order_closed(self, order: Order) -> None:
        self.closed.append(order)


def build_engine(spec: dict[str, Any] | TradingEngineSpec | None = None) -> Engine:
    """A simulated (replay/paper) engine with the spec's own strategy."""
    parsed = spec if isinstance(spec, TradingEngineSpec) else parse_spec(spec or spec_dict())
    return build_simulated_engine(EngineIdentity(name="test-engine"), parsed)


def build_scripted_engine(
    spec: dict[str, Any] | TradingEngineSpec | None = None,
) -> tuple[Engine, ScriptedStrategy]:
    """A simulated engine whose strategy is replaced by a ScriptedStrategy the test drives."""
    engine = build_engine(spec)
    scripted = ScriptedStrategy(engine.kernel)
    engine.kernel.attach(scripted)
    engine.strategy = scripted
    return engine, scripted


# -- market data ------------------------------------------------------------------


def candle(
    minute: int,
    open: float,
    high: float | None = None,
    low: float | None = None,
    close: float | None = None,
    volume: float = 1.0,
) -> Candle:
    """A candle `minute` minutes after 2017-01-01T00:00Z; missing prices default to open."""
    close = open if close is None else close
    high = max(open, close) if high is None else high
    low = min(open, close) if low is None else low
    return Candle(T0 + minute * MINUTE, open, high, low, close, volume)


def trade(ms: int, price: float, amount: float = 1.0, side: str = "buy") -> Trade:
    """A trade `ms` milliseconds after 2017-01-01T00:00Z."""
    return Trade(T0 + ms, side == "buy", price, amount)


def write_lines(path: Path, lines: Iterable[str], *, gz: bool = False) -> Path:
    text = "".join(f"{line}\n" for line in lines)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def head_lines(path: Path, count: int) -> list[str]:
    """The first `count` lines of a (gzipped) text file, without line ends."""
    lines: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if len(lines) == count:
                break
    return lines


# -- the command line -------------------------------------------------------------


def hean_executable() -> str:
    """The installed `hean` console script of the interpreter running the tests."""
    beside = Path(sys.executable).parent / "hean"
    if beside.is_file():
        return str(beside)
    found = shutil.which("hean")
    if found is None:
        pytest.fail("the `hean` console script is not installed (pip install -e .)")
    return found


def run_hean(*args: str | Path, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run `hean ARGS...` as a subprocess (stdin closed, stdout/stderr captured)."""
    return subprocess.run(
        [hean_executable(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


# -- random sessions: hypothesis drives a real kernel, risk engine and simulated venue --

# A step is one of:
#   ("event", dt_ms, open_cents, close_cents, wick_cents, amount)   a candle or a trade
#   ("submit", side, type, quantity, limit_offset_cents)            an intent through risk
#   ("cancel", index)                                               cancel the index-th open order
#   ("state", RiskState)                                            a control command
Step = tuple[Any, ...]

QUANTITIES = [Decimal(0), Decimal("-1"), Decimal("0.01"), Decimal("0.5"), Decimal(1), Decimal(3)]


def session_steps(*, with_state_changes: bool = False, max_size: int = 60) -> Any:
    """A hypothesis strategy of step lists (see `Step`)."""
    from hypothesis import strategies as st

    from hean_engine.model.orders import OrderType, RiskState, Side

    event = st.tuples(
        st.just("event"),
        st.sampled_from([0, 1, 1_000, 30_000, 60_000, 3_600_000, DAY]),
        st.integers(500, 20_000),
        st.integers(500, 20_000),
        st.integers(0, 300),
        st.sampled_from([0.01, 0.5, 1.0, 2.25]),
    )
    submit = st.tuples(
        st.just("submit"),
        st.sampled_from(list(Side)),
        st.sampled_from(list(OrderType)),
        st.sampled_from(QUANTITIES),
        st.integers(-400, 400),
    )
    cancel = st.tuples(st.just("cancel"), st.integers(0, 5))
    options = [event, event, submit, submit, cancel]
    if with_state_changes:
        options.append(st.tuples(st.just("state"), st.sampled_from(list(RiskState))))
    return st.lists(st.one_of(*options), max_size=max_size)


def session_specs() -> Any:
    """A hypothesis strategy of spec dicts: accounts, costs and limits from roomy to tight."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        balances = {"USD": draw(st.sampled_from(["0", "40", "1000", "100000"]))}
        base = draw(st.sampled_from([None, "0", "2.5"]))
        if base is not None:
            balances["BTC"] = base
        return spec_dict(
            risk={
                "maxOrderNotional": draw(st.sampled_from(["30", "400", "1000000"])),
                "maxPositionNotional": draw(st.sampled_from(["60", "700", "1000000"])),
                "maxOpenOrders": draw(st.sampled_from([1, 3, 10])),
                "maxDailyLoss": draw(st.sampled_from(["0.5", "25", "1000000"])),
                "maxDrawdownPct": draw(st.sampled_from(["0.01", "3", "100"])),
                "maxOrdersPerMinute": draw(st.sampled_from([2, 1000])),
            },
            paper={
                "startingBalances": balances,
                "feeRate": draw(st.sampled_from(["0", "0.001", "0.0075"])),
                "slippageBps": draw(st.sampled_from(["0", "3", "50"])),
            },
        )

    return build()


SubmitHook = Callable[[OrderIntent, "Decimal | None", "Order | None", dict[str, Any]], None]


def run_session(
    engine: Engine,
    kind: DataKind,
    steps: list[Step],
    *,
    after_step: Callable[[Step], None] | None = None,
    on_submit: SubmitHook | None = None,
) -> None:
    """Feed `steps` to the engine's kernel: events as candles or trades, intents, cancels."""
    from hean_engine.model.money import price_to_decimal
    from hean_engine.model.orders import OrderType, RiskState

    kernel = engine.kernel
    now = T0
    mark_cents: int | None = None
    for step in steps:
        if step[0] == "event":
            _, dt, open_cents, close_cents, wick, amount = step
            now += dt if kind == "trades" else max(dt, MINUTE) // MINUTE * MINUTE
            if kind == "candles":
                high = max(open_cents, close_cents) + wick
                low = max(min(open_cents, close_cents) - wick, 1)
                kernel.on_candle(
                    Candle(now, open_cents / 100, high / 100, low / 100, close_cents / 100, 1.0)
                )
            else:
                kernel.on_trade(Trade(now, amount < 1, close_cents / 100, amount))
            mark_cents = close_cents
        elif step[0] == "submit":
            _, side, order_type, quantity, offset = step
            price = None
            if order_type is OrderType.LIMIT:
                price = Decimal(max((mark_cents or 10_000) + offset, 1)) / 100
            intent = OrderIntent(side, quantity, order_type, price)
            mark = engine.ledger.mark_price
            ref = (
                price
                if price is not None
                else (price_to_decimal(mark) if mark is not None else None)
            )
            before = {
                "state": engine.risk.state,
                "paused": engine.risk.paused,
                "position": engine.ledger.position,
                "quote": engine.ledger.quote,
                "mark": None if mark is None else price_to_decimal(mark),
                "open": list(kernel.open.values()),
                "rejections": sum(engine.risk.rejections.values()),
            }
            order = kernel.submit(intent)
            if on_submit is not None:
                on_submit(intent, ref, order, before)
        elif step[0] == "cancel":
            orders = list(kernel.open.values())
            if orders:
                kernel.cancel(orders[step[1] % len(orders)].id)
        else:
            state: RiskState = step[1]
            if state is RiskState.ACTIVE:
                kernel.resume()
                kernel.reset_halt()
            else:
                kernel.set_risk_state(state, "test")
        if after_step is not None:
            after_step(step)
