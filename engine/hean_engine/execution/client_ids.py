"""Deterministic client order ids: engine, run and intent sequence.

`hean-<engine>-<run>-<seq>`: the engine part is a hash of namespace/name (so
orders on a shared account say whose they are, and anything without it is
foreign), the run part comes from the run id (unique per start, so a new run
never reuses an id an earlier run sent even when the journal was lost), the
sequence counts intents within the run. An intent's id is fixed when it is
journaled, before the first attempt, so a retried intent reuses it: the
exchange refuses a second open order with the same id, and a lookup by id
finds the first one.

Binance allows `^[.A-Z:/a-z0-9_-]{1,36}$`; ids here are at most 33 characters.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "hean"
# Binance's newClientOrderId: 1 to 36 of these characters.
_ALLOWED = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
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
    def __init__(self, namespace: str, name: str, run_id: str) -> None:
        run = re.sub(r"[^a-z0-9]", "", run_id.lower())[:8]
        if not run:
            raise ValueError(f"run id {run_id!r} has no usable characters")
        self.engine_prefix = f"{PREFIX}-{engine_tag(namespace, name)}-"
        self.run_prefix = f"{self.engine_prefix}{run}-"
        self.seq = 0

    def next(self) -> str:
        self.seq += 1
        cid = f"{self.run_prefix}{_base36(self.seq)}"
        if not valid(cid):
            raise ValueError(f"client order id {cid!r} is not one Binance accepts")
        return cid

    def is_ours(self, client_order_id: str | None) -> bool:
        """Sent by this engine (this run or an earlier one)."""
        return bool(client_order_id) and str(client_order_id).startswith(self.engine_prefix)


def valid(client_order_id: str) -> bool:
    return bool(_ALLOWED.match(client_order_id))
