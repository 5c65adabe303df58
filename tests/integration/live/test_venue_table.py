"""The venue table: what each exchange's error bodies mean for an order, and its paging.

The exceptions come from ccxt's own error handling of the bodies the
exchanges (and the simulator) send, so a ccxt upgrade that maps a code to
another class shows here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from engine_support import FakeClock
from hean_engine.execution.client_ids import ClientOrderIds
from hean_engine.execution.journal import Journal
from hean_engine.execution.live_venue import LiveVenue
from hean_engine.net.exchange import rewrite_api_urls
from hean_engine.net.retry import is_transient
from hean_engine.net.venues import VENUES, Outcome, UnsupportedExchange, error_code, venue


def _raised(exchange_id: str, status: int, body: dict[str, Any]) -> BaseException:
    """What ccxt raises for `body` with HTTP `status` from `exchange_id`."""
    client = getattr(ccxt, exchange_id)()
    text = json.dumps(body)
    try:
        client.handle_errors(status, "", "https://x/y", "POST", {}, text, body, {}, "")
        client.handle_http_status_code(status, "", "https://x/y", "POST", text)
    except ccxt.BaseError as exc:
        return exc
    raise AssertionError(f"ccxt raised nothing for {body}")


def _okx_order_failure(s_code: str, s_msg: str) -> dict[str, Any]:
    item = {"clOrdId": "x", "ordId": "", "tag": "", "sCode": s_code, "sMsg": s_msg}
    return {"code": "1", "msg": "All operations failed", "data": [item]}


@pytest.mark.parametrize(
    ("exchange_id", "status", "body", "outcome"),
    [
        ("binance", 400, {"code": -2010, "msg": "Duplicate order sent."}, Outcome.DUPLICATE),
        (
            "binance",
            400,
            {"code": -2010, "msg": "Account has insufficient balance for requested action."},
            Outcome.NOT_PLACED,
        ),
        ("binance", 429, {"code": -1003, "msg": "Too much request weight used"}, Outcome.RETRY),
        ("binance", 500, {"code": -1000, "msg": "An unknown error occurred"}, Outcome.UNKNOWN),
        ("binance", 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}, Outcome.NOT_PLACED),
        ("okx", 200, _okx_order_failure("51016", "Duplicated clOrdId"), Outcome.DUPLICATE),
        ("okx", 200, _okx_order_failure("51008", "Insufficient balance"), Outcome.NOT_PLACED),
        ("okx", 200, _okx_order_failure("50037", "Order expired."), Outcome.NOT_PLACED),
        # ccxt has no entry for 51149 (a plain ExchangeError), but the outcome is unknown.
        ("okx", 200, _okx_order_failure("51149", "Order timed out"), Outcome.UNKNOWN),
        ("okx", 429, {"code": "50011", "msg": "Too Many Requests", "data": []}, Outcome.RETRY),
        ("okx", 500, {"code": "50026", "msg": "System error", "data": []}, Outcome.UNKNOWN),
        (
            "okx",
            400,
            {"code": "50004", "msg": "API endpoint request timeout", "data": []},
            Outcome.UNKNOWN,
        ),
    ],
)
def test_an_error_body_means_what_the_table_says_for_an_order(
    exchange_id: str, status: int, body: dict[str, Any], outcome: Outcome
) -> None:
    exc = _raised(exchange_id, status, body)
    assert VENUES[exchange_id].placement_outcome(exc, is_transient(exc)) is outcome


def test_a_failure_without_a_body_is_judged_by_ccxts_class() -> None:
    table = VENUES["okx"]
    lost = ccxt.ExchangeNotAvailable("okx POST http://x/api/v5/trade/batch-orders")
    assert error_code(lost) == (None, None)
    assert table.placement_outcome(lost, is_transient(lost)) is Outcome.UNKNOWN
    refused = ccxt.BadRequest("okx {not json")
    assert table.placement_outcome(refused, is_transient(refused)) is Outcome.NOT_PLACED


def test_trades_are_paged_by_each_exchanges_cursor() -> None:
    binance, okx = VENUES["binance"], VENUES["okx"]
    assert binance.trades_after(41) == {"fromId": 42}
    assert binance.trade_cursor({"id": "42", "info": {}}) == 42
    assert okx.trades_after(600_000_000_007) == {"before": "600000000007"}
    assert okx.trades_after(-1) == {"before": "0"}
    # OKX pages by the fill's bill id, not its trade id.
    assert okx.trade_cursor({"id": "1", "info": {"billId": "600000000007"}}) == 600_000_000_007


def test_only_the_named_url_keys_are_rewritten() -> None:
    urls = {"rest": "https://{hostname}", "docs": "https://www.okx.com/docs"}
    moved = rewrite_api_urls("okx", urls, "http://127.0.0.1:9")
    assert moved == {"rest": "http://127.0.0.1:9", "docs": "https://www.okx.com/docs"}
    # Binance names none: every API URL moves.
    assert rewrite_api_urls("binance", {"a": "https://api.binance.com/api"}, "http://h:1") == {
        "a": "http://h:1/api"
    }


def test_an_exchange_without_an_entry_is_refused_by_name() -> None:
    assert set(VENUES) == {"binance", "okx"}
    with pytest.raises(UnsupportedExchange, match="binance, okx; 'kraken' has no entry"):
        venue("kraken")


async def test_an_okx_order_request_carries_its_deadline_outside_the_signature(
    tmp_path: Path,
) -> None:
    """The venue adds `expTime` (signing time + recvWindow) to order placements only."""
    client = ccxt_async.okx({"apiKey": "k", "secret": "s", "password": "p"})
    clock = FakeClock(1_700_000_000.0)
    ids = ClientOrderIds("ns", "e", "run1", separator="", allowed=VENUES["okx"].client_ids.pattern)
    venue = LiveVenue(
        client,
        "BTC/USDT",
        Journal(tmp_path, clock),
        ids,
        recv_window_ms=250,
        clock=clock,
        venue=VENUES["okx"],
    )
    cid = ids.next()
    venue._signing.add(cid)
    order = {"instId": "BTC-USDT", "clOrdId": cid, "sz": "1"}
    placed = client.sign("trade/batch-orders", ["private"], "POST", [order])
    assert placed["headers"]["expTime"] == str(1_700_000_000_000 + 250)
    assert venue._signed_ms[cid] == 1_700_000_000_000
    looked_up = client.sign("trade/order", ["private"], "GET", {"instId": "x", "clOrdId": cid})
    assert "expTime" not in looked_up["headers"]  # a GET of trade/order is no placement
    venue._signing.clear()
    other = client.sign("trade/batch-orders", ["private"], "POST", [order])
    assert "expTime" not in other["headers"]  # nothing of ours in flight
    await client.close()
