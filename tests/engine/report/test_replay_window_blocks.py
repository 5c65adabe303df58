"""--from/--to and the marks on the columnar reader's chunks: the same replay as one by one.

The columnar reader hands whole chunks (2,048 rows) to the replay's tap, which
cuts them at the window's edges and records their marks as array slices; the
line-by-line reader asks the tap event by event (the semantics of the per-event
wrapper the tap replaced). A file of eight days of minutes (11,520 rows, six
chunks) is replayed through both, and through both in one read (a row late in
the file that only the line-by-line reader accepts), with windows whose edges
fall inside chunks, on chunk boundaries, before the first and after the last
row: the summaries and statistics must be identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine_support import CANDLE_HEADER, manifest_dict, spec_dict, write_lines
from hean_engine.app.config import load_config
from hean_engine.app.recording import ReplayWindow
from hean_engine.app.replay import replay
from hean_engine.data import columnar, files
from hean_engine.data.files import CHUNK_ROWS
from hean_engine.model.errors import ConfigError
from hean_engine.model.timefmt import ms_to_iso

T0 = 1_483_228_800_000  # 2017-01-01T00:00:00Z
MINUTE = 60_000
ROWS = 8 * 1440  # three text blocks of the columnar reader (about 5,000 rows each)


def _rows(late_offset: bool) -> list[str]:
    rows = []
    for minute in range(ROWS):
        close = 100 + 5 * math.sin(minute / 40) + 2 * math.sin(minute / 7)
        text = f"{close:.2f}"
        stamp = ms_to_iso(T0 + minute * MINUTE)
        if late_offset and minute == ROWS - 300:  # only the line-by-line reader reads this
            stamp = stamp.replace("Z", "+00:00")
        rows.append(f"{stamp},{text},{text},{text},{text},1")
    return rows


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Any, Any, Path, Path]:
    path = tmp_path / "engine.yaml"
    spec = spec_dict(strategy={"params": {"fast": 3, "slow": 8, "quantity": "1"}})
    path.write_text(yaml.safe_dump(manifest_dict(spec, name="blocks")))
    identity, engine_spec = load_config(path)
    plain = write_lines(tmp_path / "c.csv", [CANDLE_HEADER, *_rows(False)])
    mixed = write_lines(tmp_path / "m.csv", [CANDLE_HEADER, *_rows(True)])
    return identity, engine_spec, plain, mixed


def _run(identity: Any, spec: Any, data: Path, window: ReplayWindow) -> Any:
    try:
        result = replay(identity, spec, data, window=window, with_report=True)
    except ConfigError as exc:
        return ("error", str(exc).replace(str(data), "DATA"))
    summary = dict(result.summary)
    for key in ("wall_seconds", "events_per_second"):
        summary.pop(key)
    return summary


_EDGES = [
    None,
    T0 - 5 * MINUTE,
    T0,
    T0 + 7 * MINUTE + 30_000,  # between two candles
    T0 + CHUNK_ROWS * MINUTE,  # the first row of the second chunk
    T0 + (CHUNK_ROWS - 1) * MINUTE,  # the last row of the first chunk
    T0 + 6000 * MINUTE,  # in the columnar reader's second text block
    T0 + (ROWS - 200) * MINUTE,  # after the row only the line reader reads
    T0 + ROWS * MINUTE,  # past the end
]
_WINDOWS = [
    ReplayWindow(start, end)
    for start in _EDGES
    for end in _EDGES
    if end is None or start is None or end > start
]


@pytest.mark.parametrize("window", _WINDOWS, ids=str)
def test_a_window_on_chunks_is_the_window_one_by_one(
    setup: tuple[Any, Any, Path, Path], window: ReplayWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity, spec, plain, mixed = setup
    by_chunks = _run(identity, spec, plain, window)
    both = _run(identity, spec, mixed, window)  # chunks, then line by line from the odd row

    def missing(*_: Any, **__: Any) -> Iterator[Any]:
        raise columnar.Fallback("forced")

    monkeypatch.setattr(files, "arrow_batches", missing)
    by_line = _run(identity, spec, plain, window)
    assert by_chunks == by_line
    assert both == by_line
    if not isinstance(by_line, tuple):
        assert by_line["events"] > 0 and "stats" in by_line
