"""Fill and OrderIntent: frozen dataclasses whose __init__ sets the slots directly."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from decimal import Decimal

import pytest

from hean_engine.model.orders import Fill, OrderIntent, OrderType, Side

D = Decimal


@pytest.mark.parametrize("cls", [Fill, OrderIntent])
def test_the_constructor_has_the_dataclass_signature(cls: type) -> None:
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]


def test_fills_and_intents_are_built_frozen_compared_and_copied_like_dataclasses() -> None:
    fill = Fill(1, "o1", Side.BUY, D("100.5"), D("0.01"), D("0.001005"))
    assert (fill.liquidity, fill.fee_asset, fill.trade_id) == ("taker", "", "")
    by_name = Fill(
        ts=1, order_id="o1", side=Side.BUY, price=D("100.5"), quantity=D("0.01"), fee=D("0.001005")
    )
    assert fill == by_name and hash(fill) == hash(by_name)
    assert repr(fill).startswith("Fill(ts=1, order_id='o1', side=<Side.BUY: 'buy'>")
    assert dataclasses.replace(fill, liquidity="maker").liquidity == "maker"
    assert pickle.loads(pickle.dumps(fill)) == fill
    with pytest.raises(dataclasses.FrozenInstanceError):
        fill.price = D(1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Fill(1, "o1", Side.BUY, D(1), D(1))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        OrderIntent(Side.BUY, D(1), unknown=1)  # type: ignore[call-arg]

    intent = OrderIntent(Side.SELL, D(2), OrderType.LIMIT, D(3), tag="t")
    assert intent == OrderIntent(Side.SELL, D(2), type=OrderType.LIMIT, price=D(3), tag="t")
    assert OrderIntent(Side.BUY, D(1)) == OrderIntent(Side.BUY, D(1), OrderType.MARKET, None, "")
    assert dataclasses.astuple(intent) == (Side.SELL, D(2), OrderType.LIMIT, D(3), "t")
