"""Accounts of the simulated exchange: one per API key, balances as exact `Decimal`s.

A balance is Binance's pair `free` / `locked`: a resting order locks what it
may spend (quote for a buy, base for a sell) and a fill or cancel releases it.
Every change goes through `Account` so that no balance can go negative: the
private API checks `free` first and refuses with -2010 (insufficient balance),
and the test hook `adjust` refuses a change that would take `free` below zero.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from hean_sim.exchange.config import ApiKey
from hean_sim.exchange.model import AccountTrade, Order
from hean_sim.exchange.numbers import ZERO

_KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 64  # Binance's API keys and HMAC secrets are 64 letters and digits
PASSPHRASE_LENGTH = 24  # OKX's passphrase is the user's choice; any length is checked alike


def _random(length: int) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))


def generate_key_pair() -> ApiKey:
    """A fresh random key pair in Binance's format, with a passphrase for OKX."""
    return ApiKey(_random(KEY_LENGTH), _random(KEY_LENGTH), _random(PASSPHRASE_LENGTH))


@dataclass(frozen=True)
class Balance:
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass
class Account:
    """One API key's account. Orders and trades are kept for the whole run."""

    key: ApiKey
    free: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)  # by orderId, in placement order
    trades: list[AccountTrade] = field(default_factory=list)
    update_time: int = 0  # served market ms of the last balance change

    @property
    def api_key(self) -> str:
        return self.key.api_key

    def assets(self) -> list[str]:
        return sorted(set(self.free) | set(self.locked))

    def balance(self, asset: str) -> Balance:
        return Balance(self.free.get(asset, ZERO), self.locked.get(asset, ZERO))

    def balances(self) -> dict[str, Balance]:
        return {asset: self.balance(asset) for asset in self.assets()}

    def has_free(self, asset: str, amount: Decimal) -> bool:
        return self.free.get(asset, ZERO) >= amount

    def credit(self, asset: str, amount: Decimal, now: int) -> None:
        self.free[asset] = self.free.get(asset, ZERO) + amount
        self.locked.setdefault(asset, ZERO)
        self.update_time = now

    def debit(self, asset: str, amount: Decimal, now: int) -> None:
        """Take from `free` (the caller checked `has_free`)."""
        left = self.free.get(asset, ZERO) - amount
        if left < 0:
            raise AssertionError(f"{asset} free balance would go negative: {left}")
        self.free[asset] = left
        self.locked.setdefault(asset, ZERO)
        self.update_time = now

    def lock(self, asset: str, amount: Decimal, now: int) -> None:
        self.debit(asset, amount, now)
        self.locked[asset] = self.locked.get(asset, ZERO) + amount

    def unlock(self, asset: str, amount: Decimal, now: int) -> None:
        """Move `amount` from locked back to free (an order cancelled or expired)."""
        self.spend_locked(asset, amount, now)
        self.free[asset] = self.free.get(asset, ZERO) + amount

    def spend_locked(self, asset: str, amount: Decimal, now: int) -> None:
        """Take `amount` out of locked (a resting order filled)."""
        left = self.locked.get(asset, ZERO) - amount
        if left < 0:
            raise AssertionError(f"{asset} locked balance would go negative: {left}")
        self.locked[asset] = left
        self.free.setdefault(asset, ZERO)
        self.update_time = now

    def adjust(self, asset: str, delta: Decimal, now: int) -> Balance:
        """Change `free` behind the client's back (a deposit, a withdrawal, manual trading)."""
        left = self.free.get(asset, ZERO) + delta
        if left < 0:
            raise ValueError(
                f"{asset}: free {self.free.get(asset, ZERO)} + {delta} would be negative"
            )
        self.free[asset] = left
        self.locked.setdefault(asset, ZERO)
        self.update_time = now
        return self.balance(asset)


class KeysFileError(ValueError):
    """A keys file that cannot be used; the message names the file and the entry."""


def load_keys(path: Path) -> list[ApiKey]:
    """The key pairs of a JSON file `[{"apiKey": "...", "secret": "..."}, ...]`.

    An entry may carry a `passphrase` (OKX's third credential) too.

    Messages name the file and the entry (1-based) but never quote a secret.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeysFileError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None
    except ValueError as exc:
        raise KeysFileError(f"{path}: not JSON ({exc})") from None
    if not isinstance(raw, list) or not raw:
        raise KeysFileError(f'{path}: expected a non-empty JSON list of {{"apiKey", "secret"}}')
    keys: list[ApiKey] = []
    seen: set[str] = set()
    for number, entry in enumerate(raw, start=1):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict):
            raise KeysFileError(f'{where}: expected an object {{"apiKey": ..., "secret": ...}}')
        unknown = sorted(set(entry) - {"apiKey", "secret", "passphrase"})
        if unknown:
            raise KeysFileError(f"{where}: unknown field(s) {', '.join(unknown)}")
        names = ["apiKey", "secret"] + (["passphrase"] if "passphrase" in entry else [])
        for name in names:
            value = entry.get(name)
            if not isinstance(value, str) or not value.strip():
                raise KeysFileError(f"{where}: {name!r} must be a non-empty string")
            if value != value.strip() or any(ch.isspace() or not ch.isprintable() for ch in value):
                raise KeysFileError(f"{where}: {name!r} contains whitespace or control characters")
        api_key = entry["apiKey"]
        if api_key in seen:
            raise KeysFileError(f"{where}: apiKey {api_key!r} is listed twice")
        seen.add(api_key)
        keys.append(ApiKey(api_key, entry["secret"], entry.get("passphrase", "")))
    return keys


def write_credentials(directory: Path, key: ApiKey) -> None:
    """A directory usable as the engine's `--credentials-dir` (a mounted Secret's layout).

    The directory is made private (0700), the files `apiKey`, `secret`,
    `password` (the passphrase, under ccxt's name for it; only for a key that
    has one) and `keys.json` (the simulator's `--keys` format) owner-only
    (0600); each file is created with that mode, so no secret is ever readable
    by others.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    entry = {"apiKey": key.api_key, "secret": key.secret}
    if key.passphrase:
        entry["passphrase"] = key.passphrase
    contents = {"apiKey": key.api_key, "secret": key.secret}
    if key.passphrase:
        contents["password"] = key.passphrase
    contents["keys.json"] = json.dumps([entry], indent=2) + "\n"
    for name, text in contents.items():
        path = directory / name
        path.unlink(missing_ok=True)  # a fresh file gets the mode below, not an old one's
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
