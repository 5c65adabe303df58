"""Live mode goes through the LiveGate first, and exchange keys never leak."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_support import FakeClock, spec_dict
from hean_contract.spec import EngineIdentity, TradingEngineSpec, parse_spec
from hean_engine.app.nodes import LiveNode, PaperNode, build_node, read_credentials
from hean_engine.app.run import RunOptions, run_engine, serve
from hean_engine.execution.live import GateDecision
from hean_engine.model.errors import ConfigError, LiveTradingRefused
from hean_engine.telemetry.logs import REDACTOR, configure_logging, get_logger

API_KEY = "canary-api-key-3b8e1d"
SECRET = "canary-secret-a41c77f0"


class AllowGate:
    def __init__(self) -> None:
        self.asked = 0

    def evaluate(self, identity: EngineIdentity, spec: TradingEngineSpec) -> GateDecision:
        self.asked += 1
        return GateDecision(True, "test approval")


def live_spec(exchange_id: str = "binance") -> TradingEngineSpec:
    return parse_spec(
        spec_dict(mode="live", exchange={"id": exchange_id, "credentialsSecret": "keys"})
    )


def credentials(tmp_path: Path) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    (directory / "apiKey").write_text(API_KEY + "\n")
    (directory / "secret").write_text(SECRET)
    return directory


@pytest.fixture(autouse=True)
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream)
    yield stream
    REDACTOR.clear()
    configure_logging()


def test_the_gate_is_asked_before_the_keys_are_read(tmp_path: Path) -> None:
    # The credentials directory does not exist: reading it would be a ConfigError.
    options = RunOptions(credentials_dir=tmp_path / "absent", configure_logs=False)
    with pytest.raises(LiveTradingRefused) as info:
        run_engine(EngineIdentity(name="e1"), live_spec(), options)
    assert str(info.value) == "live trading refused for default/e1: no valid LiveApproval"


def test_an_allowed_live_start_needs_a_journal_directory(tmp_path: Path, logs: io.StringIO) -> None:
    gate = AllowGate()
    options = RunOptions(credentials_dir=credentials(tmp_path), gate=gate, configure_logs=False)
    with pytest.raises(ConfigError) as info:
        run_engine(EngineIdentity(), live_spec(), options)
    assert gate.asked == 1
    assert "--journal-dir: required in live mode" in str(info.value)
    assert API_KEY not in str(info.value) and SECRET not in str(info.value)


def test_a_live_start_on_an_exchange_without_a_venue_entry_is_refused_by_name(
    tmp_path: Path, logs: io.StringIO
) -> None:
    # Paper mode takes any ccxt exchange; the live path needs its venue entry.
    options = RunOptions(
        credentials_dir=credentials(tmp_path),
        journal_dir=tmp_path / "journal",
        gate=AllowGate(),
        configure_logs=False,
    )
    with pytest.raises(ConfigError) as info:
        run_engine(EngineIdentity(), live_spec("bitfinex"), options)
    assert "spec.exchange.id: live trading supports binance, okx" in str(info.value)
    assert not (tmp_path / "journal").exists()


def test_serve_asks_the_gate_too_so_no_caller_gets_around_it(tmp_path: Path) -> None:
    # A caller that skips run_engine (and its gate check) still meets the gate.
    options = RunOptions(journal_dir=tmp_path / "journal", configure_logs=False)
    with pytest.raises(LiveTradingRefused):
        asyncio.run(serve(EngineIdentity(name="e1"), live_spec(), options, client=object()))
    assert not (tmp_path / "journal").exists()


def test_keys_read_are_redacted_from_every_log_line(tmp_path: Path, logs: io.StringIO) -> None:
    read_credentials(credentials(tmp_path))
    log = get_logger("test")
    log.error("exchange said", detail=f"invalid key {API_KEY} for secret {SECRET}")
    try:
        raise RuntimeError(f"signature with {SECRET} rejected")
    except RuntimeError:
        log.exception("failure")
    text = logs.getvalue()
    assert API_KEY not in text and SECRET not in text
    assert text.count("[REDACTED]") >= 3


def test_request_signatures_in_ccxt_errors_are_redacted(logs: io.StringIO) -> None:
    url = "GET http://127.0.0.1:9/api/v3/account?timestamp=1&recvWindow=5000&signature=9f86d081884c7d65"
    get_logger("test").warning("exchange call failed", error=f"ExchangeNotAvailable: binance {url}")
    text = logs.getvalue()
    assert "9f86d081884c7d65" not in text
    assert "signature=[REDACTED]" in text and "recvWindow=5000" in text


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"apiKey": "k" * 10}, "secret: No such file or directory"),
        ({"apiKey": "", "secret": "s" * 10}, "apiKey is empty"),
    ],
)
def test_missing_or_empty_keys_name_the_file_not_the_value(
    tmp_path: Path, files: dict[str, str], problem: str
) -> None:
    directory = tmp_path / "keys"
    directory.mkdir()
    for name, value in files.items():
        (directory / name).write_text(value)
    with pytest.raises(ConfigError) as info:
        read_credentials(directory)
    assert problem in str(info.value)
    assert "kkkkkkkkkk" not in str(info.value)


def test_the_mode_picks_the_node_once(tmp_path: Path) -> None:
    """Paper and live are two nodes built by one factory: the live one owns its live parts."""
    paper = build_node(
        EngineIdentity(),
        parse_spec(spec_dict()),
        RunOptions(configure_logs=False),
        run_id="r1",
        clock=FakeClock(),
        client=object(),
    )
    assert isinstance(paper, PaperNode) and not isinstance(paper, LiveNode)
    assert (paper.runtime.mode, paper.runtime.reconcile_required) == ("paper", False)
    assert paper.runtime.live is None and paper.runtime.approval is None
    gate = AllowGate()
    options = RunOptions(gate=gate, journal_dir=tmp_path / "journal", configure_logs=False)
    live = build_node(
        EngineIdentity(), live_spec(), options, run_id="r1", clock=FakeClock(), client=object()
    )
    assert isinstance(live, LiveNode)
    assert (live.runtime.mode, live.runtime.reconcile_required) == ("live", True)
    assert live.runtime.live is live.session and live.venue.on_fault == live.session.on_fault
    # The gate at build time, then the watch's first check: both before anything runs.
    assert gate.asked == 2 and live.runtime.approval is not None and live.runtime.approval.valid
    assert live.runtime.clock is live.clock
