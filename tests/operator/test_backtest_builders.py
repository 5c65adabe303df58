"""The Backtest's pure parts, without a cluster: its runs, its Job, its status."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from hean_contract.backtest import (
    UNUSED_FIELDS,
    BacktestSpec,
    RankMetric,
    combinations,
    parse_backtest_spec,
)
from hean_contract.errors import ConfigError
from hean_contract.spec import parse_manifest
from hean_operator.builders.job import (
    BacktestRef,
    JobSettings,
    build_configmap,
    build_job,
)
from hean_operator.builders.pod import EngineImage
from hean_operator.crds.backtest import build_backtest_crd
from hean_operator.handlers.backtests import (
    INDEX_ANNOTATION,
    RunResult,
    derive_status,
    ensure_children,
    rank,
    run_outcome,
)
from hean_operator.kube.backtests import AlreadyExists

REF = BacktestRef(name="ema", namespace="research", uid="0123456789abcdef", generation=1)
IMAGE = EngineImage(image="ghcr.io/hean-io/hean-engine:0.1.0")
NOW = "2026-01-01T00:00:00Z"


def _spec(**overrides: Any) -> BacktestSpec:
    spec: dict[str, Any] = {
        "market": {"symbol": "BTC/USD"},
        "strategy": {"name": "ema_cross", "params": {"fast": 5, "slow": 20, "quantity": "0.1"}},
        "risk": {
            "maxOrderNotional": "1000",
            "maxPositionNotional": "5000",
            "maxDailyLoss": "1000",
            "maxDrawdownPct": "50",
        },
        "from": "2017-01-01T00:00:00Z",
        "to": "2017-01-04T00:00:00Z",
        "data": {"volume": {"claimName": "market-data", "path": "btc/1m.csv.gz"}},
    }
    spec.update(overrides)
    return parse_backtest_spec(spec)


def _job(spec: BacktestSpec, runs: int = 1) -> dict[str, Any]:
    return build_job(REF, spec, runs, IMAGE, JobSettings())


def test_one_run_is_an_indexed_job_of_one_owned_by_the_backtest() -> None:
    job = _job(_spec(output={"claimName": "results"}))
    assert job["metadata"]["name"] == "ema-backtest"
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "hean.io/v1alpha1",
            "kind": "Backtest",
            "name": "ema",
            "uid": REF.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 1, 1)
    # a refused configuration fails its index at once; other failures retry once
    assert spec["backoffLimitPerIndex"] == 1
    (rule,) = spec["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailIndex" and rule["onExitCodes"]["values"] == [2]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == IMAGE.image
    assert container["command"] == [
        "hean", "engine", "backtest",
        "--config", "/etc/hean/backtest/engine.yaml",
        "--runs", "/etc/hean/backtest/runs.json",
        "--from", "2017-01-01T00:00:00Z", "--to", "2017-01-04T00:00:00Z",
        "--warmup", "200",
        "--data", "/var/lib/hean/data/btc/1m.csv.gz",
        "--output-dir", "/var/lib/hean/output/reports/research/ema/01234567",
    ]  # fmt: skip
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert {"name": "HEAN_TERMINATION_MESSAGE_PATH", "value": "/dev/termination-log"} in container[
        "env"
    ]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {
        "claimName": "market-data",
        "readOnly": True,
    }
    assert volumes["output"]["persistentVolumeClaim"] == {"claimName": "results"}
    assert volumes["config"]["configMap"] == {"name": "ema-backtest"}


def test_a_sweep_runs_each_combination_within_its_parallelism() -> None:
    spec = _spec(sweep={"params": {"fast": [5, 10, 30], "slow": [20, 30]}, "parallelism": 3})
    runs, skipped = combinations(spec)
    # the grid in the order written; (30, 20) and (30, 30) refused by ema_cross
    assert runs == [
        {"fast": 5, "slow": 20},
        {"fast": 5, "slow": 30},
        {"fast": 10, "slow": 20},
        {"fast": 10, "slow": 30},
    ]
    assert skipped == 2
    job = _job(spec, len(runs))
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (4, 3)
    small = _job(_spec(sweep={"params": {"fast": [5]}, "parallelism": 8}))
    assert small["spec"]["parallelism"] == 1  # never more than the runs


def test_random_mode_samples_the_grid_the_same_way_every_time() -> None:
    sweep = {"params": {"fast": list(range(2, 12))}, "mode": "random", "samples": 4, "seed": 7}
    first, _ = combinations(_spec(sweep=sweep))
    again, _ = combinations(_spec(sweep=sweep))
    assert first == again and len(first) == 4
    assert len({r["fast"] for r in first}) == 4  # without replacement
    other, _ = combinations(_spec(sweep={**sweep, "seed": 8}))
    assert other != first


def test_too_many_or_no_acceptable_combinations_are_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"spec.sweep.params: 1089 combinations"):
        combinations(_spec(sweep={"params": {"fast": list(range(33)), "slow": list(range(33))}}))
    with pytest.raises(ConfigError, match="refuses every combination"):
        combinations(_spec(sweep={"params": {"fast": [40], "slow": [20]}}))


def test_an_engines_fields_a_backtest_never_uses_are_refused_naming_them() -> None:
    """paper.resetRequest and exchange.credentialsSecret mean nothing to a replay: refused,
    not silently ignored (the CRD leaves them out; the model refuses them too)."""
    with pytest.raises(ConfigError) as refused:
        _spec(
            exchange={"id": "binance", "credentialsSecret": "binance-keys"},
            paper={"startingBalances": {"USD": "10000"}, "resetRequest": "1"},
        )
    problems = refused.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("spec.exchange.credentialsSecret: not a Backtest field: ")
    assert "reads no keys" in problems[0]
    assert problems[1].startswith("spec.paper.resetRequest: not a Backtest field: ")
    # the same spec without them is valid, and so are the fields a Backtest does use
    spec = _spec(
        exchange={"id": "binance", "endpoint": "http://127.0.0.1:9100"},
        paper={"startingBalances": {"USD": "10000"}, "slippageBps": "2"},
    )
    assert spec.engine_spec().exchange.endpoint == "http://127.0.0.1:9100"


def test_the_crd_has_no_field_the_model_refuses() -> None:
    schema = build_backtest_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]["properties"]
    for part, names in UNUSED_FIELDS.items():
        assert set(names).isdisjoint(spec[part]["properties"]), part
    assert {"id", "endpoint", "testnet"} <= set(spec["exchange"]["properties"])
    assert {"startingBalances", "feeRate", "slippageBps"} <= set(spec["paper"]["properties"])


def test_the_configmap_holds_the_engine_config_and_the_runs() -> None:
    spec = _spec(paper={"startingBalances": {"USD": "10000"}, "feeRate": "0.002"})
    configmap = build_configmap(REF, spec, [{"fast": 3}, {"fast": 4}])
    identity, engine = parse_manifest(yaml.safe_load(configmap["data"]["engine.yaml"]))
    assert identity.name == "ema"
    assert engine.mode.value == "paper"
    assert engine.paper.fee_rate == spec.paper.fee_rate
    assert engine.strategy.params == {"fast": 5, "slow": 20, "quantity": "0.1"}
    assert json.loads(configmap["data"]["runs.json"]) == [{"fast": 3}, {"fast": 4}]
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == REF.uid


def test_a_configmap_or_fetched_data_source() -> None:
    small = _job(_spec(data={"configMap": {"name": "tiny", "key": "candles.csv"}}))
    container = small["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-2:] == ["--data", "/var/lib/hean/data/candles.csv"]
    volumes = {v["name"]: v for v in small["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["configMap"] == {
        "name": "tiny",
        "items": [{"key": "candles.csv", "path": "candles.csv"}],
    }
    fetched = _job(_spec(data={"fetch": {"cacheClaimName": "candle-cache"}}))
    container = fetched["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-3:] == ["--fetch", "--cache-dir", "/var/lib/hean/cache"]
    volumes = {v["name"]: v for v in fetched["spec"]["template"]["spec"]["volumes"]}
    assert volumes["cache"]["persistentVolumeClaim"] == {"claimName": "candle-cache"}


def test_an_image_is_the_allowlists_call() -> None:
    with pytest.raises(ConfigError, match=r"spec.image: the repository 'evil.example.com/x'"):
        _job(_spec(image="evil.example.com/x:1"))
    allowed = EngineImage(image=IMAGE.image, allowed_repositories=("registry.example.com/team/*",))
    job = build_job(REF, _spec(image="registry.example.com/team/rsi:2"), 1, allowed, JobSettings())
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example.com/team/rsi:2"
    )


# -- status -----------------------------------------------------------------------------


def _stats(sharpe: str, drawdown: str = "1", undefined: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "totalReturnPct": "1.5",
        "sharpe": sharpe,
        "maxDrawdownPct": drawdown,
        "trades": 3,
        "undefined": list(undefined),
    }


def _pod(index: int, phase: str, message: str, code: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {INDEX_ANNOTATION: str(index)}},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": code, "message": message}}}
            ],
        },
    }


def _done(index: int, stats: dict[str, Any], report: str | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {"index": index, "stats": stats}
    if report:
        summary["report"] = report
    return _pod(index, "Succeeded", json.dumps(summary))


def _job_status(**status: Any) -> dict[str, Any]:
    return {"metadata": {"uid": "job"}, "status": status}


def test_a_pod_says_its_result_or_why_it_failed() -> None:
    result = run_outcome(_done(2, _stats("1.25")))
    assert isinstance(result, RunResult) and result.index == 2
    assert result.stats.sharpe == "1.25" and result.stats.trades == 3
    failed = run_outcome(_pod(1, "Failed", "invalid configuration: spec.strategy.params.x", 2))
    assert failed is not None and not isinstance(failed, RunResult)
    assert failed.message.startswith("invalid configuration")
    assert run_outcome({"metadata": {}, "status": {"phase": "Running"}}) is None


def test_ranking_best_first_lowest_drawdown_first_undefined_last() -> None:
    def result(index: int, sharpe: str, drawdown: str, undefined: tuple[str, ...] = ()) -> Any:
        outcome = run_outcome(_done(index, _stats(sharpe, drawdown, undefined)))
        assert isinstance(outcome, RunResult)
        return outcome

    runs = [result(0, "0.5", "9"), result(1, "2", "3"), result(2, "0", "1", ("sharpe",))]
    runs.append(result(3, "2", "5"))
    assert [r.index for r in rank(runs, RankMetric.SHARPE)] == [1, 3, 0, 2]
    assert [r.index for r in rank(runs, RankMetric.MAX_DRAWDOWN_PCT)] == [2, 1, 3, 0]


def test_status_follows_the_job_from_pending_to_succeeded() -> None:
    spec = _spec(output={"claimName": "results"})
    runs, skipped = combinations(spec)
    pending = derive_status(REF, spec, runs, skipped, None, [], {}, NOW)
    assert pending["phase"] == "Pending"
    running = derive_status(REF, spec, runs, skipped, _job_status(active=1), [], pending, NOW)
    assert running["phase"] == "Running"
    done = _job_status(
        succeeded=1,
        startTime="2026-01-01T00:00:01Z",
        completionTime="2026-01-01T00:00:09Z",
        conditions=[{"type": "Complete", "status": "True"}],
    )
    later = "2026-01-01T00:01:00Z"
    status = derive_status(
        REF, spec, runs, skipped, done, [_done(0, _stats("1.5"), "0.html")], running, later
    )
    assert status["phase"] == "Succeeded"
    assert status["stats"]["sharpe"] == "1.5"
    assert status["params"] == {"fast": 5, "slow": 20, "quantity": "0.1"}
    assert status["report"] == {
        "claimName": "results",
        "path": "reports/research/ema/01234567/0.html",
    }
    assert (status["startTime"], status["completionTime"]) == (
        "2026-01-01T00:00:01Z",
        "2026-01-01T00:00:09Z",
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    # SpecValid did not change since the first status: its transition time stays
    assert conditions["SpecValid"]["lastTransitionTime"] == NOW
    assert (conditions["Complete"]["status"], conditions["Complete"]["lastTransitionTime"]) == (
        "True",
        later,
    )
    assert "sweep" not in status


def test_a_failed_run_fails_the_backtest_with_its_reason_and_keeps_the_rest_ranked() -> None:
    spec = _spec(sweep={"params": {"fast": [5, 6]}, "rankBy": "maxDrawdownPct", "top": 1})
    runs, skipped = combinations(spec)
    failed = _job_status(
        conditions=[{"type": "Failed", "status": "True", "reason": "FailedIndexes"}]
    )
    pods = [
        _done(0, _stats("1", drawdown="4")),
        _pod(1, "Failed", "bad data file: x.csv line 3: not a number", 2),
    ]
    status = derive_status(REF, spec, runs, skipped, failed, pods, {}, NOW)
    assert status["phase"] == "Failed"
    assert status["message"] == "FailedIndexes: run 1: bad data file: x.csv line 3: not a number"
    sweep = status["sweep"]
    assert (sweep["runs"], sweep["succeeded"], sweep["failed"]) == (2, 1, 1)
    assert sweep["rankBy"] == "maxDrawdownPct"
    assert [(r["index"], r["value"], r["params"]) for r in sweep["top"]] == [(0, "4", {"fast": 5})]


class _Cluster:
    """Records creations; `existing` objects by (kind, name)."""

    def __init__(self, existing: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.existing = existing
        self.created: list[str] = []

    def _get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.existing.get((kind, name))

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get("ConfigMap", name)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get("Job", name)

    def create_configmap(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._create("ConfigMap", body)

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._create("Job", body)

    def _create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if (kind, body["metadata"]["name"]) in self.existing:
            raise AlreadyExists(body["metadata"]["name"])
        self.created.append(kind)
        return body


def test_children_are_created_once_and_a_taken_name_is_left_untouched() -> None:
    spec = _spec()
    configmap, job = build_configmap(REF, spec, [{}]), _job(spec)
    fresh = _Cluster({})
    assert ensure_children(fresh, REF, configmap, job) is None  # type: ignore[arg-type]
    assert fresh.created == ["ConfigMap", "Job"]
    mine = _Cluster({("ConfigMap", "ema-backtest"): configmap, ("Job", "ema-backtest"): job})
    assert ensure_children(mine, REF, configmap, job) is None  # type: ignore[arg-type]
    assert mine.created == []
    foreign = {"metadata": {"name": "ema-backtest"}}
    taken = _Cluster({("ConfigMap", "ema-backtest"): foreign})
    message = ensure_children(taken, REF, configmap, job)  # type: ignore[arg-type]
    assert message is not None and "ConfigMap ema-backtest (not created by this Backtest" in message
    assert taken.created == []  # and no Job over someone else's ConfigMap
