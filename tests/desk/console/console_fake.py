"""A fake of the plugin's client for the console's tests: engines, reports and
history held in memory, a watch fed by the test, and a switch that makes the
API server refuse patches as RBAC would (403)."""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator
from typing import Any

from hean_contract.report import EngineReport
from hean_desk.report_reader import report_target
from hean_desk.views import BacktestView

# What must never reach a page: the engine's control token and a Secret's data.
CONTROL_TOKEN = "ctl-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SECRET_DATA = "c2VjcmV0LWFwaS1rZXktZGF0YQ=="


class Forbidden(Exception):
    """What the client raises when the API server answers 403."""

    status = 403


class NotFound(Exception):
    status = 404


def engine_object(namespace: str, name: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "annotations": {
                # kubectl apply keeps the whole manifest here: never shown
                "kubectl.kubernetes.io/last-applied-configuration": f'{{"t": "{CONTROL_TOKEN}"}}'
            },
        },
        "spec": {
            "mode": status.pop("mode", "paper"),
            "exchange": {"id": "binance", "credentialsSecret": "binance-keys"},
            "market": {"symbol": "BTC/USDT", "timeframe": "1m"},
            "strategy": {"name": "ema_cross", "params": {"fast": 3, "slow": 8}},
            "risk": {
                "maxOrderNotional": "10000",
                "maxPositionNotional": "20000",
                "maxOpenOrders": 4,
                "maxDailyLoss": "5000",
                "maxDrawdownPct": "20",
                "maxOrdersPerMinute": 30,
            },
            "paused": False,
            "halt": False,
        },
        "status": {
            "phase": "Running",
            "mode": "paper",
            "riskState": "ACTIVE",
            "equity": "100000",
            "pnl": "0",
            **status,
        },
    }


def report_for(namespace: str, name: str, **overrides: Any) -> EngineReport:
    document: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "generation": 1,
        "runId": "run-1",
        "mode": "paper",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "strategy": "ema_cross",
        "ready": True,
        "readyReason": "Running",
        "riskState": "ACTIVE",
        "paused": False,
        "position": "0.5",
        "balances": {"BTC": "0.5", "USDT": "85000.12345678"},
        "equity": "100012.5",
        "pnl": "12.5",
        "maxDrawdown": "3.25",
        "fees": "1.5",
        "openOrders": [
            {
                "id": "o-7",
                "side": "sell",
                "type": "limit",
                "quantity": "0.5",
                "remaining": "0.5",
                "price": "30100.5",
                "created": "2026-01-02T03:04:05Z",
            }
        ],
        "ordersSubmitted": 7,
        "ordersClosed": {"filled": 6},
        "fills": 2,
        "rejections": {},
        "events": 3,
    }
    document.update(overrides)
    return EngineReport.model_validate(document)


def fill(trade_id: str, side: str, price: str, quantity: str, time: str) -> dict[str, Any]:
    return {
        "tradeId": trade_id,
        "orderId": f"ex-{trade_id}",
        "clientOrderId": f"c-{trade_id}",
        "side": side,
        "price": price,
        "quantity": quantity,
        "fee": "0.0123456789",
        "feeCurrency": "USDT",
        "time": time,
    }


