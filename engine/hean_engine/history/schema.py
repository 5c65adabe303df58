"""The history schema, as a list of versioned migrations shared by SQLite and PostgreSQL.

Every statement is written in the SQL both databases accept: TEXT and BIGINT
columns only. Money is exact decimal TEXT (`str(Decimal)`), never REAL or
DOUBLE PRECISION; a map of balances is a JSON object of such strings. Times
are BIGINT milliseconds since the Unix epoch, UTC. Every table is keyed by
`engine` (`namespace/name`), so that one PostgreSQL database can hold many
engines' history.

A database records its version in `schema_version` (one row). Opening a store
applies every migration newer than that, in order, in one transaction: a
failure leaves the database at its old version. Migrations are only ever
appended; an applied one is never edited.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "orders, fills, equity, events and the account",
        (
            # Every state change of an order is its own row (seq: per engine, increasing).
            """CREATE TABLE orders (
                engine TEXT NOT NULL,
                seq BIGINT NOT NULL,
                ts BIGINT NOT NULL,
                order_id TEXT NOT NULL,
                exchange_order_id TEXT NOT NULL,
                change TEXT NOT NULL,
                status TEXT NOT NULL,
                side TEXT NOT NULL,
                type TEXT NOT NULL,
                quantity TEXT NOT NULL,
                price TEXT,
                filled TEXT NOT NULL,
                reason TEXT NOT NULL,
                tag TEXT NOT NULL,
                run_id TEXT NOT NULL,
                PRIMARY KEY (engine, seq)
            )""",
            """CREATE TABLE fills (
                engine TEXT NOT NULL,
                seq BIGINT NOT NULL,
                ts BIGINT NOT NULL,
                trade_id TEXT NOT NULL,
                order_id TEXT NOT NULL,
                exchange_order_id TEXT NOT NULL,
                side TEXT NOT NULL,
                price TEXT NOT NULL,
                quantity TEXT NOT NULL,
                fee TEXT NOT NULL,
                fee_currency TEXT NOT NULL,
                liquidity TEXT NOT NULL,
                run_id TEXT NOT NULL,
                PRIMARY KEY (engine, seq),
                UNIQUE (engine, trade_id)
            )""",
            # One point per closed candle (ts: the candle's close time).
            """CREATE TABLE equity (
                engine TEXT NOT NULL,
                ts BIGINT NOT NULL,
                equity TEXT NOT NULL,
                pnl TEXT NOT NULL,
                baseline TEXT NOT NULL,
                position TEXT NOT NULL,
                price TEXT,
                PRIMARY KEY (engine, ts)
            )""",
            # Risk state changes, pauses, approvals, account resets.
            """CREATE TABLE events (
                engine TEXT NOT NULL,
                seq BIGINT NOT NULL,
                ts BIGINT NOT NULL,
                kind TEXT NOT NULL,
                detail TEXT NOT NULL,
                run_id TEXT NOT NULL,
                PRIMARY KEY (engine, seq)
            )""",
            # The paper account (balances as of the last recorded fill) and the PnL
            # baseline; one row per engine, updated in the transaction of each fill.
            """CREATE TABLE account (
                engine TEXT NOT NULL PRIMARY KEY,
                balances TEXT NOT NULL,
                baseline TEXT,
                baseline_ts BIGINT,
                epoch BIGINT NOT NULL,
                updated_ts BIGINT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "position snapshots; time indexes for ranges and retention",
        (
            """CREATE TABLE positions (
                engine TEXT NOT NULL,
                seq BIGINT NOT NULL,
                ts BIGINT NOT NULL,
                balances TEXT NOT NULL,
                position TEXT NOT NULL,
                reason TEXT NOT NULL,
                PRIMARY KEY (engine, seq)
            )""",
            "CREATE INDEX orders_ts ON orders (engine, ts)",
            "CREATE INDEX fills_ts ON fills (engine, ts)",
            "CREATE INDEX events_ts ON events (engine, ts)",
            "CREATE INDEX positions_ts ON positions (engine, ts)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
