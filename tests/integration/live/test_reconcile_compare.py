"""The comparison of the books with the exchange (pure: no network)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from live_support import Proto

from hean_engine.execution.client_ids import ClientOrderIds
from hean_engine.execution.reconcile import compare
from hean_engine.portfolio.ledger import Ledger

D = Decimal
IDS = ClientOrderIds("ns", "e", "abcdef123456")


def _ledger(btc: str, usdt: str) -> Ledger:
    return Ledger("BTC", "USDT", {"BTC": D(btc), "USDT": D(usdt)})


def test_equal_books_are_not_drift() -> None:
    result = compare(
        _ledger("0.5", "1000"), {"BTC": D("0.5"), "USDT": D("1000")}, [], IDS.is_ours, D(100), D(0)
    )
    assert not result.drift
    assert result.summary() == "books match"


def test_any_difference_is_drift_at_zero_tolerance_and_is_valued_in_quote() -> None:
    result = compare(
        _ledger("0.5", "1000"),
        {"BTC": D("0.49999999"), "USDT": D("1000.01")},
        [],
        IDS.is_ours,
        D(20000),
        D(0),
    )
    assert result.drift
    assert result.difference_value == D("0.01") + D("0.00000001") * 20000
    assert "BTC engine 0.5 exchange 0.49999999" in result.summary()


def test_a_difference_within_the_tolerance_is_not_drift() -> None:
    result = compare(
        _ledger("1", "10"), {"BTC": D("1"), "USDT": D("10.5")}, [], IDS.is_ours, D(1), D("0.5")
    )
    assert not result.drift
    over = compare(
        _ledger("1", "10"), {"BTC": D("1"), "USDT": D("10.51")}, [], IDS.is_ours, D(1), D("0.5")
    )
    assert over.balance_drift and over.drift


# What other software puts on a shared account: a web order, and ccxt's own
# id for an okx order sent without one (its broker id and 16 hex digits).
@pytest.mark.parametrize("stranger", ["web_123", "6b9ad766b55dBCDE0a1b2c3d4e5f6a7b"])
def test_a_foreign_open_order_is_drift_and_ours_are_not(proto: Proto, stranger: str) -> None:
    """On each exchange's id format: this engine's order is ours, the other is foreign."""
    ids = proto.client_ids("ns", "e", "abcdef123456")
    ours = {
        "id": "1",
        "clientOrderId": ids.next(),
        "side": "buy",
        "type": "limit",
        "amount": 0.1,
        "price": 100.5,
    }
    foreign = {
        "id": "2",
        "clientOrderId": stranger,
        "side": "sell",
        "type": "limit",
        "amount": 0.2,
        "price": 101.25,
    }
    result = compare(
        _ledger("1", "10"), {"BTC": D(1), "USDT": D(10)}, [ours, foreign], ids.is_ours, D(1), D(0)
    )
    assert result.drift and not result.balance_drift
    assert result.foreign_orders == [
        {
            "id": "2",
            "client_order_id": stranger,
            "side": "sell",
            "type": "limit",
            "amount": "0.2",
            "price": "101.25",
        }
    ]
