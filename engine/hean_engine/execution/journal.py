"""The intent journal: what a live engine may have sent, on local disk.

Every intent is appended (and fsync'ed) BEFORE its order is sent, and every
outcome after it is known, so that a restarted engine knows which client
order ids it may have used and resolves each with the exchange instead of
assuming it absent. One JSON object per line:

    {"t": "run", "run": RUN_ID, "ts": MS}
    {"t": "intent", "cid": ID, "side": "buy", "type": "limit", "qty": "0.01",
     "price": "100.5" | null, "tag": "...", "ts": MS}
    {"t": "outcome", "cid": ID, "status": STATUS, "oid": EXCHANGE_ID | null, "ts": MS}

STATUS is `open` (the exchange has it) or terminal: `filled`, `canceled`,
`rejected` (the exchange refused it) or `absent` (looked up after the
exchange's recvWindow and not found: it was never placed).

A crash can tear only the last line (the write that was in progress); a torn
last line is dropped, since its order was not sent yet. Any other unreadable
line (bad JSON, a quantity that is not a positive decimal) fails the start
with the file and line named (fail closed). The journal is compacted to the
intents that are still unresolved, written to a temporary file, fsync'ed and
renamed over the old one: on open, and while running whenever the file grows
past `compact_bytes` (default `COMPACT_BYTES`) and twice its size after the
last compaction, so its size stays bounded by the unresolved intents
(`size` is exported as `hean_engine_journal_bytes`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from hean_engine.model.clock import Clock, now_ms
from hean_engine.model.errors import DataError, HeanError
from hean_engine.model.money import fmt

FILE_NAME = "journal.jsonl"
TERMINAL = frozenset({"filled", "canceled", "rejected", "absent"})
# About 3,000 orders' lines (some 340 bytes each): compacted far below any volume's size.
COMPACT_BYTES = 1024 * 1024


class JournalError(HeanError):
    """The journal cannot be read or written: the engine must not trade."""


class JournalCorrupt(DataError, JournalError):
    """A line of the journal is unreadable: bad data (exit 2), the file and line named."""


def _amount(value: Any, field: str) -> Decimal:
    """A journaled quantity or price: a positive decimal written as a string."""
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a decimal string, got {type(value).__name__}")
    try:
        amount = Decimal(value)
    except ArithmeticError:  # decimal.InvalidOperation
        raise ValueError(f"{field}: {value[:40]!r} is not a decimal") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{field}: {value[:40]!r} is not a positive decimal")
    return amount


@dataclass
class JournaledIntent:
    cid: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None
    tag: str
    ts: int  # epoch ms when it was journaled (before the first send)
    status: str = "sent"
    exchange_id: str | None = None

    @property
    def resolved(self) -> bool:
        return self.status in TERMINAL


class Journal:
    def __init__(
        self,
        directory: Path,
        clock: Clock,
        *,
        fsync: bool = True,
        compact_bytes: int = COMPACT_BYTES,
    ) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME
        self._clock = clock
        self._fsync = fsync
        self._file: Any = None
        self.intents: dict[str, JournaledIntent] = {}
        self.writes = 0
        self.torn_tail = False
        self.compact_bytes = compact_bytes
        self.size = 0  # bytes in the file now
        self.compacted_size = 0  # bytes right after the last compaction
        self.compactions = 0
        self.run_id = ""

    # -- opening ---------------------------------------------------------------
    def open(self, run_id: str) -> list[JournaledIntent]:
        """Read the journal, compact it, start this run; returns the unresolved intents."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"cannot create journal directory {self.directory}: {exc.strerror}"
            ) from None
        self.intents = self._read()
        pending = [i for i in self.intents.values() if not i.resolved]
        self.intents = {i.cid: i for i in pending}
        self.run_id = run_id
        self._compact()
        return pending

    def _compact(self) -> None:
        """Rewrite the file as the unresolved intents (atomically) and reopen it for appends."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._rewrite(list(self.intents.values()))
        try:
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc.strerror}") from None
        self.compactions += 1
        self._append({"t": "run", "run": self.run_id, "ts": now_ms(self._clock)})
        self.compacted_size = self.size

    def _maybe_compact(self) -> None:
        if self.size > self.compact_bytes and self.size > 2 * self.compacted_size:
            self._compact()

    def _read(self) -> dict[str, JournaledIntent]:
        intents: dict[str, JournaledIntent] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return intents
        except OSError as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc.strerror}") from None
        lines = raw.split(b"\n")
        complete = lines[:-1]  # the text after the last newline is an unfinished write
        tail = lines[-1]
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self._replay(intents, record)
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                detail = str(exc)[:200] if isinstance(exc, ValueError) else type(exc).__name__
                raise JournalCorrupt(
                    str(self.path),
                    number,
                    f"journal line {number} is corrupt ({detail}); "
                    "refusing to trade without knowing what was sent",
                ) from None
        if tail.strip():
            try:
                self._replay(intents, json.loads(tail))
            except (ValueError, KeyError, TypeError, RecursionError):
                self.torn_tail = True  # a crash mid-write: that intent was never sent
        return intents

    @staticmethod
    def _replay(intents: dict[str, JournaledIntent], record: dict[str, Any]) -> None:
        if not isinstance(record, dict):
            raise TypeError("a journal line is a JSON object")
        kind = record["t"]
        if kind == "intent":
            price = record.get("price")
            intents[record["cid"]] = JournaledIntent(
                cid=str(record["cid"]),
                side=str(record["side"]),
                type=str(record["type"]),
                quantity=_amount(record["qty"], "qty"),
                price=_amount(price, "price") if price is not None else None,
                tag=str(record.get("tag", "")),
                ts=int(record["ts"]),
                status=str(record.get("status", "sent")),
                exchange_id=record.get("oid"),
            )
        elif kind == "outcome":
            intent = intents.get(record["cid"])
            if intent is None:
                return  # an outcome of an intent compacted away earlier
            intent.status = str(record["status"])
            if record.get("oid") is not None:
                intent.exchange_id = str(record["oid"])
        elif kind != "run":
            raise ValueError(f"unknown record type {kind!r}")

    def _rewrite(self, pending: list[JournaledIntent]) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as out:
                text = "".join(_line(_intent_record(intent)) for intent in pending)
                out.write(text)
                self.size = len(text.encode("utf-8"))
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
            os.replace(tmp, self.path)
            if self._fsync:
                _fsync_dir(self.directory)
        except OSError as exc:
            raise JournalError(f"cannot compact journal {self.path}: {exc.strerror}") from None

    # -- writing ---------------------------------------------------------------
    def record_intent(
        self,
        cid: str,
        side: str,
        type_: str,
        quantity: Decimal,
        price: Decimal | None,
        tag: str,
    ) -> JournaledIntent:
        intent = JournaledIntent(cid, side, type_, quantity, price, tag, now_ms(self._clock))
        self._append(_intent_record(intent))
        self.intents[cid] = intent
        return intent

    def record_outcome(self, cid: str, status: str, exchange_id: str | None = None) -> None:
        intent = self.intents.get(cid)
        if intent is not None:
            if intent.status == status and (exchange_id is None or intent.exchange_id):
                return
            intent.status = status
            if exchange_id is not None:
                intent.exchange_id = exchange_id
        record: dict[str, Any] = {
            "t": "outcome",
            "cid": cid,
            "status": status,
            "ts": now_ms(self._clock),
        }
        if exchange_id is not None:
            record["oid"] = exchange_id
        self._append(record)
        if intent is not None and intent.resolved:
            del self.intents[cid]
            self._maybe_compact()  # only after a resolution can it shrink

    def _append(self, record: dict[str, Any]) -> None:
        if self._file is None:
            raise JournalError("the journal is not open")
        line = _line(record)
        try:
            self._file.write(line)
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc.strerror}") from None
        self.writes += 1
        self.size += len(line.encode("utf-8"))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _intent_record(intent: JournaledIntent) -> dict[str, Any]:
    record: dict[str, Any] = {
        "t": "intent",
        "cid": intent.cid,
        "side": intent.side,
        "type": intent.type,
        "qty": fmt(intent.quantity),
        "price": fmt(intent.price) if intent.price is not None else None,
        "tag": intent.tag,
        "ts": intent.ts,
    }
    if intent.status != "sent":
        record["status"] = intent.status
    if intent.exchange_id is not None:
        record["oid"] = intent.exchange_id
    return record


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
