"""Monitoring: what renders when, and that alerts and the dashboard use real metrics.

The metric names the engine and the operator export are read from their
source (engine/hean_engine/control/metrics.py, operator/hean_operator/metrics.py)
with `ast`, and expanded the way Prometheus exposes them: counters get
`_total`, histograms `_bucket`, `_sum` and `_count`. Every alert expression
and dashboard query is parsed as PromQL, and each metric it selects must be
one of them.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import promql_parser
import pytest
from chart_support import NAMESPACE, REPO_ROOT, Helm, objects_of, one_of, watched

from hean_contract.status import Phase
from hean_engine.control.runtime import RunMode
from hean_engine.model.orders import OrderStatus, Reject, RiskState
from hean_operator.builders.common import EngineRef, labels

Rendered = Callable[[str], list[dict[str, Any]]]

ENGINE_METRICS_PY = REPO_ROOT / "engine" / "hean_engine" / "control" / "metrics.py"
OPERATOR_METRICS_PY = REPO_ROOT / "operator" / "hean_operator" / "metrics.py"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks"

# Metrics that alerts may use before the code exports them. Remove an entry
# once its metric exists (test_future_metrics_are_not_exported_yet says when).
FUTURE_METRICS: set[str] = set()
# Series Prometheus makes itself for every scrape target.
PROMETHEUS_BUILTIN = {"up"}

REQUIRED_ALERTS = {
    "HeanEngineHalted",
    "HeanEngineNotReady",
    "HeanExchangeDrift",
    "HeanMarketDataStale",
    "HeanDrawdownNearLimit",
    "HeanOperatorReconcileErrors",
    "HeanLiveApprovalExpiringSoon",
}

# Label values the alerts and dashboard may match on, from the code's enums.
LABEL_VALUES = {
    "state": {s.value for s in RiskState},
    "reason": {r.value for r in Reject},
    "status": {s.value for s in OrderStatus},
    "phase": {p.value for p in Phase},
    "mode": set(get_args(RunMode)),
}


# -- the metrics in the code ------------------------------------------------------


def _exposed(name: str, kind: str) -> set[str]:
    if kind == "counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    return {name}


def _engine_metrics() -> set[str]:
    tree = ast.parse(ENGINE_METRICS_PY.read_text())
    prefix = next(
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "PREFIX" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func.id if isinstance(node.func, ast.Name) else None
        first = node.args[0]
        if func in ("gauge", "counter") and isinstance(first, ast.Constant):
            found |= _exposed(f"{prefix}_{first.value}", func)
        elif func in ("GaugeMetricFamily", "CounterMetricFamily") and isinstance(
            first, ast.JoinedStr
        ):
            text = "".join(
                prefix
                if isinstance(part, ast.FormattedValue)
                and isinstance(part.value, ast.Name)
                and part.value.id == "PREFIX"
                else str(part.value)
                if isinstance(part, ast.Constant)
                else "?"
                for part in first.values
            )
            found |= _exposed(text, "counter" if func.startswith("Counter") else "gauge")
    return found


def _operator_metrics() -> set[str]:
    kinds = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram"}
    found: set[str] = set()
    for node in ast.walk(ast.parse(OPERATOR_METRICS_PY.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in kinds
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found |= _exposed(node.args[0].value, kinds[node.func.id])
    return found


KNOWN_METRICS = _engine_metrics() | _operator_metrics()


def test_metric_extraction_finds_the_documented_metrics() -> None:
    """Guards the ast reading above against a refactoring of the metrics modules."""
    for name in (
        "hean_engine_equity",
        "hean_engine_pnl",
        "hean_engine_risk_state",
        "hean_engine_ready",
        "hean_engine_open_orders",
        "hean_engine_rejections_total",
        "hean_engine_orders_closed_total",
        "hean_engine_last_data_age_seconds",
        "hean_engine_drawdown_percent",
        "hean_engine_max_drawdown_limit_percent",
        "hean_engine_info",
        "hean_operator_reconciles_total",
        "hean_operator_reconcile_errors_total",
        "hean_operator_engines",
        "hean_operator_engine_poll_seconds_bucket",
        "hean_operator_engine_poll_failures_total",
    ):
        assert name in KNOWN_METRICS, name
    assert "hean_operator_reconciles_total_total" not in KNOWN_METRICS
    assert all(name.startswith(("hean_engine_", "hean_operator_")) for name in KNOWN_METRICS)


def test_future_metrics_are_not_exported_yet() -> None:
    done = FUTURE_METRICS & KNOWN_METRICS
    assert not done, f"{done} exist now: remove them from FUTURE_METRICS"


# -- PromQL -----------------------------------------------------------------------


def _selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """Every vector selector of a PromQL expression (which must parse)."""
    try:
        parsed = promql_parser.parse(expr)
    except ValueError as exc:
        pytest.fail(f"not valid PromQL ({exc}): {expr}")
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(parsed, visit)
    return found


def _check_expr(expr: str, allowed: set[str], where: str) -> set[str]:
    names: set[str] = set()
    for selector in _selectors(expr):
        assert selector.name, f"{where}: a selector without a metric name: {expr}"
        assert selector.name in allowed, f"{where}: {selector.name} is not exported by the code"
        names.add(selector.name)
        for matcher in selector.matchers.matchers:
            if matcher.name in LABEL_VALUES and matcher.op == promql_parser.MatchOp.Equal:
                assert matcher.value in LABEL_VALUES[matcher.name], (
                    f"{where}: {matcher.name}={matcher.value!r} never occurs"
                )
    return names


def test_promql_check_catches_unknown_metrics() -> None:
    with pytest.raises(AssertionError, match="not exported"):
        _check_expr("rate(hean_engine_bogus_total[5m])", KNOWN_METRICS, "t")
    with pytest.raises(AssertionError, match="never occurs"):
        _check_expr('hean_engine_risk_state{state="PANIC"}', KNOWN_METRICS, "t")
    with pytest.raises(pytest.fail.Exception, match="not valid PromQL"):
        _check_expr("sum(hean_engine_equity", KNOWN_METRICS, "t")


# -- when monitoring objects render -----------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("defaults", set()),
        ("namespaced", set()),
        ("defaults-monitoring-api", {"ServiceMonitor", "PodMonitor", "PrometheusRule"}),
        ("namespaced-monitoring-api", {"ServiceMonitor", "PodMonitor", "PrometheusRule"}),
        ("customised", {"ServiceMonitor", "PodMonitor", "PrometheusRule"}),
        ("monitoring-disabled", set()),
        ("no-api-check", {"ServiceMonitor", "PodMonitor", "PrometheusRule"}),
    ],
)
def test_monitoring_objects_follow_the_api_and_values(
    rendered: Rendered, scenario: str, expected: set[str]
) -> None:
    objects = rendered(scenario)
    kinds = {o["kind"] for o in objects if o["apiVersion"] == "monitoring.coreos.com/v1"}
    assert kinds == expected
    dashboards = [
        o
        for o in objects_of(objects, "ConfigMap")
        if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert len(dashboards) == (0 if scenario == "monitoring-disabled" else 1)


def test_each_monitoring_object_can_be_turned_off(helm: Helm) -> None:
    for key, kind in (
        ("serviceMonitor", "ServiceMonitor"),
        ("podMonitor", "PodMonitor"),
        ("prometheusRule", "PrometheusRule"),
    ):
        objects = helm.template(
            {"monitoring": {key: {"enabled": False}}},
            api_versions=["monitoring.coreos.com/v1"],
        )
        kinds = {o["kind"] for o in objects if o["apiVersion"] == "monitoring.coreos.com/v1"}
        assert kinds == {"ServiceMonitor", "PodMonitor", "PrometheusRule"} - {kind}


def test_service_monitor_scrapes_the_operator(rendered: Rendered) -> None:
    objects = rendered("defaults-monitoring-api")
    monitor = one_of(objects, "ServiceMonitor")
    service = one_of(objects, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize("scenario", ["defaults-monitoring-api", "namespaced-monitoring-api"])
def test_pod_monitor_scrapes_engine_pods(rendered: Rendered, scenario: str) -> None:
    monitor = one_of(rendered(scenario), "PodMonitor")
    engine_labels = labels(EngineRef("e", "ns", "uid", 1), "engine")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= engine_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "engine"
    # The operator's own pod must not match.
    operator = one_of(rendered(scenario), "Deployment")
    pod_labels = operator["spec"]["template"]["metadata"]["labels"]
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    namespaces = watched(scenario)
    expected = {"matchNames": namespaces} if namespaces else {"any": True}
    assert monitor["spec"]["namespaceSelector"] == expected


def test_monitoring_labels_are_applied(rendered: Rendered) -> None:
    for obj in rendered("customised"):
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# -- alerts -----------------------------------------------------------------------


def _alerts(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rule = one_of(objects, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def test_required_alerts_exist(rendered: Rendered) -> None:
    names = [a["alert"] for a in _alerts(rendered("defaults-monitoring-api"))]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED_ALERTS


@pytest.mark.parametrize("scenario", ["defaults-monitoring-api", "customised"])
def test_alert_expressions_use_exported_metrics(rendered: Rendered, scenario: str) -> None:
    allowed = KNOWN_METRICS | FUTURE_METRICS | PROMETHEUS_BUILTIN
    used: set[str] = set()
    for alert in _alerts(rendered(scenario)):
        used |= _check_expr(alert["expr"], allowed, alert["alert"])
    # The alerts the issue asked for use the metrics it named.
    assert {
        "hean_engine_risk_state",
        "hean_engine_ready",
        "hean_engine_last_data_age_seconds",
        "hean_engine_drawdown_percent",
        "hean_engine_max_drawdown_limit_percent",
        "hean_operator_reconcile_errors_total",
        "hean_operator_liveapproval_expiry_timestamp_seconds",
    } <= used


def test_alerts_are_complete(rendered: Rendered) -> None:
    for alert in _alerts(rendered("customised")):
        name = alert["alert"]
        assert re.fullmatch(r"Hean[A-Za-z]+", name), name
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert alert["labels"]["team"] == "quant", name  # additionalAlertLabels
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", alert["for"]), name


def test_thresholds_come_from_values(helm: Helm) -> None:
    objects = helm.template(
        {
            "monitoring": {
                "prometheusRule": {
                    "thresholds": {
                        "marketDataStaleSeconds": 7200,
                        "drawdownLimitFraction": 0.5,
                        "approvalExpiryHours": 72,
                    }
                }
            }
        },
        api_versions=["monitoring.coreos.com/v1"],
    )
    exprs = {a["alert"]: a["expr"] for a in _alerts(objects)}
    assert exprs["HeanMarketDataStale"].rstrip().endswith("> 7200")
    assert "0.5 * max by" in exprs["HeanDrawdownNearLimit"]
    assert "< 72 * 3600" in exprs["HeanLiveApprovalExpiringSoon"]


def test_every_alert_has_a_runbook(rendered: Rendered) -> None:
    alerts = _alerts(rendered("defaults-monitoring-api"))
    for alert in alerts:
        name = alert["alert"]
        url = alert["annotations"]["runbook_url"]
        assert url.endswith(f"/docs/runbooks/{name}.md"), (name, url)
        page = RUNBOOKS / f"{name}.md"
        assert page.is_file(), f"missing runbook {page.relative_to(REPO_ROOT)}"
        text = page.read_text()
        assert text.startswith(f"# {name}\n"), page
        for section in ("## What it means", "## Diagnose", "## What to do"):
            assert section in text, f"{page.name}: no {section!r}"
        assert "kubectl" in text, page.name
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == {a["alert"] for a in alerts}, "a runbook without an alert, or vice versa"
    index = (RUNBOOKS / "README.md").read_text()
    for name in pages:
        assert f"({name}.md)" in index, f"docs/runbooks/README.md does not list {name}"


# -- the Grafana dashboard --------------------------------------------------------

GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def _dashboard(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = [
        o
        for o in objects_of(objects, "ConfigMap")
        if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    (text,) = config_map["data"].values()
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert match, f"variable {variable['name']}: {query}"
            found.append((f"variable {variable['name']}", match.group(1)))
    return found


def test_dashboard_is_the_shipped_file(rendered: Rendered) -> None:
    dashboard = _dashboard(rendered("defaults"))
    shipped = json.loads(
        (Path(REPO_ROOT) / "charts" / "hean" / "files" / "dashboards" / "hean.json").read_text()
    )
    assert dashboard == shipped
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_dashboard_queries_use_exported_metrics(rendered: Rendered) -> None:
    dashboard = _dashboard(rendered("defaults"))
    used: set[str] = set()
    for where, expr in _queries(dashboard):
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        used |= _check_expr(expr, KNOWN_METRICS | PROMETHEUS_BUILTIN, where)
    # What the dashboard must show: every engine's books, risk state, orders,
    # rejections by reason, data age; and the operator's health.
    assert {
        "hean_engine_equity",
        "hean_engine_pnl",
        "hean_engine_risk_state",
        "hean_engine_open_orders",
        "hean_engine_orders_submitted_total",
        "hean_engine_rejections_total",
        "hean_engine_last_data_age_seconds",
        "hean_operator_engines",
        "hean_operator_reconciles_total",
        "hean_operator_reconcile_errors_total",
        "hean_operator_engine_poll_seconds_bucket",
        "hean_operator_engine_poll_failures_total",
    } <= used
    rejections = [e for _, e in _queries(dashboard) if "hean_engine_rejections_total" in e]
    assert any("reason" in e for e in rejections), "rejections are not broken down by reason"


def test_dashboard_datasource_is_a_variable(rendered: Rendered) -> None:
    dashboard = _dashboard(rendered("defaults"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_configmap_placement(rendered: Rendered) -> None:
    (default,) = [
        o for o in objects_of(rendered("defaults"), "ConfigMap") if "hean.json" in o["data"]
    ]
    assert default["metadata"]["namespace"] == NAMESPACE
    (custom,) = [
        o for o in objects_of(rendered("customised"), "ConfigMap") if "hean.json" in o["data"]
    ]
    assert custom["metadata"]["namespace"] == "monitoring"
    assert custom["metadata"]["annotations"] == {"grafana_folder": "HEAN"}
