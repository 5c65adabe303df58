"""The simulator's configuration: one dataclass, every field defaulted but the data file.

`clock` is injectable (a callable returning wall seconds, like `time.time`) so
that tests drive market time and rate-limit windows without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

# The REST protocols the simulator speaks (`hean sim exchange --protocol`).
PROTOCOLS = ("binance", "okx")
Protocol = Literal["binance", "okx"]

# The wall clock the simulator reads: seconds since the epoch, as `time.time` gives.
WallSeconds = Callable[[], float]

DEFAULT_QUOTE_BALANCE = Decimal(10_000)
DEFAULT_FEE_RATE = Decimal("0.001")


@dataclass(frozen=True)
class ApiKey:
    """One API key pair; every pair is its own account on the simulator.

    `passphrase` is OKX's third credential (chosen when a key is created;
    ccxt calls it `password`); the Binance protocol ignores it. Neither the
    secret nor the passphrase appears in `repr` (and so in logs or test
    failure output).
    """

    api_key: str
    secret: str = field(repr=False)
    passphrase: str = field(default="", repr=False)


@dataclass
class SimConfig:
    """How one simulated Binance spot market replays a recorded file.

    data: a candles (`timestamp,open,high,low,close,volume`, one-minute bars) or
        trades (`timestamp,side,price,amount`) CSV, optionally gzipped.
    symbol: the unified symbol served (`BTC/USDT` is Binance's `BTCUSDT`); the
        recorded prices become this market's, whichever pair the file recorded.
    speed: data seconds replayed per wall second; None means step mode (each
        market-data request advances the replay by one record; see
        `hean_sim.exchange.clock`).
    start: the data time the replay starts at (default: the first record).
    weight_limit: request weight allowed per IP per wall minute before 429.
    ban_seconds / ban_after: a client that sends `ban_after` requests while
        told to back off (after a 429) is banned (418) for `ban_seconds`,
        doubled on every further ban.
    tick_size, step_size, min_qty, max_qty, min_notional, max_notional: the
        symbol's filters; None derives them from the data (see `filters`).
    notional_filter: which of Binance's two notional filters exchangeInfo
        carries (`NOTIONAL` today, `MIN_NOTIONAL` on older deployments).
    book_levels_qty: quantity at the synthetic book's best level (each deeper
        level adds as much again); None derives it from the data.
    keys: the API key pairs that exist from the start (more can be added with
        `SimExchange.add_account`); each is one account.
    balances: every new account's starting balances by asset; None gives
        10000 of the quote asset and 0 of the base asset.
    maker_fee / taker_fee: commission rates (Binance's default 0.1% each).
    protocol: whose REST API is served over the shared market, accounts and
        matching: `binance` (the default) or `okx` (see `hean_sim.exchange.okx`).
    rate_limit_factor: OKX only: every per-endpoint request limit is multiplied
        by it (tests that are not about rate limits raise it, as they raise
        `weight_limit` for Binance).
    """

    data: Path
    symbol: str = "BTC/USDT"
    speed: float | None = 1.0
    weight_limit: int = 6000
    clock: WallSeconds = time.time
    start: datetime | None = None
    ban_seconds: float = 120.0
    ban_after: int = 1
    tick_size: Decimal | None = None
    step_size: Decimal | None = None
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    min_notional: Decimal | None = None
    max_notional: Decimal | None = None
    notional_filter: Literal["NOTIONAL", "MIN_NOTIONAL"] = "NOTIONAL"
    book_levels_qty: Decimal | None = None
    keys: Sequence[ApiKey] = ()
    balances: Mapping[str, Decimal] | None = None
    maker_fee: Decimal = DEFAULT_FEE_RATE
    taker_fee: Decimal = DEFAULT_FEE_RATE
    protocol: Protocol = "binance"
    rate_limit_factor: int = 1

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        for name in ("maker_fee", "taker_fee"):
            rate = getattr(self, name)
            if not isinstance(rate, Decimal) or not 0 <= rate < 1:
                raise ValueError(f"{name} must be a Decimal in [0, 1), got {rate!r}")
        for asset, amount in (self.balances or {}).items():
            if not isinstance(amount, Decimal) or not amount >= 0:
                raise ValueError(f"balances: {asset} must be a Decimal >= 0, got {amount!r}")
        names = [key.api_key for key in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("keys: the same API key is listed twice")
        if "/" not in self.symbol:
            raise ValueError(f"symbol must be BASE/QUOTE, got {self.symbol!r}")
        if self.speed is not None and not self.speed > 0:
            raise ValueError(f"speed must be positive or None (step mode), got {self.speed!r}")
        if self.weight_limit < 1:
            raise ValueError(f"weight_limit must be at least 1, got {self.weight_limit!r}")
        if self.protocol not in PROTOCOLS:
            known = ", ".join(PROTOCOLS)
            raise ValueError(f"protocol must be one of {known}, got {self.protocol!r}")
        if self.rate_limit_factor < 1:
            factor = self.rate_limit_factor
            raise ValueError(f"rate_limit_factor must be at least 1, got {factor!r}")
        if self.ban_after < 1:
            raise ValueError(f"ban_after must be at least 1, got {self.ban_after!r}")

    @property
    def base_asset(self) -> str:
        return self.symbol.split("/", 1)[0].upper()

    @property
    def quote_asset(self) -> str:
        return self.symbol.split("/", 1)[1].upper()

    @property
    def inst_id(self) -> str:
        """OKX's instrument id: the assets joined by a dash (`BTC-USDT`)."""
        return f"{self.base_asset}-{self.quote_asset}"

    @property
    def symbol_id(self) -> str:
        """Binance's market id: the assets concatenated (`BTCUSDT`)."""
        return self.base_asset + self.quote_asset

    def starting_balances(self) -> dict[str, Decimal]:
        """What a new account holds: `balances`, or 10000 quote and 0 base."""
        if self.balances is None:
            return {self.quote_asset: DEFAULT_QUOTE_BALANCE, self.base_asset: Decimal(0)}
        return {asset.upper(): amount for asset, amount in self.balances.items()}
