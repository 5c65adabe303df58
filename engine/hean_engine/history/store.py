"""The history store: one schema, two backends (SQLite, the default; PostgreSQL).

`open_store(target, engine)` picks the backend from the target: a
`postgresql://` (or `postgres://`) URL is a PostgreSQL database (psycopg 3,
the `postgres` extra); anything else is a path, of an SQLite file or of a
directory that gets `history.sqlite3` (the engine's volume).

SQLite runs in WAL mode with `synchronous=FULL`: a commit returns only once
the write-ahead log is on disk (fsync), so a committed row survives a killed
process and a lost node alike. PostgreSQL commits are durable by the server's
own settings (`synchronous_commit`, on by default).

A store has two connections: one for writes (used by the recorder's writer
thread only) and one for reads (the read API, from worker threads), each
behind a lock. SQLite's WAL lets the reader read while the writer writes.

Values cross the boundary exactly: a Decimal is stored as `str(value)` and
read back with `Decimal(text)` (same digits, same exponent); a non-finite
Decimal is refused. Times are integer milliseconds, UTC.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from hean_engine.history.schema import LATEST_VERSION, MIGRATIONS, Migration
from hean_engine.model.errors import ConfigError, HeanError
from hean_engine.model.timefmt import DAY_MS
from hean_engine.telemetry.logs import REDACTOR

T = TypeVar("T")

SQLITE_FILE_NAME = "history.sqlite3"
# The most rows one read returns (the API's `limit` maximum).
MAX_PAGE = 1000


class HistoryError(HeanError):
    """The history store cannot be opened or written."""


# -- records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderChange:
    """One state change of an order: submitted, acknowledged, adopted, filled, ..."""

    seq: int
    ts: int
    order_id: str  # the engine's id: the client order id (live), o<N> (paper)
    exchange_order_id: str  # "" until the exchange acknowledged it (or in paper)
    change: str
    status: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None
    filled: Decimal
    reason: str
    tag: str
    run_id: str


@dataclass(frozen=True, slots=True)
class FillRecord:
    seq: int
    ts: int
    trade_id: str
    order_id: str
    exchange_order_id: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: str
    run_id: str


@dataclass(frozen=True, slots=True)
class EquityPoint:
    ts: int
    equity: Decimal
    pnl: Decimal
    baseline: Decimal
    position: Decimal
    price: Decimal | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    seq: int
    ts: int
    kind: str
    detail: str
    run_id: str


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    seq: int
    ts: int
    balances: dict[str, Decimal]
    position: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class AccountState:
    """The account as of the last recorded fill, and the PnL baseline.

    `epoch` counts resets: 0 for an account never reset.
    """

    balances: dict[str, Decimal]
    baseline: Decimal | None
    baseline_ts: int | None
    epoch: int
    updated_ts: int


Record = OrderChange | FillRecord | EquityPoint | EventRecord | PositionSnapshot | AccountState


@dataclass(frozen=True, slots=True)
class Window:
    """Which rows a read wants: [start, end) in ms, after a cursor, at most `limit`."""

    start_ms: int | None = None
    end_ms: int | None = None
    after: int | None = None  # the cursor: seq (ts for equity) of the last row seen
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: int | None  # None: nothing after this page


@dataclass(frozen=True, slots=True)
class Retention:
    """How long rows are kept, in days; None keeps them for ever.

    Equity points, events and position snapshots grow with time whatever the
    engine does, so they are bounded by default; orders and fills are the
    books' evidence and are kept unless a retention is set.
    """

    equity_days: int | None = 90
    events_days: int | None = 90
    positions_days: int | None = 90
    orders_days: int | None = None
    fills_days: int | None = None

    def days(self) -> dict[str, int | None]:
        """table -> days kept (None: for ever)."""
        return {
            "equity": self.equity_days,
            "events": self.events_days,
            "positions": self.positions_days,
            "orders": self.orders_days,
            "fills": self.fills_days,
        }

    def cutoffs(self, now_ms: int) -> dict[str, int]:
        """table -> the time before which its rows go."""
        return {t: now_ms - d * DAY_MS for t, d in self.days().items() if d is not None}


# -- exact values ---------------------------------------------------------------------


def dec_text(value: Decimal) -> str:
    """A Decimal as the TEXT stored: `str` keeps every digit and the exponent."""
    if not value.is_finite():
        raise HistoryError(f"refusing to store a non-finite amount: {value}")
    return str(value)


def text_dec(text: str) -> Decimal:
    return Decimal(text)


def _opt_dec(value: Decimal | None) -> str | None:
    return None if value is None else dec_text(value)


def _opt_text_dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def balances_text(balances: dict[str, Decimal]) -> str:
    return json.dumps({ccy: dec_text(v) for ccy, v in sorted(balances.items())})


def text_balances(text: str) -> dict[str, Decimal]:
    return {ccy: Decimal(v) for ccy, v in json.loads(text).items()}


# -- backends -------------------------------------------------------------------------


class _Backend:
    """One connection and its dialect: SQLite's `?` parameter marks become psycopg's `%s`."""

    kind = "sqlite"

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def sql(self, text: str) -> str:
        return text

    def execute(self, text: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self.sql(text), tuple(params))

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(self.sql(text), tuple(params))
        return [tuple(row) for row in cursor.fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def lock_schema(self) -> None:
        """Serialize migrations between processes (SQLite: BEGIN IMMEDIATE already does)."""

    def recover(self) -> None:
        """After a failed statement: reconnect if the connection is gone (SQLite: never)."""

    def close(self) -> None:
        self.conn.close()


class _PostgresBackend(_Backend):
    kind = "postgresql"

    def __init__(self, conn: Any, connect: Callable[[], Any]) -> None:
        super().__init__(conn)
        self._connect = connect

    def recover(self) -> None:
        # A restarted or failed-over server drops its connections: the next
        # attempt (the writer retries, a reader asks again) gets a new one.
        if not (self.conn.closed or self.conn.broken):
            return
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):  # still down: the next attempt tries again
            self.conn = self._connect()

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def lock_schema(self) -> None:
        # Engines sharing a database may start together: one migrates, the others wait.
        self.conn.execute("LOCK TABLE schema_version IN EXCLUSIVE MODE")


@contextmanager
def _recovering(backend: _Backend) -> Iterator[None]:
    try:
        yield
    except Exception:
        backend.recover()
        raise


def _sqlite_path(target: str) -> Path:
    path = Path(target)
    if path.is_dir():
        path = path / SQLITE_FILE_NAME
    return path


def _connect_sqlite(path: Path) -> _Backend:
    try:
        conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        raise HistoryError(f"--history: cannot open SQLite database {path}: {exc}") from None
    return _Backend(conn)


def _connect_postgres(url: str) -> _Backend:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            ["--history: a PostgreSQL URL needs psycopg (pip install 'hean[postgres]')"]
        ) from None

    def connect() -> Any:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)

    try:
        conn = connect()
    except psycopg.Error as exc:
        # The driver's message names host and database, never the password; the
        # exception's type is enough to act on and can carry nothing secret.
        raise HistoryError(
            f"--history: cannot connect to PostgreSQL at {_safe_url(url)}: {type(exc).__name__}"
        ) from None
    return _PostgresBackend(conn, connect)


def _safe_url(url: str) -> str:
    """The URL without user and password: host, port and database only."""
    parts = urlsplit(url)
    host = parts.hostname or "(socket)"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def migrate(backend: _Backend, migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, int]:
    """Apply the migrations newer than the database's version; (before, after)."""
    with backend.transaction():
        backend.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        backend.lock_schema()
        rows = backend.query("SELECT version FROM schema_version")
        if not rows:
            backend.execute("INSERT INTO schema_version (version) VALUES (0)")
            current = 0
        else:
            current = int(rows[0][0])
        newest = max((m.version for m in migrations), default=0)
        if current > newest:
            raise HistoryError(
                f"the history database is at schema version {current}, newer than this "
                f"engine's {newest}: upgrade the engine"
            )
        for migration in migrations:
            if migration.version > current:
                for statement in migration.statements:
                    backend.execute(statement)
                backend.execute("UPDATE schema_version SET version = ?", (migration.version,))
        return current, max(current, newest)


