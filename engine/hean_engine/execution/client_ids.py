"""Deterministic client order ids: engine, run and intent sequence.

`hean-<engine>-<run>-<seq>` (`hean<engine><run><seq>` on an exchange that
allows letters and digits only, with the run part then always 8 long so the
parts stay apart; see `net.venues`): the engine part is a hash of namespace/name (so
orders on a shared account say whose they are, and anything without it is
foreign), the run part comes from the run id (unique per start, so a new run
never reuses an id an earlier run sent even when the journal was lost), the
sequence counts intents within the run. An intent's id is fixed when it is
journaled, before the first attempt, so a retried intent reuses it: the
exchange refuses a second open order with the same id, and a lookup by id
finds the first one.

Binance allows `^[.A-Z:/a-z0-9_-]{1,36}$`, OKX `^[A-Za-z0-9]{1,32}$`; ids
here are at most 33 (with dashes) or 28 (without) characters for the first
36^8 intents of a run.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "hean"
# Binance's newClientOrderId: 1 to 36 of these characters (the default rule).
_ALLOWED = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_RUN_LENGTH = 8
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def engine_tag(namespace: str, name: str) -> str:
    """Eight hex digits naming the engine on the exchange."""
    return hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8]


def _base36(value: int) -> str:
    if value < 0:
        raise ValueError("sequence numbers are positive")
    out = ""
    while True:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
        if value == 0:
            return out


class ClientOrderIds:
    def __init__(
        self,
        namespace: str,
        name: str,
        run_id: str,
        *,
        separator: str = "-",
        allowed: re.Pattern[str] = _ALLOWED,
    ) -> None:
        run = re.sub(r"[^a-z0-9]", "", run_id.lower())[:_RUN_LENGTH]
        if not run:
            raise ValueError(f"run id {run_id!r} has no usable characters")
        if not separator:
            # Without a separator a shorter run part would run into the sequence.
            run = run.ljust(_RUN_LENGTH, "0")
        self.allowed = allowed
        self.engine_prefix = f"{PREFIX}{separator}{engine_tag(namespace, name)}{separator}"
        self.run_prefix = f"{self.engine_prefix}{run}{separator}"
        self.seq = 0

    def next(self) -> str:
        self.seq += 1
        cid = f"{self.run_prefix}{_base36(self.seq)}"
        if not self.allowed.match(cid):
            raise ValueError(f"client order id {cid!r} is not one the exchange accepts")
        return cid

    def is_ours(self, client_order_id: str | None) -> bool:
        """Sent by this engine (this run or an earlier one)."""
        return bool(client_order_id) and str(client_order_id).startswith(self.engine_prefix)


def valid(client_order_id: str, allowed: re.Pattern[str] = _ALLOWED) -> bool:
    return bool(allowed.match(client_order_id))