class FakeClient:
    """In-memory engines; `push` feeds the watch; `forbid_patch` turns on RBAC refusal."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.engines: dict[str, dict[str, Any]] = {}
        self.reports: dict[str, EngineReport] = {}
        self.history: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.k8s_events: dict[str, list[dict[str, Any]]] = {}
        self.log_text: dict[str, str] = {}
        self.approvals: list[dict[str, Any]] = []
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.backtests: dict[str, dict[str, Any]] = {}
        self.forbid_patch = False
        self.forbid_list = False
        self.forbid_backtests = False
        self.report_reads = 0
        self.report_files: list[tuple[str, int | None]] = []  # what backtest_report read
        self.readers_closed = 0
        self.listed = threading.Event()  # set by every list of the engines
        self.history_reads: list[tuple[str, str | None]] = []  # (what, since) of each read
        self._watch: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()

    def add(self, engine: dict[str, Any]) -> str:
        meta = engine["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        with self.lock:
            self.engines[key] = engine
        return key

    def push(self, kind: str, engine: dict[str, Any]) -> None:
        """A watch event, as the API server would send it after a change."""
        if kind == "DELETED":
            with self.lock:
                self.engines.pop(f"{engine['metadata']['namespace']}/{engine['metadata']['name']}")
        else:
            self.add(engine)
        self._watch.put((kind, copy.deepcopy(engine)))

    def close(self) -> None:
        self._watch.put(None)

    # -- the ConsoleClient protocol -------------------------------------------------------

    def list_engines(self, namespace: str | None = None) -> list[dict[str, Any]]:
        self.listed.set()
        if self.forbid_list:
            raise Forbidden('tradingengines.hean.io is forbidden: User "viewer" cannot list')
        with self.lock:
            return [
                copy.deepcopy(e)
                for k, e in self.engines.items()
                if namespace in (None, k.split("/")[0])
            ]

    def get_engine(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            engine = self.engines.get(f"{namespace}/{name}")
        if engine is None:
            raise NotFound(f"tradingengines.hean.io {name!r} not found")
        return copy.deepcopy(engine)

    def engine_report(self, namespace: str, name: str) -> EngineReport:
        self.report_reads += 1
        report = self.reports.get(f"{namespace}/{name}")
        if report is None:
            raise ConnectionError("the engine's pod is not running")
        return report

    def engine_history(
        self,
        namespace: str,
        name: str,
        what: str,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        with self.lock:
            self.history_reads.append((what, since))
            rows = list(self.history.get((f"{namespace}/{name}", what), []))
        rows = [
            r
            for r in rows
            if (since is None or r["time"] >= since) and (until is None or r["time"] < until)
        ]
        return rows[-limit:] if limit else rows

    def patch_spec(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        if self.forbid_patch:
            raise Forbidden(
                f'tradingengines.hean.io "{name}" is forbidden: User "viewer" cannot patch resource'
            )
        self.patches.append((namespace, name, patch))
        engine = self.get_engine(namespace, name)
        engine["spec"].update(patch)
        if patch.get("halt"):
            engine["status"].update(phase="Halted", riskState="HALTED")
        self.push("MODIFIED", engine)
        return engine

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return list(self.k8s_events.get(f"{namespace}/{name}", []))

    def logs(self, namespace: str, name: str, tail: int = 200) -> str:
        return self.log_text.get(f"{namespace}/{name}", "")

    def list_approvals(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return copy.deepcopy(self.approvals)

    def list_backtests(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if self.forbid_backtests:
            raise Forbidden('backtests.hean.io is forbidden: User "viewer" cannot list')
        with self.lock:
            return [
                copy.deepcopy(b)
                for k, b in self.backtests.items()
                if namespace in (None, k.split("/")[0])
            ]

    def get_backtest(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            found = self.backtests.get(f"{namespace}/{name}")
        if found is None:
            raise NotFound(f"backtests.hean.io {name!r} not found")
        return copy.deepcopy(found)

    def backtest_report(self, namespace: str, name: str, run: int | None = None) -> bytes:
        """As DeskSource: refused without a report; a small report page otherwise."""
        target = report_target(BacktestView.from_object(self.get_backtest(namespace, name)), run)
        self.report_files.append((f"{namespace}/{name}", run))
        return (
            f"<!doctype html><html><head><style>h1 {{color: #123}}</style></head><body>"
            f'<h1>{target.path}</h1><svg id="equity-chart"></svg>'
            f'<table id="stats"><tr><td data-key="sharpe" data-value="1.2345">1.23</td></tr>'
            f"</table></body></html>"
        ).encode()

    def close_report_readers(self) -> None:
        self.readers_closed += 1

    def watch_engines(self) -> Iterator[tuple[str, dict[str, Any]]]:
        while True:
            event = self._watch.get()
            if event is None:
                return
            yield event


def approval(namespace: str, engine: str, expires: str, *, valid: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "LiveApproval",
        "metadata": {"name": f"{engine}-approval", "namespace": namespace},
        "spec": {
            "engineRef": {"name": engine},
            "engineUid": "uid-1",
            "specHash": "ab" * 32,
            "notBefore": "2026-01-01T00:00:00Z",
            "expiresAt": expires,
            "nonce": "n-1",
            "signatures": [
                {"keyId": "alice", "signature": "c2ln"},
                {"keyId": "bob", "signature": "c2ln"},
            ],
        },
        "status": {
            "valid": valid,
            "reason": "valid" if valid else "expired",
            "message": "2 of 2 required keys" if valid else "expired at " + expires,
            "keyIds": ["alice", "bob"],
        },
    }


def demo_client() -> FakeClient:
    """Three engines in two namespaces: a paper one trading, a live one drifting, a paused one."""
    client = FakeClient()
    client.add(
        engine_object(
            "desk", "btc", equity="100012.5", pnl="12.5", lastDataTime="2026-01-02T03:05:00Z"
        )
    )
    client.add(
        engine_object(
            "desk",
            "eth-live",
            mode="live",
            equity="5230.75",
            pnl="-19.25",
            reconcile={
                "result": "drift",
                "drift": "USDT differs by 3.5",
                "time": "2026-01-02T03:00:00Z",
            },
        )
    )
    client.add(engine_object("research", "sol", phase="Paused", equity="25000", pnl="0"))
    client.reports["desk/btc"] = report_for("desk", "btc")
    client.reports["desk/eth-live"] = report_for(
        "desk",
        "eth-live",
        mode="live",
        lastReconcile={
            "result": "drift",
            "time": "2026-01-02T03:00:00Z",
            "balances": {
                "USDT": {"engine": "5234.25", "exchange": "5230.75", "difference": "-3.5"}
            },
            "differenceValue": "3.5",
            "tolerance": "1",
            "foreignOrders": [{"id": "77", "clientOrderId": "by-hand-1", "side": "sell"}],
            "summary": "USDT differs by 3.5; 1 foreign open order(s)",
            "driftSince": "2026-01-02T02:59:00Z",
        },
    )
    client.history[("desk/btc", "fills")] = [
        fill("t-1", "buy", "29950.12", "0.25", "2026-01-02T03:01:00Z"),
        fill("t-2", "buy", "29960.5", "0.25", "2026-01-02T03:02:00Z"),
        fill("t-3", "sell", "30010", "0.1", "2026-01-02T03:03:00Z"),
    ]
    client.history[("desk/btc", "equity")] = [
        {
            "time": f"2026-01-02T03:{m:02d}:00Z",
            "equity": eq,
            "pnl": "0",
            "baseline": "100000",
            "position": "0.5",
            "price": "30000",
        }
        for m, eq in enumerate(["100000", "100004.5", "99990.25", "99996", "100008", "100012.5"])
    ]
    client.k8s_events["desk/btc"] = [
        {
            "type": "Normal",
            "reason": "Running",
            "message": "engine pod running",
            "count": 1,
            "lastTimestamp": "2026-01-02T03:00:00Z",
        },
    ]
    client.log_text["desk/btc"] = (
        '{"event": "fill", "tradeId": "t-1"}\n'
        f'{{"event": "control", "token": "{CONTROL_TOKEN}"}}\n'
        f"Authorization: Bearer {CONTROL_TOKEN}\n"
        f"apiKey={SECRET_DATA}\n"
    )
    client.approvals = [approval("desk", "eth-live", "2099-01-01T00:00:00Z")]
    for item in (
        backtest_object(
            "desk",
            "ema-jan",
            phase="Succeeded",
            stats=BACKTEST_STATS,
            report={"claimName": "backtest-results", "path": "reports/desk/ema-jan/u-1/0.html"},
        ),
        backtest_object(
            "research",
            "ema-sweep",
            phase="Succeeded",
            params={"fast": 10, "slow": 50},
            stats=BACKTEST_STATS,
            sweep={
                "runs": 4,
                "succeeded": 3,
                "failed": 0,
                "skipped": 1,
                "rankBy": "sharpe",
                "top": [
                    {
                        "index": 3,
                        "params": {"fast": 10, "slow": 50},
                        "value": "1.2345",
                        "stats": BACKTEST_STATS,
                    },
                    {
                        "index": 0,
                        "params": {"fast": 5, "slow": 20},
                        "value": "-0.50",
                        "stats": {"totalReturnPct": "-2.5", "trades": 9},
                    },
                ],
            },
            report={
                "claimName": "backtest-results",
                "path": "reports/research/ema-sweep/u-2/3.html",
            },
        ),
        backtest_object("desk", "queued"),
    ):
        meta = item["metadata"]
        if "report" in item["status"]:
            item["spec"]["output"] = {"claimName": item["status"]["report"]["claimName"]}
        client.backtests[f"{meta['namespace']}/{meta['name']}"] = item
    return client


# A status's statistics, as the operator writes them (decimal strings), and one from a newer
# operator that this client does not know (dropped, not a failure).
BACKTEST_STATS = {
    "totalReturnPct": "12.3456789",
    "maxDrawdownPct": "4.10",
    "sharpe": "1.2345",
    "sortino": "2.000",
    "trades": 57,
    "fees": "123.45678901",
    "undefined": ["calmar"],
    "statFromTheFuture": "7",
}


def backtest_object(namespace: str, name: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "Backtest",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": f'{{"t": "{CONTROL_TOKEN}"}}'
            },
        },
        "spec": {
            "market": {"symbol": "BTC/USD", "timeframe": "1m"},
            "strategy": {"name": "ema_cross", "params": {"fast": 5, "slow": 20}},
            "risk": {"maxOrderNotional": "10000"},
            "from": "2018-01-01T00:00:00Z",
            "to": "2018-02-01T00:00:00Z",
            "data": {"volume": {"claimName": "market-data", "path": "btc.csv.gz"}},
        },
        "status": status,
    }
