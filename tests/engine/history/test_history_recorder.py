"""The recorder on a paper engine in process: what the kernel books is what the store keeps."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine_support import MINUTE, T0, build_scripted_engine, candle, spec_dict
from hean_engine.app.assembly import Engine
from hean_engine.history.recorder import HistoryRecorder, open_history
from hean_engine.history.store import Window
from hean_engine.model.orders import OrderIntent, OrderType, RiskState, Side
from hean_engine.telemetry.logs import configure_logging

SPEC = spec_dict(paper={"startingBalances": {"USD": "10000"}, "feeRate": "0.001"})


class Clock:
    def __init__(self) -> None:
        self.now = T0 / 1000

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream, engine="rec-test", run_id="r")
    yield stream
    configure_logging()


def start(
    target: Path, run_id: str, spec: dict[str, object] = SPEC
) -> tuple[Engine, HistoryRecorder]:
    engine, _ = build_scripted_engine(spec)
    recorder = open_history(
        str(target),
        engine.kernel,
        namespace="default",
        name="rec",
        run_id=run_id,
        paper=True,
        timeframe_ms=MINUTE,
        clock=Clock(),
    )
    return engine, recorder


def buy(engine: Engine, quantity: str = "1") -> str:
    order = engine.kernel.submit(OrderIntent(Side.BUY, Decimal(quantity)))
    assert order is not None
    return order.id


def test_orders_fills_equity_and_the_account_are_recorded(
    tmp_path: Path, logs: io.StringIO
) -> None:
    engine, recorder = start(tmp_path, "run1")
    kernel = engine.kernel
    kernel.warm_up(candles=[candle(-2, 90.0), candle(-1, 95.0)])  # history: no equity points
    kernel.on_candle(candle(0, 100.0))
    order_id = buy(engine)
    kernel.on_candle(candle(1, 101.0, close=102.0))  # fills at the open, 101
    kernel.set_risk_state(RiskState.HALTED, "test halt")
    assert recorder.flush()
    store = recorder.store

    fills = store.fills(Window()).items
    assert [
        (f.trade_id, f.order_id, f.price, f.quantity, f.fee, f.fee_currency) for f in fills
    ] == [("paper-1", order_id, Decimal("101.0"), Decimal(1), Decimal("0.1010"), "USD")]
    assert [(o.order_id, o.change, o.status) for o in store.orders(Window()).items] == [
        (order_id, "submitted", "open"),
        (order_id, "filled", "filled"),
    ]
    account = store.account()
    assert account is not None and account.balances == engine.ledger.balances()
    assert account.balances == {"USD": Decimal("9898.899"), "BTC": Decimal(1)}
    points = store.equity(Window()).items
    assert [p.ts for p in points] == [T0 + MINUTE, T0 + 2 * MINUTE]  # candles' close times
    assert points[0].baseline == points[0].equity == Decimal(10000)
    assert points[1].pnl == points[1].equity - Decimal(10000)
    kinds = [e.kind for e in store.events(Window()).items]
    assert kinds[0] == "history" and "risk_state" in kinds and "warmed_up" in kinds
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    fill_lines = [line for line in lines if line["event"] == "fill"]
    assert len(fill_lines) == 1
    assert fill_lines[0]["trade_id"] == "paper-1" and fill_lines[0]["price"] == "101"
    assert [line["change"] for line in lines if line["event"] == "order"] == ["submitted", "filled"]
    recorder.close()


def test_a_restart_continues_the_account_the_ids_and_the_baseline(tmp_path: Path) -> None:
    engine, recorder = start(tmp_path, "run1")
    engine.kernel.on_candle(candle(0, 100.0))
    first = buy(engine)
    engine.kernel.on_candle(candle(1, 101.0))
    balances = engine.ledger.balances()
    recorder.close()

    # A changed spec (other starting balances): the recorded account wins.
    changed = spec_dict(paper={"startingBalances": {"USD": "500"}, "feeRate": "0.001"})
    again, recorder = start(tmp_path, "run2", changed)
    assert again.ledger.balances() == balances
    again.kernel.on_candle(candle(2, 110.0))
    assert again.ledger.pnl == Decimal("110.0") - Decimal("101.0") - Decimal("0.1010")
    second = buy(again, "0.5")
    assert (first, second) == ("o1", "o2")
    again.kernel.on_candle(candle(3, 111.0))
    assert recorder.flush()
    fills = recorder.store.fills(Window()).items
    assert [(f.trade_id, f.order_id, f.run_id) for f in fills] == [
        ("paper-1", "o1", "run1"),
        ("paper-2", "o2", "run2"),
    ]
    assert {p.baseline for p in recorder.store.equity(Window()).items} == {Decimal(10000)}
    recorder.close()


def test_resetting_the_paper_account_is_explicit_and_keeps_the_history(tmp_path: Path) -> None:
    engine, recorder = start(tmp_path, "run1")
    engine.kernel.on_candle(candle(0, 100.0))
    buy(engine)
    engine.kernel.on_candle(candle(1, 101.0))
    state = recorder.reset_paper_account({"USD": Decimal(10000)})
    assert state.epoch == 1 and engine.ledger.balances() == {
        "USD": Decimal(10000),
        "BTC": Decimal(0),
    }
    engine.kernel.on_candle(candle(2, 120.0))
    assert recorder.flush()
    store = recorder.store
    account = store.account()
    assert account is not None and account.epoch == 1 and account.baseline == Decimal(10000)
    assert len(store.fills(Window()).items) == 1  # history is not rewritten
    assert "paper_account_reset" in [e.kind for e in store.events(Window()).items]
    assert store.equity(Window()).items[-1].pnl == 0
    recorder.close()


def test_a_limit_order_cancelled_is_recorded_with_its_state_changes(tmp_path: Path) -> None:
    engine, recorder = start(tmp_path, "run1")
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    order = kernel.submit(OrderIntent(Side.BUY, Decimal(1), OrderType.LIMIT, Decimal("90.5")))
    assert order is not None
    kernel.cancel(order.id)
    assert recorder.flush()
    rows = recorder.store.orders(Window(), latest=True).items
    assert [(r.order_id, r.change, r.price) for r in rows] == [("o1", "canceled", Decimal("90.5"))]
    recorder.close()


def test_a_replay_engine_has_no_recorder() -> None:
    engine, _ = build_scripted_engine(SPEC)
    assert engine.kernel.recorder is None


def test_the_hooks_never_wait_for_the_store(tmp_path: Path) -> None:
    """A store that blocks (a slow disk, a database far away) holds the writer thread
    only: the kernel goes on trading, and everything is written once it answers."""
    engine, recorder = start(tmp_path, "run1")
    assert recorder.flush()
    store = recorder.store
    write = store.write
    release = threading.Event()
    entered = threading.Event()

    def slow_write(records: Any) -> None:
        entered.set()
        assert release.wait(30)
        write(records)

    store.write = slow_write  # type: ignore[method-assign]
    engine.kernel.on_candle(candle(0, 100.0))
    assert entered.wait(30)  # the writer is stuck in the store...
    for minute in range(1, 6):  # ...and the kernel trades on regardless
        buy(engine, "0.1")
        engine.kernel.on_candle(candle(minute, 100.0 + minute))
    assert len(engine.kernel.fills) == 5
    assert recorder.pending > 0
    assert not recorder.flush(timeout=0.05)
    release.set()
    assert recorder.flush()
    assert recorder.pending == 0
    assert len(store.fills(Window()).items) == 5
    recorder.close()


def test_a_failing_store_is_retried_and_nothing_is_lost(tmp_path: Path, logs: io.StringIO) -> None:
    engine, recorder = start(tmp_path, "run1")
    assert recorder.flush()
    recorder.retry_delay = 0.001
    store = recorder.store
    write = store.write
    failures = iter([OSError("disk full"), OSError("disk full")])

    def failing_write(records: Any) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        write(records)

    store.write = failing_write  # type: ignore[method-assign]
    engine.kernel.on_candle(candle(0, 100.0))
    buy(engine)
    engine.kernel.on_candle(candle(1, 101.0))
    assert recorder.flush()
    assert recorder.write_failures == 2
    assert len(store.fills(Window()).items) == 1
    errors = [json.loads(x) for x in logs.getvalue().splitlines()]
    errors = [x for x in errors if x["event"] == "history write failed, retrying"]
    assert len(errors) == 1 and errors[0]["error"] == "OSError: disk full"  # throttled
    recorder.close()
