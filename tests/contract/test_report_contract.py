"""The engine's report as the engine writes it parses with the contract's EngineReport."""

from __future__ import annotations

from hean_contract.report import EngineReport, ReconcileReport


def test_a_live_reconcile_with_foreign_orders_parses() -> None:
    # as hean_engine.app.live writes it: the foreign orders themselves, not a count
    reconcile = ReconcileReport.model_validate(
        {
            "result": "drift",
            "time": "2026-01-02T03:04:05Z",
            "balances": {"USDT": {"engine": "10", "exchange": "9", "difference": "-1"}},
            "difference_value": "1",
            "tolerance": "0.5",
            "foreign_orders": [{"id": "42", "clientOrderId": "manual-1", "side": "buy"}],
            "summary": "1 foreign open order(s)",
        }
    )
    assert reconcile.foreign_orders is not None
    (foreign,) = reconcile.foreign_orders
    assert (foreign.id, foreign.client_order_id, foreign.side) == ("42", "manual-1", "buy")
    assert reconcile.balances is not None and reconcile.balances["USDT"].difference == "-1"


def test_reports_read_snake_case_and_camel_case() -> None:
    fields = {
        "name": "btc",
        "namespace": "ns",
        "generation": 1,
        "run_id": "r",
        "mode": "live",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "strategy": "ema_cross",
        "ready": True,
        "ready_reason": "Running",
        "risk_state": "ACTIVE",
        "paused": False,
        "position": "0",
        "balances": {},
        "equity": "1",
        "pnl": "0",
        "max_drawdown": "0",
        "fees": "0",
        "open_orders": [],
        "orders_submitted": 0,
        "orders_closed": {},
        "fills": 0,
        "rejections": {},
        "events": 0,
        "last_reconcile": {"result": "ok", "time": "2026-01-02T03:04:05Z", "foreign_orders": []},
    }
    report = EngineReport.model_validate(fields)
    assert report.last_reconcile is not None and report.last_reconcile.foreign_orders == []
    assert EngineReport.model_validate(report.model_dump(by_alias=True)) == report
