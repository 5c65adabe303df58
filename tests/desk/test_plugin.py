"""`kubectl hean` without a cluster: formatting, arguments and errors, on a fake DeskClient."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cluster_support import engine_manifest
from hean_contract.report import EngineReport
from hean_desk import plugin, render
from hean_desk.errors import DeskError
from hean_desk.report_reader import ReportFile, report_target
from hean_desk.views import ApprovalView, BacktestView, EngineView, KubeEvent
from hean_engine.approval.payload import spec_hash
from hean_engine.approval.sign import generate_key

NS = "desk"


def engine_object(name: str = "btc", mode: str = "paper", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {**engine_manifest(name, None, NS)["spec"], "mode": mode},
        "status": {
            "phase": "Running",
            "mode": mode,
            "equity": "100012.5",
            "pnl": "12.5",
            "riskState": "ACTIVE",
            "openOrders": 1,
            "position": "0.25",
            "reconcile": {"result": "ok", "time": "2026-01-02T00:00:00Z"},
            # written by a newer operator: ignored, not a failure
            "someFutureField": {"x": 1},
            **status,
        },
    }


# Both wire spellings of the report: snake_case (today) and camelCase (branch i13-engine).
REPORT_SNAKE: dict[str, Any] = {
    "name": "btc",
    "namespace": NS,
    "generation": 3,
    "run_id": "r1",
    "mode": "paper",
    "exchange": "binance",
    "symbol": "BTC/USDT",
    "strategy": "ema_cross",
    "ready": True,
    "ready_reason": "ready",
    "risk_state": "ACTIVE",
    "paused": False,
    "position": "0.25",
    "balances": {"BTC": "0.25", "USDT": "75000.1"},
    "equity": "100012.5",
    "pnl": "12.5",
    "max_drawdown": "3.1",
    "fees": "0.75",
    "open_orders": [
        {
            "id": "o-2",
            "side": "sell",
            "type": "limit",
            "quantity": "0.1",
            "remaining": "0.1",
            "price": "101000.5",
            "created": "2026-01-02T00:01:00Z",
        }
    ],
    "orders_submitted": 2,
    "orders_closed": {"filled": 1},
    "fills": 1,
    "rejections": {},
    "events": 10,
}
REPORT_CAMEL = {
    "runId": "r1",
    "readyReason": "ready",
    "riskState": "ACTIVE",
    "maxDrawdown": "3.1",
    "openOrders": REPORT_SNAKE["open_orders"],
    "ordersSubmitted": 2,
    "ordersClosed": {},
    **{k: v for k, v in REPORT_SNAKE.items() if "_" not in k},
}
FILLS = [
    {
        "tradeId": "t1",
        "orderId": "x-1",
        "clientOrderId": "o-1",
        "side": "buy",
        "price": "100000.10",
        "quantity": "0.25",
        "fee": "0.025",
        "feeCurrency": "BTC",
        "time": "2026-01-02T00:00:00Z",
        "runId": "r1",
    },
]
EQUITY = [
    {"time": f"2026-01-02T00:0{i}:00Z", "equity": e, "pnl": str(Decimal(e) - 100000)}
    for i, e in enumerate(["100000", "100010", "99990", "100012.5"])
]


@dataclass
class FakeDesk:
    """The Desk protocol over in-memory objects; records what the commands changed."""

    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=lambda: dict(REPORT_SNAKE))
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    orders: list[tuple[str, str, str]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    backtests: dict[str, dict[str, Any]] = field(default_factory=dict)
    forbid_patch: bool = False
    default_namespace: str = NS
    report_reads: list[tuple[str, int | None, float]] = field(default_factory=list)
    reader_cleanup: str | None = None
    # The operator's verdict on a created approval: (valid, reason, message); None: none yet.
    verdict: tuple[bool, str, str] | None = (True, "valid", "approved by alice")
    approvals: list[dict[str, Any]] = field(default_factory=list)
    waited: list[float] = field(default_factory=list)

    def _engine(self, namespace: str, name: str) -> dict[str, Any]:
        if namespace != NS or name not in self.engines:
            raise DeskError(f"no TradingEngine {name!r} in namespace {namespace!r}")
        return self.engines[name]

    def list_engines(self, namespace: str | None) -> list[EngineView]:
        return [EngineView.from_object(o) for o in self.engines.values()]

    def get_engine(self, namespace: str, name: str) -> EngineView:
        return EngineView.from_object(self._engine(namespace, name))

    def engine_report(self, namespace: str, name: str) -> EngineReport:
        self._engine(namespace, name)
        return EngineReport.model_validate(self.report)

    def engine_history(
        self,
        namespace: str,
        name: str,
        what: str,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        self._engine(namespace, name)
        rows = self.history.get(what, [])
        return rows[:limit] if limit else rows

    def patch_spec(self, namespace: str, name: str, patch: dict[str, Any]) -> EngineView:
        if self.forbid_patch:
            raise DeskError("forbidden: your Kubernetes user may not patch tradingengines.hean.io")
        obj = self._engine(namespace, name)
        obj["spec"].update(patch)
        self.patches.append((name, patch))
        return EngineView.from_object(obj)

    def events(self, namespace: str, name: str) -> list[KubeEvent]:
        return [KubeEvent("2026-01-02T00:00:00Z", "Normal", "Running", "engine running", 1)]

    def logs(self, namespace: str, name: str, tail: int | None) -> str:
        return '{"event": "fill"}\n'

    def list_approvals(self, namespace: str | None) -> list[ApprovalView]:
        return [ApprovalView.from_object(a) for a in self.approvals]

    def create_approval(self, manifest: dict[str, Any]) -> ApprovalView:
        self.created.append(manifest)
        return ApprovalView.from_object(manifest)

    def approval_verdict(self, namespace: str, name: str, timeout: float) -> ApprovalView | None:
        self.waited.append(timeout)
        (manifest,) = [m for m in self.created if m["metadata"]["name"] == name]
        if self.verdict is None:
            return None
        valid, reason, message = self.verdict
        status = {"valid": valid, "reason": reason, "message": message}
        return ApprovalView.from_object({**manifest, "status": status})

    def test_order(self, namespace: str, name: str, side: str, quantity: str) -> dict[str, Any]:
        self.orders.append((name, side, quantity))
        return {"order": {"id": "o-9", "side": side, "quantity": quantity}, "mode": "paper"}

    def list_backtests(self, namespace: str | None) -> list[BacktestView]:
        return [BacktestView.from_object(o) for o in self.backtests.values()]

    def get_backtest(self, namespace: str, name: str) -> BacktestView:
        if namespace != NS or name not in self.backtests:
            raise DeskError(f"no Backtest {name!r} in namespace {namespace!r}")
        return BacktestView.from_object(self.backtests[name])

    def backtest_report(
        self, namespace: str, name: str, run: int | None, timeout: float
    ) -> ReportFile:
        """As DeskClient: refused without a report to read; the reader pod made up."""
        view = self.get_backtest(namespace, name)
        target = report_target(view, run)
        self.report_reads.append((name, run, timeout))
        content = f"<html>{target.path}</html>".encode()
        return ReportFile(view, target, content, f"{name}-report-x1z2q", self.reader_cleanup)


@pytest.fixture
def desk(monkeypatch: pytest.MonkeyPatch) -> FakeDesk:
    fake = FakeDesk(engines={"btc": engine_object()}, history={"fills": FILLS, "equity": EQUITY})
    monkeypatch.setattr(plugin, "desk_factory", lambda kubeconfig, context: fake)
    return fake


def run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(plugin.cli, list(args), input=stdin, prog_name="kubectl hean")


def test_trades_json_is_the_contract(desk: FakeDesk) -> None:
    result = run("trades", "btc", "-n", NS, "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == FILLS


def test_status_json_has_the_contract_fields_from_either_report_spelling(desk: FakeDesk) -> None:
    for report in (REPORT_SNAKE, REPORT_CAMEL):
        desk.report = report
        result = run("status", "btc", "-n", NS, "-o", "json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert doc["phase"] == "Running" and doc["riskState"] == "ACTIVE"
        assert (doc["equity"], doc["pnl"]) == ("100012.5", "12.5")
        assert doc["positions"] == [{"symbol": "BTC/USDT", "quantity": "0.25"}]
        assert [o["id"] for o in doc["openOrders"]] == ["o-2"]
        assert doc["openOrders"][0]["price"] == "101000.5"
        assert doc["lastFills"] == FILLS
        assert doc["reconcile"]["result"] == "ok"


def test_status_text_is_a_report_for_people(desk: FakeDesk) -> None:
    result = run("status", "btc", "-n", NS)
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"Engine {NS}/btc" in text
    for line in (
        "Phase:                Running",
        "Equity:               100012.5",
        "PnL:                  12.5",
        "Balance USDT:         75000.1",
    ):
        assert line in text
    assert "101000.5" in text and "100000.10" in text  # open order, last fill, exact


def test_status_falls_back_to_the_operators_copy_when_the_engine_is_unreachable(
    desk: FakeDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(namespace: str, name: str) -> EngineReport:
        raise DeskError("engine desk/btc has no running pod")

    monkeypatch.setattr(desk, "engine_report", unreachable)
    doc = json.loads(run("status", "btc", "-n", NS, "-o", "json").output)
    assert (doc["equity"], doc["riskState"]) == ("100012.5", "ACTIVE")
    assert doc["reportError"] == "engine desk/btc has no running pod"
    assert doc["reconcile"] == {
        "result": "ok",
        "time": "2026-01-02T00:00:00Z",
        "drift": None,
        "since": None,
    }


def _approval(name: str, key_id: str, expires: str, valid: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "engineRef": {"name": "btc"},
            "expiresAt": expires,
            "signatures": [{"keyId": key_id}],
        },
        "status": {"valid": valid, "reason": "valid" if valid else "untrusted_key"},
    }


def test_status_shows_the_engines_own_reconcile_and_its_valid_approval(desk: FakeDesk) -> None:
    # The engine compared a moment ago (drift); the operator's copy still says ok:
    # the engine's comparison is the one shown, beside the engine's other figures.
    desk.report = {
        **REPORT_SNAKE,
        "last_reconcile": {
            "result": "drift",
            "time": "2026-01-02T00:05:00Z",
            "summary": "USDT: engine 75000.1, exchange 75005.1",
            "drift_since": "2026-01-02T00:04:00Z",
        },
    }
    # alice's approval is valid; mallory's, applied later and expiring later, was refused
    desk.approvals = [
        _approval("ok", "alice", "2026-01-02T10:00:00Z", True),
        _approval("later", "mallory", "2026-01-02T12:00:00Z", False),
    ]
    doc = json.loads(run("status", "btc", "-n", NS, "-o", "json").output)
    assert doc["reconcile"] == {
        "result": "drift",
        "time": "2026-01-02T00:05:00Z",
        "drift": "USDT: engine 75000.1, exchange 75005.1",
        "since": "2026-01-02T00:04:00Z",
    }
    assert (doc["approval"]["name"], doc["approval"]["signers"]) == ("ok", ["alice"])
    # without a valid one, the latest is shown (with its refusal in the console/approvals)
    desk.approvals = [_approval("later", "mallory", "2026-01-02T12:00:00Z", False)]
    doc = json.loads(run("status", "btc", "-n", NS, "-o", "json").output)
    assert doc["approval"]["name"] == "later"


def test_status_table_of_all_engines(desk: FakeDesk) -> None:
    desk.engines["eth"] = engine_object("eth", phase="Paused")
    result = run("status", "-n", NS)
    header, *rows = result.output.splitlines()
    assert header.split()[:6] == ["NAME", "MODE", "PHASE", "RISK", "EQUITY", "PNL"]
    assert [r.split()[:3] for r in rows] == [
        ["btc", "paper", "Running"],
        ["eth", "paper", "Paused"],
    ]
    yaml_rows = yaml.safe_load(run("status", "-A", "-o", "yaml").output)
    assert [r["name"] for r in yaml_rows] == ["btc", "eth"]


def test_pnl_draws_a_sparkline(desk: FakeDesk) -> None:
    result = run("pnl", "btc", "-n", NS)
    assert result.exit_code == 0
    assert render.sparkline([e["equity"] for e in EQUITY]) in result.output
    assert render.sparkline(["1", "2", "3", "2"]) == "▁▄█▄"
    assert render.sparkline(["5", "5"]) == "▅▅" and render.sparkline([]) == ""


def test_actions_ask_first_naming_engine_and_namespace(desk: FakeDesk) -> None:
    declined = run("halt", "btc", "-n", NS, stdin="n\n")
    assert declined.exit_code == 2 and desk.patches == []
    assert f"engine btc in namespace {NS}" in declined.output
    assert run("pause", "btc", "-n", NS, "--yes").exit_code == 0
    assert run("resume", "btc", "-n", NS, "-y").exit_code == 0
    assert desk.patches == [("btc", {"paused": True}), ("btc", {"paused": False, "halt": False})]


def test_test_order_is_refused_for_live_engines_before_any_request(desk: FakeDesk) -> None:
    desk.engines["live1"] = engine_object("live1", mode="live")
    refused = run("test-order", "live1", "-n", NS)
    assert refused.exit_code == 2 and "live engine" in refused.output
    assert desk.orders == []
    ok = run("test-order", "btc", "-n", NS, "--quantity", "0.002", "--side", "sell")
    assert ok.exit_code == 0 and desk.orders == [("btc", "sell", "0.002")]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("test-order", "btc", "--quantity", "-1"), "--quantity"),
        (("test-order", "btc", "--quantity", "1e9"), "--quantity"),
        (("trades", "btc", "--since", "yesterday"), "--since"),
        (("trades", "btc", "--until", "2026-01-01T00:00:00"), "--until"),
        (("trades", "btc", "--limit", "0"), "--limit"),
        (("status", "btc", "-o", "xml"), "--output"),
        (("status", "btc", "-A"), "-A"),
        (("trades",), "ENGINE"),
    ],
)
def test_bad_input_names_the_option_and_exits_2(
    desk: FakeDesk, args: tuple[str, ...], named: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "Traceback" not in result.output


def test_an_unknown_engine_exits_1_with_its_name(desk: FakeDesk) -> None:
    result = run("trades", "nope", "-n", NS)
    assert result.exit_code == 1
    assert result.output == f"error: no TradingEngine 'nope' in namespace '{NS}'\n"


def test_approve_signs_the_current_spec_with_the_engines_code(
    desk: FakeDesk, tmp_path: Path
) -> None:
    private, _ = generate_key(tmp_path, "alice")
    result = run("approve", "btc", "-n", NS, "--key", str(private), "--ttl", "2h")
    assert result.exit_code == 0, result.output
    (manifest,) = desk.created
    assert manifest["spec"]["engineUid"] == "uid-btc"
    assert [s["keyId"] for s in manifest["spec"]["signatures"]] == ["alice"]
    from hean_contract.spec import parse_manifest

    _, spec = parse_manifest(engine_object())
    assert manifest["spec"]["specHash"] == spec_hash(spec)
    assert private.read_text() not in result.output
    assert "the operator's verdict: valid" in result.output
    assert desk.waited == [60.0]
    bad_key = run("approve", "btc", "-n", NS, "--key", str(tmp_path / "missing.key"))
    assert bad_key.exit_code == 2 and "--key" in bad_key.output


def test_approve_says_the_operators_refusal_and_exits_2(desk: FakeDesk, tmp_path: Path) -> None:
    private, _ = generate_key(tmp_path, "mallory")
    desk.verdict = (False, "untrusted_key", "no trusted key signed it: untrusted_key: mallory")
    result = run("approve", "btc", "-n", NS, "--key", str(private), "--wait", "5s")
    assert result.exit_code == 2, result.output
    (manifest,) = desk.created
    name = manifest["metadata"]["name"]
    assert result.output.startswith(
        f"error: approve: the operator refused liveapproval {name} for {NS}/btc: untrusted_key: "
    )
    assert desk.waited == [5.0] and "Traceback" not in result.output
    assert private.read_text() not in result.output


def test_approve_refuses_a_stale_generation_before_signing(desk: FakeDesk, tmp_path: Path) -> None:
    private, _ = generate_key(tmp_path, "alice")
    generation = EngineView.from_object(desk.engines["btc"]).generation
    stale = run("approve", "btc", "-n", NS, "--key", str(private), "--generation", "99")
    assert stale.exit_code == 2 and desk.created == []
    assert f"is at generation {generation}, you reviewed generation 99" in stale.output
    fresh = run(
        "approve",
        "btc",
        "-n",
        NS,
        "--key",
        str(private),
        "--generation",
        str(generation),
        "-o",
        "json",
    )
    assert fresh.exit_code == 0, fresh.output
    assert json.loads(fresh.output)["status"] == {
        "valid": True,
        "reason": "valid",
        "message": "approved by alice",
    }


def test_approve_without_a_verdict_in_time_fails_and_wait_0_does_not_wait(
    desk: FakeDesk, tmp_path: Path
) -> None:
    private, _ = generate_key(tmp_path, "alice")
    desk.verdict = None
    late = run("approve", "btc", "-n", NS, "--key", str(private), "--wait", "2s")
    assert late.exit_code == 1 and "gave no verdict within 2s" in late.output
    unwaited = run("approve", "btc", "-n", NS, "--key", str(private), "--wait", "0")
    assert unwaited.exit_code == 0 and "verdict: not waited for" in unwaited.output
    assert desk.waited == [2.0]
    bad = run("approve", "btc", "-n", NS, "--key", str(private), "--wait", "soon")
    assert bad.exit_code == 2 and "--wait" in bad.output


def test_a_missing_console_says_so(desk: FakeDesk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hean_desk.console", None)  # not importable
    result = run("console", "--port", "8000")
    assert result.exit_code == 2
    assert "hean_desk.console" in result.output and "Traceback" not in result.output


def backtest_object(name: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "Backtest",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "market": {"symbol": "BTC/USD", "timeframe": "1m"},
            "strategy": {"name": "ema_cross", "params": {"fast": 5, "slow": 20}},
            "from": "2018-01-01T00:00:00Z",
            "to": "2018-02-01T00:00:00Z",
        },
        "status": status,
    }


STATS = {
    "totalReturnPct": "-3.1400",
    "maxDrawdownPct": "7.250",
    "sharpe": "0.10",
    "trades": 42,
    "fees": "12.34567890",
    "undefined": ["calmar"],
    "someFutureStat": "1",  # a newer operator's: ignored, not a failure
}
SWEEP = {
    "runs": 3,
    "succeeded": 2,
    "failed": 0,
    "skipped": 1,
    "rankBy": "sharpe",
    "top": [
        {"index": 2, "params": {"fast": 10, "slow": 50}, "value": "1.50", "stats": STATS},
        {"index": 0, "params": {"fast": 5, "slow": 20}, "value": "0.10", "stats": {}},
    ],
}


@pytest.fixture
def backtests(desk: FakeDesk) -> FakeDesk:
    desk.backtests = {
        "one": backtest_object(
            "one",
            phase="Succeeded",
            stats=STATS,
            report={"claimName": "results", "path": "reports/desk/one/u1/0.html"},
        ),
        "sweep": backtest_object("sweep", phase="Running", stats=STATS, sweep=SWEEP),
        "new": backtest_object("new"),
    }
    return desk


def test_backtest_list_has_the_crds_columns_with_exact_figures(backtests: FakeDesk) -> None:
    result = run("backtest", "-n", NS)
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == [
        "NAME", "STRATEGY", "MARKET", "FROM", "TO", "PHASE", "RETURN", "MAXDD", "SHARPE",
        "TRADES", "AGE",
    ]  # fmt: skip
    first = rows[0].split()
    assert first[:10] == [
        "one", "ema_cross", "BTC/USD", "2018-01-01T00:00:00Z", "2018-02-01T00:00:00Z",
        "Succeeded", "-3.1400", "7.250", "0.10", "42",
    ]  # fmt: skip
    assert rows[2].split()[5:10] == ["Pending", "-", "-", "-", "-"]
    doc = json.loads(run("backtest", "-A", "-o", "json").output)
    assert [(r["namespace"], r["name"]) for r in doc] == [(NS, "one"), (NS, "sweep"), (NS, "new")]
    assert doc[0]["totalReturnPct"] == "-3.1400" and doc[0]["trades"] == 42
    assert run("backtest", "-A").output.split()[0] == "NAMESPACE"


def test_backtest_list_when_there_is_none(desk: FakeDesk) -> None:
    result = run("backtest", "-n", NS)
    assert (result.exit_code, result.output) == (0, f"No Backtests found in namespace {NS}.\n")


def test_backtest_name_shows_the_summary_and_where_the_report_is(backtests: FakeDesk) -> None:
    result = run("backtest", "one", "-n", NS)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Backtest desk/one" in text
    assert "Range:                2018-01-01T00:00:00Z .. 2018-02-01T00:00:00Z" in text
    assert "  totalReturnPct:     -3.1400" in text and "  fees:               12.34567890" in text
    assert "  undefined:          calmar" in text
    assert "reports/desk/one/u1/0.html on PersistentVolumeClaim results" in text
    assert "someFutureStat" not in text
    doc = yaml.safe_load(run("backtest", "one", "-n", NS, "-o", "yaml").output)
    assert doc["report"] == {"claimName": "results", "path": "reports/desk/one/u1/0.html"}
    assert doc["stats"]["maxDrawdownPct"] == "7.250" and doc["sweep"] is None
    pending = run("backtest", "new", "-n", NS).output
    assert "(none yet)" in pending and "none (the Backtest has no spec.output)" in pending


def test_backtest_of_a_sweep_shows_its_ranking_best_first(backtests: FakeDesk) -> None:
    result = run("backtest", "sweep", "-n", NS)
    assert result.exit_code == 0, result.output
    assert "Statistics (the best run)" in result.output
    assert "Sweep: 3 runs, 2 succeeded, 0 failed, 1 skipped; ranked by sharpe" in result.output
    ranking = result.output.split("ranked by sharpe\n")[1].splitlines()
    assert ranking[0].split()[:4] == ["RANK", "RUN", "PARAMS", "VALUE"]
    assert ranking[1].split()[:6] == ["1", "2", "fast=10,", "slow=50", "1.50", "-3.1400"]
    assert ranking[2].split()[:5] == ["2", "0", "fast=5,", "slow=20", "0.10"]
    doc = json.loads(run("backtest", "sweep", "-n", NS, "-o", "json").output)
    assert [r["index"] for r in doc["sweep"]["top"]] == [2, 0]
    assert doc["sweep"]["top"][0]["stats"]["sharpe"] == "0.10"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("backtest", "Bad_Name"), "NAME"),
        (("backtest", "one", "-A"), "-A"),
        (("backtest", "-o", "csv"), "--output"),
        (("backtest", "one", "two"), "expected NAME or `report NAME`, got 'one two'"),
        (("backtest", "one", "--run", "1"), "--run, --save and --open go with"),
        (("backtest", "report", "Bad_Name"), "NAME"),
        (("backtest", "report", "one", "-A"), "-A"),
        (("backtest", "report", "one", "--run", "-1"), "--run"),
        (("backtest", "report", "one", "--save", "-", "--open"), "--open"),
    ],
)
def test_backtest_bad_input_exits_2(backtests: FakeDesk, args: tuple[str, ...], named: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert named in result.output and "Traceback" not in result.output


def _with_output(desk: FakeDesk) -> FakeDesk:
    for name, obj in desk.backtests.items():
        if name != "new":
            obj["spec"]["output"] = {"claimName": "results"}
    desk.backtests["sweep"]["status"].update(
        phase="Succeeded", report={"claimName": "results", "path": "reports/desk/sweep/u2/2.html"}
    )
    return desk


def test_backtest_report_saves_the_html_and_says_where_it_came_from(
    backtests: FakeDesk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_output(backtests)
    monkeypatch.chdir(tmp_path)
    result = run("backtest", "report", "one", "-n", NS)
    assert result.exit_code == 0, result.output
    assert result.output == (
        "report of backtest.hean.io/one saved to one.html (39 bytes, from "
        "reports/desk/one/u1/0.html on claim results)\n"
    )
    assert (tmp_path / "one.html").read_text() == "<html>reports/desk/one/u1/0.html</html>"
    assert backtests.report_reads == [("one", None, 120.0)]
    # a sweep's other run, to a named file, as JSON
    result = run(
        "backtest", "report", "sweep", "-n", NS, "--run", "1", "--save", "r1.html",
        "--timeout", "30", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["file"] == "r1.html" and doc["run"] == 1
    assert doc["report"] == {"claimName": "results", "path": "reports/desk/sweep/u2/1.html"}
    assert doc["stats"]["sharpe"] == "0.10"
    assert (tmp_path / "r1.html").read_text() == "<html>reports/desk/sweep/u2/1.html</html>"
    assert backtests.report_reads[-1] == ("sweep", 1, 30.0)
    # the default file name of a run says which
    assert run("backtest", "report", "sweep", "-n", NS, "--run", "0").exit_code == 0
    assert (tmp_path / "sweep-run-0.html").is_file()
    # the text of `backtest NAME` says how to open it
    assert "Open it:              kubectl hean backtest report one -n desk --open" in (
        run("backtest", "one", "-n", NS).output
    )


def test_backtest_report_to_stdout_is_the_html_alone(backtests: FakeDesk) -> None:
    _with_output(backtests)
    result = run("backtest", "report", "one", "-n", NS, "--save", "-")
    assert (result.exit_code, result.stdout) == (0, "<html>reports/desk/one/u1/0.html</html>")


def test_backtest_report_open_opens_the_saved_file(
    backtests: FakeDesk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    _with_output(backtests)
    monkeypatch.chdir(tmp_path)
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    assert run("backtest", "report", "one", "-n", NS, "--open").exit_code == 0
    assert opened == [(tmp_path / "one.html").as_uri()]


def test_a_reader_pod_left_behind_is_a_warning_with_the_way_to_remove_it(
    backtests: FakeDesk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_output(backtests)
    monkeypatch.chdir(tmp_path)
    backtests.reader_cleanup = "forbidden: your Kubernetes user may not delete pods"
    result = run("backtest", "report", "one", "-n", NS)
    assert result.exit_code == 0
    assert (
        "warning: the reader pod desk/one-report-x1z2q is still there (forbidden: your "
        "Kubernetes user may not delete pods); it ends by itself within 15 minutes, or: "
        "kubectl delete pod one-report-x1z2q -n desk"
    ) in result.stderr
    assert (tmp_path / "one.html").is_file()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("new", "Backtest desk/new has no report: it has no spec.output claim, so only its "
         "summary was kept (kubectl hean backtest new shows it)"),
        ("running", "Backtest desk/running is Running (1 of 4 runs finished): its report is "
         "written when it has Succeeded (kubectl hean backtest running shows its progress)"),
        ("failed", "Backtest desk/failed Failed (BackoffLimitExceeded): it has no report"),
        ("bare", "Backtest desk/bare Succeeded but its status names no report"),
    ],
)  # fmt: skip
def test_backtest_report_without_a_report_to_read_exits_2(
    backtests: FakeDesk, name: str, says: str
) -> None:
    output = {"output": {"claimName": "results"}}
    backtests.backtests["running"] = backtest_object(
        "running", phase="Running", message="1 of 4 runs finished"
    )
    backtests.backtests["failed"] = backtest_object(
        "failed", phase="Failed", message="BackoffLimitExceeded"
    )
    backtests.backtests["bare"] = backtest_object("bare", phase="Succeeded")
    for key in ("running", "failed", "bare"):
        backtests.backtests[key]["spec"].update(output)
    result = run("backtest", "report", name, "-n", NS)
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {says}\n"
    assert backtests.report_reads == []


def test_backtest_report_of_a_run_the_sweep_does_not_have_exits_2(backtests: FakeDesk) -> None:
    _with_output(backtests)
    result = run("backtest", "report", "sweep", "-n", NS, "--run", "3")
    assert result.exit_code == 2
    assert result.output == (
        "error: --run: 3 is not a run of Backtest desk/sweep (it has 3: 0 to 2)\n"
    )
    single = run("backtest", "report", "one", "-n", NS, "--run", "1")
    assert single.exit_code == 2 and "it has 1: 0 to 0" in single.output


def test_an_unknown_backtest_exits_1_with_its_name(backtests: FakeDesk) -> None:
    result = run("backtest", "nope", "-n", NS)
    assert result.exit_code == 1
    assert result.output == f"error: no Backtest 'nope' in namespace '{NS}'\n"


class _RefusingApi:
    """CustomObjectsApi that answers every call with one status, as the API server would."""

    def __init__(self, status: int) -> None:
        self.status = status

    def _refuse(self, *args: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        error = ApiException(status=self.status, reason="Forbidden")
        error.body = json.dumps({"message": f"backtests.hean.io is refused ({self.status})"})
        raise error

    list_cluster_custom_object = list_namespaced_custom_object = _refuse
    get_namespaced_custom_object = _refuse


def test_the_client_says_which_verb_rbac_refused_for_backtests() -> None:
    from hean_desk.client import DeskClient

    client = DeskClient.__new__(DeskClient)
    client._custom = _RefusingApi(403)  # type: ignore[assignment]
    with pytest.raises(DeskError, match=r"may not list backtests\.hean\.io in all namespaces"):
        client.list_backtests(None)
    with pytest.raises(DeskError, match=r"may not get backtests\.hean\.io in namespace 'desk'"):
        client.get_backtest(NS, "one")
    client._custom = _RefusingApi(404)  # type: ignore[assignment]
    with pytest.raises(DeskError, match=r"^no Backtest 'one' in namespace 'desk'$"):
        client.get_backtest(NS, "one")


def test_the_client_reads_backtests_leniently_and_sorted() -> None:
    from hean_desk.client import DeskClient

    class Listing:
        def list_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
            assert args[-2:] == (NS, "backtests")
            return {"items": [backtest_object("b", phase="Failed"), backtest_object("a")]}

    client = DeskClient.__new__(DeskClient)
    client._custom = Listing()  # type: ignore[assignment]
    views = client.list_backtests(NS)
    assert [(v.name, v.phase) for v in views] == [("a", "Pending"), ("b", "Failed")]
