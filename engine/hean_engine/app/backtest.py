"""`hean engine backtest`: one run of a Backtest (one Job index), summarised in 4 KiB.

The operator's Job runs this in every pod. It is `hean engine replay --from
--to` with what a pod needs around it:

- the run's parameters: the Backtest's runs file is a JSON list of parameter
  overrides, and the run's index (`JOB_COMPLETION_INDEX`, which the Job
  controller sets in Indexed mode) picks one;
- the warm-up: the strategy first sees the `--warmup` events before `from`
  (nothing trades on them), as a running engine's strategy sees recent
  history before it trades, so that a Backtest trades as an engine would;
- the data: a file (a volume, a ConfigMap key), or candles fetched through
  ccxt's `fetch_ohlcv` for exactly [from - warmup, to), kept in a cache directory
  under a name made of exchange, symbol, timeframe and range, so that the
  next run (or every other index of a sweep) reads the file instead;
- the results: the full summary (with every fill) and the HTML report go to
  the output directory; the *summary* of `summarize_run` (the statistics and
  counts, never more than 4 KiB) is printed as one JSON line and written as
  the container's termination message, where the operator reads it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hean_contract.backtest import STATS_FIELDS
from hean_contract.spec import EngineIdentity, TradingEngineSpec, parse_spec
from hean_engine.app.config import load_config
from hean_engine.app.recording import ReplayWindow
from hean_engine.app.replay import replay
from hean_engine.model.errors import ConfigError, DataError, HeanError
from hean_engine.model.timefmt import ms_to_iso
from hean_engine.net.exchange import create_client

# What the kubelet keeps of a termination message.
SUMMARY_BYTES = 4096
# The statistics a run reports: every field of hean_contract.backtest.BacktestStats
# (camelCase), which is what the operator writes to status.
SUMMARY_STATS = STATS_FIELDS
FETCH_LIMIT = 1000  # candles per fetch_ohlcv call (Binance's largest page)


class FetchError(HeanError):
    """The exchange did not give the candles of the range."""


@dataclass(frozen=True)
class RunOptions:
    config: Path
    start_ms: int
    end_ms: int
    data: Path | None = None  # a file; None: fetch
    runs: Path | None = None  # the runs file; None: one run of the config as written
    index: int = 0
    cache_dir: Path | None = None
    output_dir: Path | None = None
    warmup: int = 0  # events before start_ms the strategy sees first (nothing trades)


def run_params(runs: Path | None, index: int) -> dict[str, Any]:
    """The parameter overrides of run `index` (ConfigError naming --runs or the index)."""
    if runs is None:
        if index != 0:
            raise ConfigError([f"JOB_COMPLETION_INDEX: {index} without --runs (one run only)"])
        return {}
    try:
        listed = json.loads(runs.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError([f"--runs: cannot read {runs}: {exc}"]) from None
    if not isinstance(listed, list) or not all(isinstance(item, dict) for item in listed):
        raise ConfigError([f"--runs: {runs} must hold a JSON list of parameter objects"])
    if not 0 <= index < len(listed):
        raise ConfigError([f"JOB_COMPLETION_INDEX: {index} is not one of the {len(listed)} runs"])
    return dict(listed[index])


def with_params(spec: TradingEngineSpec, params: dict[str, Any]) -> TradingEngineSpec:
    """`spec` with `params` overriding its strategy's (validated again, as a new spec)."""
    if not params:
        return spec
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["strategy"]["params"] = {**data["strategy"]["params"], **params}
    return parse_spec(data)


def cache_path(cache_dir: Path, spec: TradingEngineSpec, start_ms: int, end_ms: int) -> Path:
    """Where fetched candles of this exchange, symbol, timeframe and range are kept."""
    market = spec.market
    symbol = market.symbol.replace("/", "-")
    span = f"{_stamp(start_ms)}_{_stamp(end_ms)}"
    return cache_dir / "candles" / spec.exchange.id / symbol / market.timeframe / f"{span}.csv.gz"


def _stamp(ms: int) -> str:
    return ms_to_iso(ms).replace(":", "").replace("-", "")


