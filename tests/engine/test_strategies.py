"""The strategies: ema_cross's exact documented semantics, and the market maker's quoting."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

import pytest

from engine_support import EXAMPLES_DIR, T0, build_engine, candle, spec_dict, trade
from hean_contract.spec import EngineIdentity
from hean_contract.strategies import EmaCrossParams, MarketMakerParams
from hean_engine.app.assembly import Engine
from hean_engine.app.config import load_config
from hean_engine.data.files import read_trades
from hean_engine.kernel.engine import TradingKernel
from hean_engine.model.money import price_to_decimal
from hean_engine.model.orders import Order, OrderIntent, OrderType, Side
from hean_engine.strategy.ema_cross import EmaCross
from hean_engine.strategy.market_maker import MarketMaker
from hean_engine.strategy.registry import STRATEGY_CLASSES

D = Decimal
ZERO = Decimal(0)


class FakeContext:
    """A strategy context that records intents; the test sets the position."""

    def __init__(self, position: Decimal = ZERO, dust: Decimal = ZERO) -> None:
        self.position = position
        self.dust = dust
        self.now = 0
        self.open_orders: Sequence[Order] = []
        self.submitted: list[tuple[int, OrderIntent]] = []  # (candle number, intent)
        self.candle_number = 0

    def submit(self, intent: OrderIntent) -> Order | None:
        self.submitted.append((self.candle_number, intent))
        return None

    def cancel(self, order_id: str) -> None:
        raise AssertionError("ema_cross never cancels")


def _ema_cross(fast: int, slow: int, position: str = "0") -> tuple[EmaCross, FakeContext]:
    ctx = FakeContext(D(position))
    params = EmaCrossParams(fast=fast, slow=slow, quantity=D("0.5"))
    return EmaCross(ctx, params), ctx


def _feed(strategy: EmaCross, ctx: FakeContext, closes: list[float]) -> None:
    for close in closes:
        ctx.candle_number += 1
        strategy.on_candle(candle(ctx.candle_number, close))


def _signals(ctx: FakeContext) -> list[tuple[int, Side, Decimal]]:
    return [(n, intent.side, intent.quantity) for n, intent in ctx.submitted]


def test_registry_names_both_strategies() -> None:
    assert {"ema_cross": EmaCross, "market_maker": MarketMaker} == STRATEGY_CLASSES


def test_ema_cross_emas_follow_the_documented_float_expression() -> None:
    strategy, ctx = _ema_cross(fast=3, slow=7)
    closes = [966.61, 966.62, 970.0, 955.5, 990.25, 1001.0, 999.99, 1002.5]
    fast = slow = closes[0]
    fa, sa = 2 / (3 + 1), 2 / (7 + 1)
    for i, close in enumerate(closes):
        if i:
            fast = fa * close + (1 - fa) * fast
            slow = sa * close + (1 - sa) * slow
        _feed(strategy, ctx, [close])
        assert (strategy.fast, strategy.slow) == (fast, slow)  # bit for bit


def test_ema_cross_equality_cases() -> None:
    # fast=1 makes the fast EMA the close itself; slow=3 (alpha 0.5) is exact in binary,
    # so fast == slow happens exactly.
    strategy, ctx = _ema_cross(fast=1, slow=3)
    _feed(strategy, ctx, [100, 100, 100])  # fast == slow: relation 0, no signal
    assert ctx.submitted == []
    _feed(strategy, ctx, [104])  # 104 > 102: from 0 to > 0 with no position: buy
    assert _signals(ctx) == [(4, Side.BUY, D("0.5"))]
    ctx.position = D("0.5")
    _feed(strategy, ctx, [102, 102])  # 102 == 102: from > 0 to 0 is no death cross
    assert len(ctx.submitted) == 1
    _feed(strategy, ctx, [98])  # 98 < 100: from 0 to < 0 while holding: sell it all
    assert _signals(ctx)[1:] == [(7, Side.SELL, D("0.5"))]
    ctx.position = D(0)
    _feed(strategy, ctx, [100])  # 100 == 100: from < 0 to 0 is no golden cross
    assert len(ctx.submitted) == 2
    _feed(strategy, ctx, [102])  # 102 > 101: from 0 to > 0: buy
    ctx.position = D("0.5")
    _feed(strategy, ctx, [90])  # 90 < 95.5: from > 0 to < 0: sell
    ctx.position = D(0)
    _feed(strategy, ctx, [110])  # 110 > 102.75: from < 0 to > 0: buy
    assert _signals(ctx)[2:] == [
        (9, Side.BUY, D("0.5")),
        (10, Side.SELL, D("0.5")),
        (11, Side.BUY, D("0.5")),
    ]


def test_ema_cross_acts_on_no_signal_before_the_slow_th_candle() -> None:
    strategy, ctx = _ema_cross(fast=1, slow=3)
    _feed(strategy, ctx, [100, 104])  # golden cross on candle 2 < slow: ignored
    _feed(strategy, ctx, [106])  # candle 3: still above, no new cross
    assert ctx.submitted == []
    _feed(strategy, ctx, [90])  # death cross, but nothing held
    _feed(strategy, ctx, [110])  # golden cross on candle 5
    assert _signals(ctx) == [(5, Side.BUY, D("0.5"))]


def test_ema_cross_treats_dust_below_the_venues_smallest_order_as_flat() -> None:
    # Live: a buy's fee in the base currency and lot-size rounding leave dust that
    # cannot be sold; holding it must neither block the next buy nor be "sold".
    strategy, ctx = _ema_cross(fast=1, slow=3, position="0.00000900")
    ctx.dust = D("0.00001")
    _feed(strategy, ctx, [100, 96, 95, 100])  # golden cross on candle 4
    _feed(strategy, ctx, [90])  # death cross: dust is not sold
    assert _signals(ctx) == [(4, Side.BUY, D("0.5"))]


def test_ema_cross_acts_on_a_cross_at_exactly_the_slow_th_candle() -> None:
    strategy, ctx = _ema_cross(fast=1, slow=3)
    _feed(strategy, ctx, [100, 100, 104])
    assert _signals(ctx) == [(3, Side.BUY, D("0.5"))]


def test_ema_cross_ignores_a_death_cross_before_the_slow_th_candle() -> None:
    strategy, ctx = _ema_cross(fast=1, slow=3, position="1")
    _feed(strategy, ctx, [100, 96, 95])  # below from candle 2
    _feed(strategy, ctx, [100])  # golden cross while holding: no buy
    assert ctx.submitted == []
    _feed(strategy, ctx, [90])  # death cross on candle 5: sell the whole position
    assert _signals(ctx) == [(5, Side.SELL, D(1))]


def test_ema_cross_sells_the_whole_position_through_the_engine() -> None:
    spec = spec_dict(
        strategy={"params": {"fast": 1, "slow": 3, "quantity": "1"}},
        paper={"startingBalances": {"USD": "1000", "BTC": "0.25"}, "feeRate": "0"},
    )
    engine = build_engine(spec)
    kernel = engine.kernel
    # holding 0.25 BTC from the start: the golden cross on candle 4 does not buy
    for minute, close in enumerate([100.0, 100.0, 100.0, 104.0, 98.0, 97.0, 103.0, 99.0, 95.0]):
        kernel.on_candle(candle(minute, close))
    assert [(f.ts, f.side, f.price, f.quantity) for f in kernel.fills] == [
        (T0 + 5 * 60_000, Side.SELL, D(97), D("0.25")),  # death cross on 98, next open
        (T0 + 7 * 60_000, Side.BUY, D(99), D(1)),  # golden cross on 103
        (T0 + 8 * 60_000, Side.SELL, D(95), D(1)),  # death cross on 99
    ]
    assert engine.ledger.position == 0
    assert engine.ledger.quote == D(1000) + D("0.25") * 97 - 99 + 95


# -- market_maker -----------------------------------------------------------------------------


def _mm_engine(
    balances: dict[str, str] | None = None, **params: str
) -> tuple[Engine, TradingKernel]:
    spec = spec_dict(
        "market_maker",
        strategy={"params": params},
        paper={"startingBalances": balances or {"USD": "10000"}, "feeRate": "0"},
    )
    engine = build_engine(spec)
    return engine, engine.kernel


def _quotes(kernel: TradingKernel) -> list[tuple[Side, Decimal | None, Decimal]]:
    return sorted(((o.side, o.price, o.remaining) for o in kernel.open_orders), key=str)


def test_market_maker_bids_around_the_reference_rounded_to_the_tick() -> None:
    _, kernel = _mm_engine()
    kernel.on_trade(trade(0, 100.0))
    # nothing held: a bid only, 20 bps below, rounded down
    assert _quotes(kernel) == [(Side.BUY, D("99.80"), D(1))]
    kernel.on_trade(trade(1, 100.2))
    # moved 20 bps > requoteBps 10: cancelled and replaced; 99.9996 rounds down
    assert _quotes(kernel) == [(Side.BUY, D("99.99"), D(1))]


def test_market_maker_does_not_requote_on_a_small_move() -> None:
    _, kernel = _mm_engine()
    kernel.on_trade(trade(0, 100.0))
    (first,) = kernel.open_orders
    kernel.on_trade(trade(1, 100.1))  # exactly 10 bps
    kernel.on_trade(trade(2, 99.95))
    assert [o.id for o in kernel.open_orders] == [first.id]
    assert kernel.orders_submitted == 1


def test_market_maker_requotes_after_a_fill_and_asks_only_what_it_holds() -> None:
    engine, kernel = _mm_engine()
    kernel.on_trade(trade(0, 100.0))
    kernel.on_trade(trade(1, 99.75, amount=0.4))
    # the bid at 99.80 filled 0.4; the strategy requoted on the same trade:
    # bid 99.75 x 0.998 = 99.5505 -> 99.55, ask 99.75 x 1.002 = 99.9495 -> 99.95 for 0.4
    assert engine.ledger.position == D("0.4")
    assert _quotes(kernel) == [
        (Side.BUY, D("99.55"), D(1)),
        (Side.SELL, D("99.95"), D("0.4")),
    ]
    kernel.on_trade(trade(2, 100.0, amount=5.0))  # through the ask
    assert engine.ledger.position == 0
    assert _quotes(kernel) == [(Side.BUY, D("99.80"), D(1))]


@pytest.mark.parametrize(
    ("held", "quotes"),
    [
        ("2", [(Side.BUY, D("99.80"), D(1)), (Side.SELL, D("100.20"), D(1))]),
        ("2.5", [(Side.SELL, D("100.20"), D(1))]),  # 2.5 + 1 > maxPosition 3: no bid
        ("0.3", [(Side.BUY, D("99.80"), D(1)), (Side.SELL, D("100.20"), D("0.3"))]),
    ],
)
def test_market_maker_respects_max_position_and_inventory(
    held: str, quotes: list[tuple[Side, Decimal, Decimal]]
) -> None:
    _, kernel = _mm_engine({"USD": "10000", "BTC": held})
    kernel.on_trade(trade(0, 100.0))
    assert _quotes(kernel) == quotes


def test_market_maker_tries_again_when_every_quote_was_refused() -> None:
    engine, kernel = _mm_engine()
    kernel.pause()
    kernel.on_trade(trade(0, 100.0))
    kernel.on_trade(trade(1, 100.0))
    assert engine.risk.rejections == {"paused": 2}
    kernel.resume()
    kernel.on_trade(trade(2, 100.0))
    assert _quotes(kernel) == [(Side.BUY, D("99.80"), D(1))]


def test_market_maker_on_a_slice_of_the_shared_trades(bnteth_trades_file: Path) -> None:
    identity, spec = load_config(EXAMPLES_DIR / "replay-bnteth-mm.yaml")
    assert isinstance(identity, EngineIdentity)
    engine = build_engine(spec)
    kernel = engine.kernel
    params = spec.strategy.typed_params()
    assert isinstance(params, MarketMakerParams)
    offset = params.spread_bps / 10_000
    alpha = 2.0 / (params.window + 1)
    ref: float | None = None
    quoted_bids = quoted_asks = 0
    for event in itertools.islice(read_trades(bnteth_trades_file), 30_000):
        known = set(kernel.open)
        kernel.on_trade(event)
        ref = event.price if ref is None else alpha * event.price + (1 - alpha) * ref
        reference = price_to_decimal(ref)
        bids = [o for o in kernel.open.values() if o.side is Side.BUY]
        asks = [o for o in kernel.open.values() if o.side is Side.SELL]
        assert len(bids) <= 1 and len(asks) <= 1
        for order in kernel.open.values():
            assert order.type is OrderType.LIMIT and order.price is not None
            assert order.price % params.tick_size == 0
            if order.id in known:
                continue  # placed earlier, at an earlier reference
            if order.side is Side.BUY:
                quoted_bids += 1
                expected = (reference * (1 - offset) / params.tick_size).to_integral_value(
                    ROUND_FLOOR
                ) * params.tick_size
                assert order.price == expected
                assert engine.ledger.position + order.quantity <= params.max_position
            else:
                quoted_asks += 1
                expected = (reference * (1 + offset) / params.tick_size).to_integral_value(
                    ROUND_CEILING
                ) * params.tick_size
                assert order.price == expected
                assert order.quantity <= engine.ledger.position
        assert 0 <= engine.ledger.position <= params.max_position
        assert engine.ledger.quote >= 0
    fills = kernel.fills
    assert quoted_bids > 100 and quoted_asks > 100
    sides = {f.side for f in fills}
    assert sides == {Side.BUY, Side.SELL}
    assert all(f.liquidity == "maker" for f in fills)
    bought = sum((f.quantity for f in fills if f.side is Side.BUY), start=D(0))
    sold = sum((f.quantity for f in fills if f.side is Side.SELL), start=D(0))
    assert engine.ledger.position == bought - sold