# -- the store ------------------------------------------------------------------------

_ORDER_COLUMNS = (
    "seq, ts, order_id, exchange_order_id, change, status, side, type, quantity, price,"
    " filled, reason, tag, run_id"
)
_FILL_COLUMNS = (
    "seq, ts, trade_id, order_id, exchange_order_id, side, price, quantity, fee, fee_currency,"
    " liquidity, run_id"
)
_EQUITY_COLUMNS = "ts, equity, pnl, baseline, position, price"
_EVENT_COLUMNS = "seq, ts, kind, detail, run_id"
_POSITION_COLUMNS = "seq, ts, balances, position, reason"
# Tables with a per-engine seq, and the column the cursor of each table follows.
_SEQ_TABLES = ("orders", "fills", "events", "positions")


class HistoryStore:
    def __init__(self, engine: str, writer: _Backend, reader: _Backend, location: str) -> None:
        self.engine = engine
        self.kind = writer.kind
        self.location = location  # a path, or the URL without credentials
        self._writer = writer
        self._reader = reader
        self.schema_migrated_from = 0

    # -- writes (the recorder's writer thread) -----------------------------------------
    def write(self, records: Sequence[Record]) -> None:
        """Write records in one transaction: all or none."""
        backend = self._writer
        with backend.lock, _recovering(backend), backend.transaction():
            for record in records:
                self._write_one(backend, record)

    def _write_one(self, b: _Backend, r: Record) -> None:
        e = self.engine
        if isinstance(r, OrderChange):
            b.execute(
                f"INSERT INTO orders (engine, {_ORDER_COLUMNS})"  # noqa: S608 - constants
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    e,
                    r.seq,
                    r.ts,
                    r.order_id,
                    r.exchange_order_id,
                    r.change,
                    r.status,
                    r.side,
                    r.type,
                    dec_text(r.quantity),
                    _opt_dec(r.price),
                    dec_text(r.filled),
                    r.reason,
                    r.tag,
                    r.run_id,
                ),
            )
        elif isinstance(r, FillRecord):
            b.execute(
                f"INSERT INTO fills (engine, {_FILL_COLUMNS})"  # noqa: S608 - constants
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    e,
                    r.seq,
                    r.ts,
                    r.trade_id,
                    r.order_id,
                    r.exchange_order_id,
                    r.side,
                    dec_text(r.price),
                    dec_text(r.quantity),
                    dec_text(r.fee),
                    r.fee_currency,
                    r.liquidity,
                    r.run_id,
                ),
            )
        elif isinstance(r, EquityPoint):
            # A candle seen again (a restart re-reads the last one) replaces its point.
            b.execute(
                f"INSERT INTO equity (engine, {_EQUITY_COLUMNS})"  # noqa: S608 - constants
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (engine, ts) DO UPDATE SET"
                " equity = excluded.equity, pnl = excluded.pnl, baseline = excluded.baseline,"
                " position = excluded.position, price = excluded.price",
                (
                    e,
                    r.ts,
                    dec_text(r.equity),
                    dec_text(r.pnl),
                    dec_text(r.baseline),
                    dec_text(r.position),
                    _opt_dec(r.price),
                ),
            )
        elif isinstance(r, EventRecord):
            b.execute(
                f"INSERT INTO events (engine, {_EVENT_COLUMNS})"  # noqa: S608 - constants
                " VALUES (?, ?, ?, ?, ?, ?)",
                (e, r.seq, r.ts, r.kind, r.detail, r.run_id),
            )
        elif isinstance(r, PositionSnapshot):
            b.execute(
                f"INSERT INTO positions (engine, {_POSITION_COLUMNS})"  # noqa: S608 - constants
                " VALUES (?, ?, ?, ?, ?, ?)",
                (e, r.seq, r.ts, balances_text(r.balances), dec_text(r.position), r.reason),
            )
        else:
            b.execute(
                "INSERT INTO account (engine, balances, baseline, baseline_ts, epoch, updated_ts)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (engine) DO UPDATE SET"
                " balances = excluded.balances, baseline = excluded.baseline,"
                " baseline_ts = excluded.baseline_ts, epoch = excluded.epoch,"
                " updated_ts = excluded.updated_ts",
                (
                    e,
                    balances_text(r.balances),
                    _opt_dec(r.baseline),
                    r.baseline_ts,
                    r.epoch,
                    r.updated_ts,
                ),
            )

    def reset_paper_account(
        self, balances: dict[str, Decimal], now_ms: int, run_id: str = ""
    ) -> AccountState:
        """Start the paper account again from `balances`, with no PnL baseline (the next
        valuation sets it). The fills, orders and equity points stay: history is
        not rewritten; the reset is an event of its own.

        For a stopped engine (an offline reset); a running one resets through
        `HistoryRecorder.reset_paper_account`, which the `reset-paper-account`
        control command will call.
        """
        seq = self.last_seqs()["events"] + 1
        previous = self.account()
        state = AccountState(
            balances=dict(balances),
            baseline=None,
            baseline_ts=None,
            epoch=(previous.epoch + 1) if previous is not None else 1,
            updated_ts=now_ms,
        )
        shown = ", ".join(f"{c} {dec_text(v)}" for c, v in sorted(balances.items()))
        event = EventRecord(seq, now_ms, "paper_account_reset", f"balances: {shown}", run_id)
        self.write([state, event])
        return state

    def prune(self, retention: Retention, now_ms: int) -> dict[str, int]:
        """Delete rows older than the retention allows; table -> rows deleted."""
        deleted: dict[str, int] = {}
        backend = self._writer
        with backend.lock, _recovering(backend), backend.transaction():
            for table, cutoff in retention.cutoffs(now_ms).items():
                sql = f"DELETE FROM {table} WHERE engine = ? AND ts < ?"  # noqa: S608
                params: tuple[Any, ...] = (self.engine, cutoff)
                if table in _SEQ_TABLES:
                    # The newest row stays, so that the next seq (and so a reader's
                    # cursor) never goes back, however old everything is.
                    sql += f" AND seq < (SELECT MAX(seq) FROM {table} WHERE engine = ?)"  # noqa: S608 - constants
                    params += (self.engine,)
                cursor = backend.conn.execute(backend.sql(sql), params)
                deleted[table] = max(0, int(cursor.rowcount))
        return deleted

    # -- reads (any thread) --------------------------------------------------------------
    def _read(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        reader = self._reader
        with reader.lock, _recovering(reader):
            return reader.query(text, params)

    def _window(
        self, table: str, columns: str, key: str, window: Window
    ) -> tuple[list[tuple[Any, ...]], int | None]:
        limit = max(1, min(window.limit, MAX_PAGE))
        where = ["engine = ?"]
        params: list[Any] = [self.engine]
        if window.start_ms is not None:
            where.append("ts >= ?")
            params.append(window.start_ms)
        if window.end_ms is not None:
            where.append("ts < ?")
            params.append(window.end_ms)
        if window.after is not None:
            where.append(f"{key} > ?")
            params.append(window.after)
        rows = self._read(
            f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)}"  # noqa: S608
            f" ORDER BY {key} LIMIT ?",
            [*params, limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (int(rows[-1][0]) if more else None)

    def orders(self, window: Window, *, latest: bool = False) -> Page[OrderChange]:
        """Order state changes, oldest first; `latest`: only each order's newest row."""
        if latest:
            rows, cursor = self._window_latest(window)
        else:
            rows, cursor = self._window("orders", _ORDER_COLUMNS, "seq", window)
        return Page([_order(row) for row in rows], cursor)

    def _window_latest(self, window: Window) -> tuple[list[tuple[Any, ...]], int | None]:
        limit = max(1, min(window.limit, MAX_PAGE))
        where = ["o.engine = ?"]
        params: list[Any] = [self.engine]
        if window.start_ms is not None:
            where.append("o.ts >= ?")
            params.append(window.start_ms)
        if window.end_ms is not None:
            where.append("o.ts < ?")
            params.append(window.end_ms)
        if window.after is not None:
            where.append("o.seq > ?")
            params.append(window.after)
        columns = ", ".join(f"o.{c.strip()}" for c in _ORDER_COLUMNS.split(","))
        rows = self._read(
            f"SELECT {columns} FROM orders o JOIN (SELECT order_id, MAX(seq) AS last"  # noqa: S608
            " FROM orders WHERE engine = ? GROUP BY order_id) l"
            f" ON o.order_id = l.order_id AND o.seq = l.last WHERE {' AND '.join(where)}"
            " ORDER BY o.seq LIMIT ?",
            [self.engine, *params, limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (int(rows[-1][0]) if more else None)

    def fills(self, window: Window) -> Page[FillRecord]:
        rows, cursor = self._window("fills", _FILL_COLUMNS, "seq", window)
        return Page([_fill(row) for row in rows], cursor)

    def equity(self, window: Window) -> Page[EquityPoint]:
        rows, cursor = self._window("equity", _EQUITY_COLUMNS, "ts", window)
        return Page([_equity(row) for row in rows], cursor)

    def events(self, window: Window) -> Page[EventRecord]:
        rows, cursor = self._window("events", _EVENT_COLUMNS, "seq", window)
        return Page([_event(row) for row in rows], cursor)

    def positions(self, window: Window) -> Page[PositionSnapshot]:
        rows, cursor = self._window("positions", _POSITION_COLUMNS, "seq", window)
        return Page([_position(row) for row in rows], cursor)

    def latest_position(self) -> PositionSnapshot | None:
        rows = self._read(
            f"SELECT {_POSITION_COLUMNS} FROM positions WHERE engine = ?"  # noqa: S608
            " ORDER BY seq DESC LIMIT 1",
            [self.engine],
        )
        return _position(rows[0]) if rows else None

    def account(self) -> AccountState | None:
        rows = self._read(
            "SELECT balances, baseline, baseline_ts, epoch, updated_ts FROM account"
            " WHERE engine = ?",
            [self.engine],
        )
        if not rows:
            return None
        balances, baseline, baseline_ts, epoch, updated = rows[0]
        return AccountState(
            text_balances(balances),
            _opt_text_dec(baseline),
            None if baseline_ts is None else int(baseline_ts),
            int(epoch),
            int(updated),
        )

    def last_seqs(self) -> dict[str, int]:
        """table -> the highest seq recorded (0 for none): where a new run continues."""
        out: dict[str, int] = {}
        for table in _SEQ_TABLES:
            rows = self._read(
                f"SELECT MAX(seq) FROM {table} WHERE engine = ?",  # noqa: S608 - constants
                [self.engine],
            )
            out[table] = int(rows[0][0]) if rows and rows[0][0] is not None else 0
        return out

    def resume_ts(self) -> int | None:
        """Where a live engine's missed fills can start (ms): its newest recorded fill's
        time, else its oldest recorded order change's (orders sent, none filled yet);
        None when it has recorded neither (nothing of its own can have been missed)."""
        rows = self._read("SELECT MAX(ts) FROM fills WHERE engine = ?", [self.engine])
        if rows and rows[0][0] is not None:
            return int(rows[0][0])
        rows = self._read("SELECT MIN(ts) FROM orders WHERE engine = ?", [self.engine])
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def trade_ids_since(self, ts: int) -> set[str]:
        """The trade ids of the fills recorded at `ts` or later."""
        rows = self._read(
            "SELECT trade_id FROM fills WHERE engine = ? AND ts >= ?", [self.engine, ts]
        )
        return {str(row[0]) for row in rows}

    def last_order_id(self, prefix: str) -> str | None:
        """The newest order id with `prefix` (paper ids continue across runs)."""
        rows = self._read(
            "SELECT order_id FROM orders WHERE engine = ? AND change = 'submitted'"
            " ORDER BY seq DESC LIMIT 1",
            [self.engine],
        )
        if rows and str(rows[0][0]).startswith(prefix):
            return str(rows[0][0])
        return None

    def size_bytes(self) -> int:
        """The store's size on its volume (SQLite: the file and its WAL), or in its database."""
        if self.kind == "sqlite":
            path = Path(self.location)
            total = 0
            for suffix in ("", "-wal", "-shm"):
                try:
                    total += path.with_name(path.name + suffix).stat().st_size
                except OSError:
                    continue
            return total
        rows = self._read(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname IN"
            " ('orders', 'fills', 'equity', 'events', 'account', 'positions', 'schema_version')",
            [],
        )
        return int(rows[0][0])

    def volume_bytes(self) -> tuple[int, int] | None:
        """(free, capacity) of the filesystem holding an SQLite store, in bytes; None for
        PostgreSQL (its server's disk is the database's business, not the engine's).

        Free is what an unprivileged process may still write (statvfs's f_bavail): the
        engine runs as a non-root user, so the root reserve is not its to fill.
        """
        if self.kind != "sqlite":
            return None
        stats = os.statvfs(Path(self.location).parent)
        return stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize

    def close(self) -> None:
        for backend in (self._writer, self._reader):
            with backend.lock:
                backend.close()


def _order(row: tuple[Any, ...]) -> OrderChange:
    return OrderChange(
        int(row[0]),
        int(row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        Decimal(row[8]),
        _opt_text_dec(row[9]),
        Decimal(row[10]),
        row[11],
        row[12],
        row[13],
    )


def _fill(row: tuple[Any, ...]) -> FillRecord:
    return FillRecord(
        int(row[0]),
        int(row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        Decimal(row[6]),
        Decimal(row[7]),
        Decimal(row[8]),
        row[9],
        row[10],
        row[11],
    )


def _equity(row: tuple[Any, ...]) -> EquityPoint:
    return EquityPoint(
        int(row[0]),
        Decimal(row[1]),
        Decimal(row[2]),
        Decimal(row[3]),
        Decimal(row[4]),
        _opt_text_dec(row[5]),
    )


def _event(row: tuple[Any, ...]) -> EventRecord:
    return EventRecord(int(row[0]), int(row[1]), row[2], row[3], row[4])


def _position(row: tuple[Any, ...]) -> PositionSnapshot:
    balances = text_balances(row[2])
    return PositionSnapshot(int(row[0]), int(row[1]), balances, Decimal(row[3]), row[4])


def open_store(
    target: str, engine: str, migrations: Sequence[Migration] = MIGRATIONS
) -> HistoryStore:
    """Open (creating and migrating as needed) the history at `target` for `engine`."""
    if is_postgres_url(target):
        password = urlsplit(target).password
        if password:
            REDACTOR.register(password)
        writer = _connect_postgres(target)
        reader = _connect_postgres(target)
        location = _safe_url(target)
    else:
        path = _sqlite_path(target)
        if not path.parent.is_dir():
            raise ConfigError([f"--history: directory {path.parent} does not exist"])
        writer = _connect_sqlite(path)
        reader = _connect_sqlite(path)
        location = str(path)
    store = HistoryStore(engine, writer, reader, location)
    try:
        store.schema_migrated_from, _ = migrate(writer, migrations)
    except HistoryError:
        store.close()
        raise
    except Exception as exc:
        store.close()
        raise HistoryError(
            f"cannot migrate the history schema: {type(exc).__name__}: "
            f"{REDACTOR.redact(str(exc))[:200]}"
        ) from None
    return store


__all__ = [
    "LATEST_VERSION",
    "MAX_PAGE",
    "AccountState",
    "EquityPoint",
    "EventRecord",
    "FillRecord",
    "HistoryError",
    "HistoryStore",
    "OrderChange",
    "Page",
    "PositionSnapshot",
    "Record",
    "Retention",
    "Window",
    "open_store",
]
