"""A progress bar for long replays, drawn on stderr from a thread of its own.

The replay's loop is not touched: every quarter second the thread reads the
kernel's event counter and time, and works out how far the replay is from
one of two measures, whichever applies:
- with --to, the time of the latest event within [first event or --from, --to);
- otherwise, how far into the data file the reader is: the file offset of its
  open descriptor (Linux's /proc/self/fdinfo), over the file's size. For a
  gzipped file that is the compressed offset, which grows evenly enough.
Where neither is known (another system) it shows the count and rate only.
The command line starts it only when stderr is a terminal.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

_WIDTH = 30
_PERIOD = 0.25


def file_fraction(path: Path) -> Callable[[], float | None]:
    """How far this process has read `path` (0..1), from its descriptor's offset, or None."""
    try:
        target = path.resolve()
        size = target.stat().st_size
    except OSError:
        return lambda: None
    fd_dir = Path("/proc/self/fd")
    seen = [False]

    def fraction() -> float | None:
        if size <= 0 or not fd_dir.is_dir():
            return None
        # Scanned on every call (four times a second): a descriptor number can be reused.
        for fd in _fds_on(fd_dir, target):
            position = _position(fd)
            if position is not None:
                seen[0] = True
                return min(position / size, 1.0)
        return 1.0 if seen[0] else None  # read and closed: done

    return fraction


def _position(fd: str) -> int | None:
    try:
        info = Path(f"/proc/self/fdinfo/{fd}").read_text()
    except OSError:
        return None
    for line in info.splitlines():
        if line.startswith("pos:"):
            return int(line.split()[1])
    return None


def _fds_on(fd_dir: Path, target: Path) -> list[str]:
    found: list[str] = []
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return found
    for entry in entries:
        try:
            if Path(os.readlink(entry)) == target:
                found.append(entry.name)
        except OSError:
            continue
    return found


def time_fraction(
    now: Callable[[], int], start_ms: int | None, end_ms: int
) -> Callable[[], float | None]:
    """How far the replay's event time is from the first event (or start_ms) to end_ms."""
    first: list[int] = []

    def fraction() -> float | None:
        t = now()
        if not t:
            return None
        if not first:
            first.append(start_ms if start_ms is not None else t)
        span = end_ms - first[0]
        return None if span <= 0 else min(max((t - first[0]) / span, 0.0), 1.0)

    return fraction


def render(events: int, elapsed: float, fraction: float | None) -> str:
    """One line: `[#####-----]  42%  431,000 events  312,000/s  ETA 0:03`."""
    rate = events / max(elapsed, 1e-9)
    counts = f"{events:,} events  {rate:,.0f}/s"
    if fraction is None:
        return f"{counts} "
    filled = int(fraction * _WIDTH)
    bar = "#" * filled + "-" * (_WIDTH - filled)
    eta = ""
    if fraction > 0.01:
        remaining = int(elapsed * (1 - fraction) / fraction)
        eta = f"  ETA {remaining // 60}:{remaining % 60:02d}"
    return f"[{bar}] {fraction * 100:3.0f}%  {counts}{eta} "


class ProgressBar:
    """Redraws `render(...)` on `stream` until stopped; reads counters only."""

    def __init__(
        self,
        events: Callable[[], int],
        fraction: Callable[[], float | None],
        stream: TextIO | None = None,
    ) -> None:
        self._events = events
        self._fraction = fraction
        self._stream = stream if stream is not None else sys.stderr
        self._done = threading.Event()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(_PERIOD):
            self._draw()

    def _draw(self) -> None:
        line = render(self._events(), time.perf_counter() - self._started, self._fraction())
        self._stream.write("\r" + line)
        self._stream.flush()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self._stream.write("\n")
        self._stream.flush()


class ProgressHook:
    """Starts a ProgressBar once the replay's engine exists (`replay(on_start=...)`)."""

    def __init__(self, data: Path, start_ms: int | None, end_ms: int | None) -> None:
        self._data = data
        self._start_ms = start_ms
        self._end_ms = end_ms
        self._bar: ProgressBar | None = None

    def __call__(self, engine: Any) -> None:
        kernel = engine.kernel
        if self._end_ms is not None:
            fraction = time_fraction(lambda: int(kernel.now), self._start_ms, self._end_ms)
        else:
            fraction = file_fraction(self._data)
        self._bar = ProgressBar(lambda: int(kernel.events), fraction)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