async def fetch_ohlcv(
    client: Any, symbol: str, timeframe: str, step_ms: int, start_ms: int, end_ms: int
) -> list[list[Any]]:
    """Every candle opening in [start, end), page by page (ccxt's `fetch_ohlcv`)."""
    rows: list[list[Any]] = []
    since = start_ms
    while since < end_ms:
        page = await client.fetch_ohlcv(symbol, timeframe, since=since, limit=FETCH_LIMIT)
        fresh = [row for row in page if since <= int(row[0]) < end_ms]
        if not fresh:
            break  # nothing more in the range: the exchange's data ends there
        rows.extend(fresh)
        since = int(fresh[-1][0]) + step_ms
    return rows


def _csv(rows: list[list[Any]]) -> bytes:
    lines = ["timestamp,open,high,low,close,volume"]
    for ts, *values in rows:
        lines.append(",".join([ms_to_iso(int(ts)), *(_number(v) for v in values)]))
    return ("\n".join(lines) + "\n").encode()


def _number(value: Any) -> str:
    return "0" if value is None else repr(value) if isinstance(value, float) else str(value)


def fetch_candles(
    spec: TradingEngineSpec, start_ms: int, end_ms: int, cache_dir: Path | None, scratch: Path
) -> Path:
    """The candles of [start, end) as a file: the cached one, or fetched (and cached)."""
    target = cache_path(cache_dir or scratch, spec, start_ms, end_ms)
    if target.is_file():
        return target
    client = create_client(spec.exchange)

    async def fetch() -> list[list[Any]]:
        try:
            return await fetch_ohlcv(
                client,
                spec.market.symbol,
                spec.market.timeframe,
                spec.market.timeframe_ms,
                start_ms,
                end_ms,
            )
        finally:
            await client.close()

    try:
        rows = asyncio.run(fetch())
    except Exception as exc:  # ccxt's errors are many; the run reports the one it met
        raise FetchError(
            f"fetch_ohlcv from {spec.exchange.id}: {type(exc).__name__}: {exc}"
        ) from None
    if not rows:
        raise DataError(
            str(target), 0, f"{spec.exchange.id} has no {spec.market.symbol} candles in the range"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: another run of the sweep never reads half a file.
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_bytes(gzip.compress(_csv(rows), mtime=0))
    os.replace(partial, target)
    return target


def summarize_run(
    index: int, summary: dict[str, Any], report: str | None, events: int
) -> dict[str, Any]:
    """What the operator reads: the run's statistics and counts, at most 4 KiB."""
    stats = summary.get("stats") or {}
    out: dict[str, Any] = {
        "index": index,
        "events": events,
        "orders": summary.get("orders"),
        "stats": {key: stats[key] for key in SUMMARY_STATS if key in stats},
    }
    if report is not None:
        out["report"] = report
    if len(json.dumps(out, separators=(",", ":")).encode()) > SUMMARY_BYTES:
        out.pop("report", None)  # only a path longer than everything else could do this
    return out


def run_backtest(options: RunOptions, scratch: Path) -> dict[str, Any]:
    """One run: its parameters, its data, the replay, its results. Returns the short summary."""
    identity, spec = load_config(options.config)
    spec = with_params(spec, run_params(options.runs, options.index))
    data = options.data
    if data is None:
        # the warm-up's candles are fetched with the range's (and cached with them)
        first = options.start_ms - options.warmup * spec.market.timeframe_ms
        data = fetch_candles(spec, first, options.end_ms, options.cache_dir, scratch)
    elif not data.is_file():
        raise DataError(str(data), 0, "no such file")
    result = replay(
        _identity(identity, options.index),
        spec,
        data,
        window=ReplayWindow(options.start_ms, options.end_ms),
        with_report=True,
        warmup=options.warmup,
    )
    report_name = None
    if options.output_dir is not None and result.report is not None:
        report_name = _write_results(options, result.summary, result.report)
    return summarize_run(options.index, result.summary, report_name, result.summary["events"])


def _identity(identity: EngineIdentity, index: int) -> EngineIdentity:
    return identity.model_copy(update={"name": f"{identity.name}-{index}"})


def _write_results(options: RunOptions, summary: dict[str, Any], report: Any) -> str:
    from hean_engine.report.html import render_report

    directory = options.output_dir
    assert directory is not None
    directory.mkdir(parents=True, exist_ok=True)
    html = directory / f"{options.index}.html"
    html.write_text(render_report(report), encoding="utf-8")
    (directory / f"{options.index}.json").write_text(
        json.dumps(summary, separators=(",", ":")), encoding="utf-8"
    )
    return html.name
