"""The CRDs' OpenAPI and CEL validation, as the real kube-apiserver enforces it.

Each bad object is applied with kubectl (`-v=6`, so that the apiserver's status
code is in its log) and must come back as the apiserver's own 422 (400 for an
unknown field under kubectl's strict field validation) with the field named;
nothing is stored. The cases tests/scenarios/test_invalid_engines.py already
covers (maxOpenOrders below its minimum, ema_cross with fast >= slow on create)
are not repeated here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from real_cluster_support import Kube, approval_manifest, engine_manifest, response_codes

Change = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Change:
    """Set spec.<path> (dotted) to `value`."""

    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return change


def _drop(path: str) -> Change:
    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node[key]
        del node[last]

    return change


def _both(*changes: Change) -> Change:
    def change(spec: dict[str, Any]) -> None:
        for one in changes:
            one(spec)

    return change


BAD_ENGINES: dict[str, tuple[Change, int, tuple[str, ...]]] = {
    # CEL rules of the CRD (x-kubernetes-validations)
    # (A well-formed name that is not built in is accepted: it may be a strategy
    # installed in the engine's image, which only the engine can check.)
    "malformed-strategy-name": (
        _set("strategy.name", "Momentum-2"),
        422,
        ("spec.strategy.name: Invalid value: ", "should match"),
    ),
    "malformed-image": (
        _set("image", "Registry/UPPER case"),
        422,
        ("spec.image: Invalid value: ", "should match"),
    ),
    "live-without-credentials": (
        _set("mode", "live"),
        422,
        (
            "spec.exchange.credentialsSecret: Required value: "
            "live mode needs exchange.credentialsSecret",
        ),
    ),
    "ema-periods-not-numbers": (
        _set("strategy.params.fast", "abc"),
        422,
        (
            "type conversion error from 'string' to 'int'",
            "ema_cross needs params.fast < params.slow",
        ),
    ),
    # OpenAPI enums
    "mode-enum": (
        _set("mode", "turbo"),
        422,
        ('spec.mode: Unsupported value: "turbo": supported values: "paper", "live"',),
    ),
    "timeframe-enum": (
        _set("market.timeframe", "7m"),
        422,
        ('spec.market.timeframe: Unsupported value: "7m"',),
    ),
    "on-drift-enum": (
        _set("live.onDrift", "panic"),
        422,
        ('spec.live.onDrift: Unsupported value: "panic": supported values: "reduce", "halt"',),
    ),
    # decimal patterns (the string form of int-or-string decimals)
    "decimal-exponent": (
        _set("risk.maxOrderNotional", "1e5"),
        422,
        ('spec.risk.maxOrderNotional: Invalid value: "1e5"', "should match"),
    ),
    "decimal-negative-string": (
        _set("risk.maxDailyLoss", "-3"),
        422,
        ('spec.risk.maxDailyLoss: Invalid value: "-3"', "should match"),
    ),
    "decimal-balance": (
        _set("paper.startingBalances", {"USDT": "lots"}),
        422,
        ('spec.paper.startingBalances.USDT: Invalid value: "lots"', "should match"),
    ),
    "decimal-fee-rate": (
        _set("paper.feeRate", "0.1%"),
        422,
        ('spec.paper.feeRate: Invalid value: "0.1%"', "should match"),
    ),
    # other patterns, bounds and types
    "symbol-pattern": (
        _set("market.symbol", "btcusdt"),
        422,
        ('spec.market.symbol: Invalid value: "btcusdt"', "should match"),
    ),
    "endpoint-pattern": (
        _set("exchange.endpoint", "ftp://127.0.0.1:21"),
        422,
        ('spec.exchange.endpoint: Invalid value: "ftp://127.0.0.1:21"',),
    ),
    "credentials-secret-name": (
        _both(_set("mode", "live"), _set("exchange.credentialsSecret", "Not_A_Name")),
        422,
        ('spec.exchange.credentialsSecret: Invalid value: "Not_A_Name"',),
    ),
    "orders-per-minute-maximum": (
        _set("risk.maxOrdersPerMinute", 100001),
        422,
        ("spec.risk.maxOrdersPerMinute: Invalid value: 100001", "less than or equal to 100000"),
    ),
    "period-not-integer": (
        _set("strategy.params.fast", 3.5),
        422,
        ("spec.strategy.params.fast: Invalid value: ", "must be of type integer,string"),
    ),
    "risk-required": (_drop("risk"), 422, ("spec.risk: Required value",)),
    "symbol-required": (_drop("market.symbol"), 422, ("spec.market.symbol: Required value",)),
    # kubectl asks for strict field validation: an undeclared field is refused (400)
    "unknown-field": (
        _set("leverage", 10),
        400,
        ('strict decoding error: unknown field "spec.leverage"',),
    ),
}


def _apply_verbose(kube: Kube, manifest: dict[str, Any]) -> tuple[int, str]:
    """kubectl apply -v=6: (the code of the write it sent, its error output)."""
    done = kube.apply(manifest, "-v=6", check=False)
    assert done.returncode != 0, f"accepted: {manifest['spec']}"
    codes = response_codes(done.stderr, "POST") + response_codes(done.stderr, "PATCH")
    assert codes, done.stderr[-2000:]
    message = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("I1"))
    return codes[-1], message


@pytest.mark.parametrize("case", sorted(BAD_ENGINES))
def test_the_apiserver_refuses_a_bad_engine_naming_the_field(
    kube: Kube, namespace: str, case: str
) -> None:
    change, code, expected = BAD_ENGINES[case]
    manifest = engine_manifest(f"bad-{case}", namespace)
    change(manifest["spec"])
    status, message = _apply_verbose(kube, manifest)
    assert status == code, message
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    assert not kube.exists("tradingengine", f"bad-{case}", namespace)


def test_variants_the_rules_allow_are_accepted(kube: Kube, namespace: str) -> None:
    """The CEL rules refuse no valid engine: the negative cases above are not a blanket no."""
    variants: dict[str, dict[str, Any]] = {
        "live-with-secret": {
            "mode": "live",
            "exchange": {"id": "binance", "credentialsSecret": "binance-keys"},
        },
        "ema-default-periods": {"strategy": {"name": "ema_cross"}},
        "ema-string-periods": {
            "strategy": {"name": "ema_cross", "params": {"fast": "5", "slow": "20"}}
        },
        "market-maker": {"strategy": {"name": "market_maker", "params": {"spreadBps": 10}}},
        # A user's strategy from a user's image: the engine checks its params.
        "installed-strategy": {
            "image": "registry.example.com:5000/quant/hean-rsi:1.0",
            "strategy": {
                "name": "rsi_mean_reversion",
                "params": {"period": 14, "quantity": "0.01", "bands": [1.5, 2], "fast": 3},
            },
        },
        "integer-decimals": {
            "risk": {
                "maxOrderNotional": 10000,
                "maxPositionNotional": 20000,
                "maxDailyLoss": 5000,
                "maxDrawdownPct": 20,
            }
        },
    }
    for name, overrides in variants.items():
        kube.apply(engine_manifest(name, namespace, **overrides))
    listed = kube.kubectl("-n", namespace, "get", "tradingengines", "-o", "name").stdout.split()
    assert sorted(listed) == sorted(f"tradingengine.hean.io/{name}" for name in variants)
    # the defaults are the apiserver's own: filled in on the stored object
    stored = kube.get("tradingengine", "market-maker", namespace)["spec"]
    assert stored["risk"]["maxOpenOrders"] == 4
    assert stored["paper"]["feeRate"] == "0.001"
    assert stored["live"]["onDrift"] == "halt"


def test_cel_rules_also_guard_updates(kube: Kube, namespace: str) -> None:
    kube.apply(engine_manifest("ema", namespace))
    for patch, expected in (
        (
            '{"spec":{"strategy":{"params":{"fast":50}}}}',
            "ema_cross needs params.fast < params.slow",
        ),
        ('{"spec":{"mode":"live"}}', "live mode needs exchange.credentialsSecret"),
        ('{"spec":{"strategy":{"name":"Grid"}}}', "spec.strategy.name: Invalid value"),
    ):
        done = kube.kubectl(
            "-n", namespace, "patch", "te", "ema", "--type=merge", "-p", patch, "-v=6", check=False
        )
        assert done.returncode != 0, patch
        assert response_codes(done.stderr, "PATCH") == [422], done.stderr[-1500:]
        assert expected in done.stderr
    spec = kube.get("tradingengine", "ema", namespace)["spec"]
    assert spec["strategy"] == {
        "name": "ema_cross",
        "params": {"fast": 3, "slow": 8, "quantity": "0.5"},
    }
    assert spec["mode"] == "paper"


@pytest.mark.parametrize("value", [-5, 0])
def test_a_bare_integer_limit_below_its_minimum_is_refused_by_the_apiserver(
    kube: Kube, namespace: str, value: int
) -> None:
    # The decimal pattern checks the string form only; `minimum` the integer form.
    manifest = engine_manifest("negative", namespace)
    manifest["spec"]["risk"]["maxOrderNotional"] = value
    done = kube.apply(manifest, check=False)
    assert done.returncode != 0
    assert "spec.risk.maxOrderNotional" in done.stderr
    assert "should be greater than or equal to 1" in done.stderr


BAD_APPROVALS: dict[str, tuple[Change, tuple[str, ...]]] = {
    "spec-hash-pattern": (
        _set("specHash", "abc"),
        ('spec.specHash: Invalid value: "abc"', "should match '^[0-9a-f]{64}$'"),
    ),
    "expiry-not-rfc3339-utc": (
        _set("expiresAt", "2026-01-02 00:00:00+01:00"),
        ('spec.expiresAt: Invalid value: "2026-01-02 00:00:00+01:00"', "should match"),
    ),
    "nonce-too-short": (
        _set("nonce", "short"),
        ('spec.nonce: Invalid value: "short"', "at least 8 chars long"),
    ),
    "engine-uid-required": (_drop("engineUid"), ("spec.engineUid: Required value",)),
    "engine-name-required": (_set("engineRef", {}), ("spec.engineRef.name: Required value",)),
    "key-id-pattern": (
        _set("signatures", [{"keyId": "-ops", "signature": "c2ln"}]),
        ('spec.signatures[0].keyId: Invalid value: "-ops"', "should match"),
    ),
    "one-signature-per-key": (
        _set(
            "signatures",
            [{"keyId": "ops-1", "signature": "c2ln"}, {"keyId": "ops-1", "signature": "b3RoZXI="}],
        ),
        ("spec.signatures[1]: Duplicate value:", '"keyId":"ops-1"'),
    ),
    "too-many-signatures": (
        _set("signatures", [{"keyId": f"k{i}", "signature": "c2ln"} for i in range(33)]),
        ("spec.signatures: Too many: 33: must have at most 32 items",),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_APPROVALS))
def test_the_apiserver_refuses_a_bad_approval_naming_the_field(
    kube: Kube, namespace: str, case: str
) -> None:
    change, expected = BAD_APPROVALS[case]
    manifest = approval_manifest(f"bad-{case}", namespace)
    change(manifest["spec"])
    status, message = _apply_verbose(kube, manifest)
    assert status == 422, message
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    assert not kube.exists("liveapproval", f"bad-{case}", namespace)


def test_a_well_formed_approval_is_accepted(kube: Kube, namespace: str) -> None:
    """The schema judges the shape only: signatures are the operator's to verify."""
    manifest = approval_manifest("ok", namespace)
    kube.apply(copy.deepcopy(manifest))
    stored = kube.get("liveapproval", "ok", namespace)
    assert stored["spec"] == manifest["spec"]
