"""The history store, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hean_engine.history.schema import LATEST_VERSION, MIGRATIONS
from hean_engine.history.store import (
    AccountState,
    EquityPoint,
    EventRecord,
    FillRecord,
    HistoryError,
    HistoryStore,
    OrderChange,
    PositionSnapshot,
    Retention,
    Window,
    open_store,
)
from hean_engine.model.timefmt import DAY_MS
from history_support import PG_PASSWORD, PostgresServer

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ENGINE = "trading/paper-1"


@pytest.fixture
def store(history_target: str) -> Iterator[HistoryStore]:
    opened = open_store(history_target, ENGINE)
    yield opened
    opened.close()


def fill(seq: int, ts: int, **changes: object) -> FillRecord:
    values: dict[str, object] = {
        "seq": seq,
        "ts": ts,
        "trade_id": f"t{seq}",
        "order_id": f"o{seq}",
        "exchange_order_id": f"x{seq}",
        "side": "buy" if seq % 2 else "sell",
        "price": Decimal("43210.12"),
        "quantity": Decimal("0.00100"),
        "fee": Decimal("0.0432101200"),
        "fee_currency": "USDT",
        "liquidity": "taker",
        "run_id": "r1",
    }
    values.update(changes)
    return FillRecord(**values)  # type: ignore[arg-type]


def order(seq: int, order_id: str, change: str, status: str, ts: int = T0) -> OrderChange:
    return OrderChange(
        seq,
        ts,
        order_id,
        "",
        change,
        status,
        "buy",
        "limit",
        Decimal("1.5"),
        Decimal("100.25"),
        Decimal(0),
        "",
        "entry",
        "r1",
    )


def test_a_new_store_is_at_the_latest_schema_and_reopening_migrates_nothing(
    history_target: str,
) -> None:
    first = open_store(history_target, ENGINE)
    assert first.schema_migrated_from == 0
    first.close()
    again = open_store(history_target, ENGINE)
    assert again.schema_migrated_from == LATEST_VERSION
    again.close()


def test_an_old_version_database_is_migrated_with_its_rows_kept(history_target: str) -> None:
    old = open_store(history_target, ENGINE, migrations=MIGRATIONS[:1])
    old.write([fill(1, T0), order(1, "o1", "submitted", "open")])
    old.write([AccountState({"USDT": Decimal("999.5")}, Decimal(1000), T0, 0, T0)])
    with pytest.raises(Exception):  # noqa: B017 - the table does not exist at v1
        old.write([PositionSnapshot(1, T0, {"USDT": Decimal(1)}, Decimal(0), "start")])
    old.close()

    new = open_store(history_target, ENGINE)
    assert new.schema_migrated_from == 1
    assert new.fills(Window()).items == [fill(1, T0)]
    assert [o.order_id for o in new.orders(Window()).items] == ["o1"]
    account = new.account()
    assert account is not None and account.balances == {"USDT": Decimal("999.5")}
    snapshot = PositionSnapshot(1, T0, {"USDT": Decimal(1)}, Decimal(0), "start")
    new.write([snapshot])
    assert new.latest_position() == snapshot
    new.close()


def test_a_database_newer_than_the_engine_is_refused(history_target: str) -> None:
    open_store(history_target, ENGINE).close()
    with pytest.raises(HistoryError, match="newer than this engine"):
        open_store(history_target, ENGINE, migrations=MIGRATIONS[:1])


def test_fills_page_oldest_first_with_a_cursor(store: HistoryStore) -> None:
    store.write([fill(seq, T0 + seq * 1000) for seq in range(1, 251)])
    seen: list[FillRecord] = []
    cursor = None
    pages = 0
    while True:
        page = store.fills(Window(after=cursor, limit=100))
        seen += page.items
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert [f.seq for f in seen] == list(range(1, 251))
    assert seen[0] == fill(1, T0 + 1000)  # every field, exactly


def test_time_ranges_are_half_open(store: HistoryStore) -> None:
    store.write([fill(seq, T0 + seq * 1000) for seq in range(1, 11)])
    page = store.fills(Window(start_ms=T0 + 3000, end_ms=T0 + 6000))
    assert [f.seq for f in page.items] == [3, 4, 5]
    assert page.next_cursor is None


def test_latest_orders_give_each_orders_newest_state(store: HistoryStore) -> None:
    store.write(
        [
            order(1, "o1", "submitted", "open"),
            order(2, "o2", "submitted", "open"),
            order(3, "o1", "filled", "filled"),
            order(4, "o3", "submitted", "open"),
            order(5, "o2", "canceled", "canceled"),
        ]
    )
    every = store.orders(Window()).items
    assert [(o.order_id, o.change) for o in every] == [
        ("o1", "submitted"),
        ("o2", "submitted"),
        ("o1", "filled"),
        ("o3", "submitted"),
        ("o2", "canceled"),
    ]
    latest = store.orders(Window(), latest=True).items
    assert [(o.order_id, o.status) for o in latest] == [
        ("o1", "filled"),
        ("o3", "open"),
        ("o2", "canceled"),
    ]


def test_a_batch_is_one_transaction(store: HistoryStore) -> None:
    store.write([fill(1, T0)])
    with pytest.raises(Exception):  # noqa: B017 - the driver's integrity error
        # The duplicate trade id fails the batch: the first row must not stay either.
        store.write([fill(2, T0 + 1), fill(3, T0 + 2, trade_id="t1")])
    assert [f.seq for f in store.fills(Window()).items] == [1]


def test_engines_sharing_a_database_never_see_each_others_rows(history_target: str) -> None:
    one = open_store(history_target, "ns/one")
    two = open_store(history_target, "ns/two")
    try:
        one.write([fill(1, T0), EventRecord(1, T0, "risk_state", "HALTED: x", "r")])
        two.write([fill(1, T0, trade_id="t1")])  # the same ids, another engine
        assert len(one.fills(Window()).items) == 1
        assert len(two.fills(Window()).items) == 1
        assert two.events(Window()).items == []
        assert two.last_seqs()["events"] == 0 and one.last_seqs()["events"] == 1
    finally:
        one.close()
        two.close()


def test_the_account_and_its_reset(store: HistoryStore) -> None:
    assert store.account() is None
    state = AccountState(
        {"USDT": Decimal("9000.5"), "BTC": Decimal("0.01")}, Decimal(10000), T0, 0, T0
    )
    store.write([state])
    assert store.account() == state
    reset = store.reset_paper_account({"USDT": Decimal(10000)}, T0 + 5, run_id="r2")
    assert reset.epoch == 1 and reset.baseline is None
    assert store.account() == reset
    events = store.events(Window()).items
    assert [(e.kind, e.detail) for e in events] == [("paper_account_reset", "balances: USDT 10000")]


def test_retention_drops_old_series_and_keeps_the_books(store: HistoryStore) -> None:
    now = T0 + 100 * DAY_MS
    old, recent = now - 91 * DAY_MS, now - 89 * DAY_MS
    for ts in (old, recent):
        store.write(
            [
                EquityPoint(ts, Decimal(1), Decimal(0), Decimal(1), Decimal(0), None),
                EventRecord(ts - T0, ts, "paused", "", "r"),
                PositionSnapshot(ts - T0, ts, {}, Decimal(0), "fill"),
                fill(ts - T0, ts),
                order(ts - T0, "o", "submitted", "open", ts),
            ]
        )
    deleted = store.prune(Retention(), now)
    assert deleted == {"equity": 1, "events": 1, "positions": 1}
    assert [p.ts for p in store.equity(Window()).items] == [recent]
    assert len(store.fills(Window()).items) == 2 and len(store.orders(Window()).items) == 2
    deleted = store.prune(Retention(fills_days=90, orders_days=90), now)
    assert deleted["fills"] == 1 and deleted["orders"] == 1
    assert [f.ts for f in store.fills(Window()).items] == [recent]
    # When everything is old, the newest row of each stays: seqs (cursors) never go back.
    seqs = store.last_seqs()
    store.prune(Retention(fills_days=1, orders_days=1), now + 365 * DAY_MS)
    assert store.last_seqs() == seqs
    assert store.equity(Window()).items == []


def test_size_in_bytes_grows_with_the_rows(store: HistoryStore) -> None:
    before = store.size_bytes()
    assert before > 0
    store.write([fill(seq, T0 + seq) for seq in range(1, 2001)])
    assert store.size_bytes() > before


def test_a_non_finite_amount_is_refused(store: HistoryStore) -> None:
    with pytest.raises(HistoryError, match="non-finite"):
        store.write([fill(1, T0, price=Decimal("NaN"))])
    assert store.fills(Window()).items == []


def test_money_is_stored_as_text_never_as_a_float(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = open_store(str(path), ENGINE)
    store.write([fill(1, T0, price=Decimal("0.1000000000000000055511151231257827"))])
    store.close()
    with sqlite3.connect(path) as conn:
        price, kind = conn.execute("SELECT price, typeof(price) FROM fills").fetchone()
    assert (price, kind) == ("0.1000000000000000055511151231257827", "text")


_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None) | st.builds(
    Decimal,
    st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{1,30})?(E[+-]?[0-9]{1,3})?", fullmatch=True),
)


def test_decimals_round_trip_exactly(history_target: str) -> None:
    store = open_store(history_target, ENGINE)
    counter = iter(range(1, 1_000_000))

    @settings(max_examples=100, deadline=None)
    @given(price=_decimals, quantity=_decimals, fee=_decimals)
    def round_trip(price: Decimal, quantity: Decimal, fee: Decimal) -> None:
        seq = next(counter)
        written = fill(seq, T0 + seq, price=price, quantity=quantity, fee=fee)
        store.write([written, AccountState({"X": price}, fee, None, 0, T0)])
        read = store.fills(Window(after=seq - 1, limit=1)).items[0]
        # Same value, same digits, same exponent: -0, trailing zeros and 1E+3 included.
        for a, b in ((read.price, price), (read.quantity, quantity), (read.fee, fee)):
            assert a.as_tuple() == b.as_tuple()
        account = store.account()
        assert account is not None
        assert account.balances["X"].as_tuple() == price.as_tuple()
        assert account.baseline is not None and account.baseline.as_tuple() == fee.as_tuple()

    try:
        round_trip()
    finally:
        store.close()


def test_a_refused_postgresql_login_never_shows_the_password(
    postgres_server: PostgresServer,
) -> None:
    secret = "wrong-password-canary-51d0"
    url = postgres_server.url().replace(PG_PASSWORD, secret)
    with pytest.raises(HistoryError) as refused:
        open_store(url, ENGINE)
    message = str(refused.value)
    assert secret not in message and "hean" not in message.split("//", 1)[1]
    assert f"127.0.0.1:{postgres_server.port}/postgres" in message


def test_a_dropped_postgresql_connection_is_replaced_on_the_next_attempt(
    postgres_server: PostgresServer,
) -> None:
    """A server restart or failover drops connections: one write and one read fail,
    the next ones (the writer retries, a reader asks again) go through."""
    import psycopg

    url = postgres_server.new_database()
    store = open_store(url, ENGINE)
    try:
        store.write([fill(1, T0)])
        database = url.rsplit("/", 1)[1]
        with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
        with pytest.raises(psycopg.OperationalError):
            store.write([fill(2, T0 + 1)])
        store.write([fill(2, T0 + 1)])
        with pytest.raises(psycopg.OperationalError):
            store.fills(Window())
        assert [f.seq for f in store.fills(Window()).items] == [1, 2]
    finally:
        store.close()
