"""The recorded file, loaded lazily into compact arrays.

Rows come from the simulator's own reader (`hean_sim.exchange.records`), not
the engine's, so that what the simulator serves is an independent reading.

A replay only needs the records up to market "now", so the store reads the
file incrementally (in chunks of a few thousand rows) as the replay asks for
later times: starting a simulator on the two-year candle file reads one chunk,
not a million rows. Columns live in `array`s (8 bytes a value) and are found
by `bisect` on the timestamp column.

Timestamps here are DATA times (epoch ms as recorded); rebasing onto wall time
is the market's job (`hean_sim.exchange.market`).
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator
from pathlib import Path

from hean_sim.exchange.model import RecordedCandle, RecordedTrade
from hean_sim.exchange.records import RecordKind, detect_kind, read_candles, read_trades
from hean_sim.exchange.times import MINUTE_MS

_CHUNK = 8192


class RecordStore:
    """Candles or trades of one file, read on demand and kept in memory.

    Candles must be one-minute bars on minute boundaries (klines of longer
    intervals are aggregated from them).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind: RecordKind = detect_kind(path)
        self.ts = array("q")
        # Candles: open/high/low/close/volume. Trades: price in `close`, amount
        # in `volume`, the taker's side in `buyer_taker`.
        self.open = array("d")
        self.high = array("d")
        self.low = array("d")
        self.close = array("d")
        self.volume = array("d")
        self.buyer_taker = bytearray()
        self.exhausted = False
        self._candles: Iterator[RecordedCandle] | None = None
        self._trades: Iterator[RecordedTrade] | None = None
        if self.kind == "candles":
            self._candles = read_candles(path)
        else:
            self._trades = read_trades(path)
        self._load_chunk()
        if not self.ts:
            raise ValueError(f"{path}: no records")

    @property
    def is_candles(self) -> bool:
        return self.kind == "candles"

    def __len__(self) -> int:
        return len(self.ts)

    def ensure(self, data_ms: int) -> None:
        """Load until a record later than `data_ms` is in memory (or the file ends)."""
        while not self.exhausted and self.ts[-1] <= data_ms:
            self._load_chunk()

    def load_all(self) -> None:
        while not self.exhausted:
            self._load_chunk()

    def _load_chunk(self) -> None:
        if self._candles is not None:
            candles = list(itertools.islice(self._candles, _CHUNK))
            if len(candles) < _CHUNK:
                self.exhausted = True
            stamps = [c.ts for c in candles]
            if any(t % MINUTE_MS for t in stamps):
                bad = next(t for t in stamps if t % MINUTE_MS)
                raise ValueError(
                    f"{self.path}: the simulator needs one-minute candles on minute "
                    f"boundaries; found a candle at {bad} ms"
                )
            self.ts.extend(stamps)
            self.open.extend([c.open for c in candles])
            self.high.extend([c.high for c in candles])
            self.low.extend([c.low for c in candles])
            self.close.extend([c.close for c in candles])
            self.volume.extend([c.volume for c in candles])
        elif self._trades is not None:
            trades = list(itertools.islice(self._trades, _CHUNK))
            if len(trades) < _CHUNK:
                self.exhausted = True
            self.ts.extend([t.ts for t in trades])
            self.close.extend([t.price for t in trades])
            self.volume.extend([t.amount for t in trades])
            self.buyer_taker.extend(bytes(t.buyer_taker for t in trades))
