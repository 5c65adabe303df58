"""Bad TradingEngines: rejected by the schema, or marked Invalid; never a crashed operator."""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_support import Scenario, engine_manifest, make_sandbox_scenario, stop_recording

API = "/apis/hean.io/v1alpha1/namespaces/{namespace}/tradingengines"


async def test_schema_rejects_with_the_field_named(scenario: Scenario) -> None:
    bad = scenario.engine("bad-schema")
    bad["spec"]["risk"]["maxOpenOrders"] = 0
    bad["spec"]["strategy"]["params"] = {"fast": 9, "slow": 3, "quantity": "1"}
    result = await scenario.apply(bad, check=False)
    assert result.returncode != 0
    assert "spec.risk.maxOpenOrders" in result.stderr
    assert "spec.strategy.params: Invalid value" in result.stderr
    assert "ema_cross needs params.fast < params.slow" in result.stderr
    missing = await scenario.kubectl("get", "te", "bad-schema", check=False)
    assert missing.returncode != 0


async def test_a_spec_the_model_rejects_becomes_invalid_and_others_carry_on(
    scenario: Scenario,
) -> None:
    bad = scenario.engine("bad-model")
    bad["spec"]["exchange"]["id"] = "nosuchexchange"  # a string the schema cannot judge
    await scenario.apply(bad)
    await scenario.apply(scenario.engine("good"))
    await scenario.wait("tradingengine/bad-model", "jsonpath={.status.phase}=Invalid")
    engine = await scenario.get("te", "bad-model")
    spec_valid = next(c for c in engine["status"]["conditions"] if c["type"] == "SpecValid")
    assert spec_valid["status"] == "False"
    assert spec_valid["message"].startswith("spec.exchange.id: unknown exchange id")
    # nothing was created for it
    for kind, name in [("pod", "bad-model-engine"), ("configmap", "bad-model-config")]:
        assert (await scenario.kubectl("get", kind, name, check=False)).returncode != 0
    await scenario.wait("tradingengine/good", "condition=Ready")
    # fixing the spec (a new generation) brings it to life
    await scenario.kubectl(
        "patch", "te", "bad-model", "--type=merge", "-p", '{"spec":{"exchange":{"id":"binance"}}}'
    )
    await scenario.wait("tradingengine/bad-model", "condition=Ready")


# -- fuzzing: a thousand mutated engines at a running operator -------------------------

VALID = engine_manifest("x", "http://127.0.0.1:9")["spec"]
PATHS = [
    ("mode",),
    ("exchange", "id"),
    ("exchange", "endpoint"),
    ("exchange", "testnet"),
    ("exchange", "credentialsSecret"),
    ("market", "symbol"),
    ("market", "timeframe"),
    ("strategy", "name"),
    ("strategy", "params"),
    ("strategy", "params", "fast"),
    ("strategy", "params", "slow"),
    ("strategy", "params", "quantity"),
    ("strategy", "params", "extra"),
    ("risk", "maxOrderNotional"),
    ("risk", "maxPositionNotional"),
    ("risk", "maxOpenOrders"),
    ("risk", "maxDailyLoss"),
    ("risk", "maxDrawdownPct"),
    ("risk", "maxOrdersPerMinute"),
    ("paper", "startingBalances"),
    ("paper", "startingBalances", "USDT"),
    ("paper", "feeRate"),
    ("paper", "slippageBps"),
    ("paused",),
    ("halt",),
    ("unknownField",),
    ("risk",),
    ("strategy",),
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "0",
            "-1",
            "1e5",
            "0.0001",
            "live",
            "paper",
            "ema_cross",
            "market_maker",
            "BTC/USDT",
            "1m",
            "binance",
            "nosuch",
            "http://x",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=5,
)
mutation = st.tuples(st.sampled_from(PATHS), st.one_of(st.just("<delete>"), json_values))


def mutate(spec: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    for path, value in changes:
        node: Any = spec
        for key in path[:-1]:
            if not isinstance(node, dict):
                break
            node = node.setdefault(key, {})
        else:
            if isinstance(node, dict):
                if value == "<delete>":
                    node.pop(path[-1], None)
                else:
                    node[path[-1]] = value
    return spec


def fuzzed_specs(count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(mutation, min_size=1, max_size=3))
    def collect(changes: list[tuple[tuple[str, ...], Any]]) -> None:
        found.append(mutate(VALID, changes))

    collect()
    return found


async def _phases_of(
    url: str, names: set[str], context: ssl.SSLContext
) -> dict[str, dict[str, Any]]:
    """List, then watch the engines until each of `names` has a status.phase; return
    their statuses.

    The API server ends a watch that falls behind (its watch cache drops a slow
    watcher: a thousand engines' events while this process also runs the node)
    or that times out; then the engines are listed again and watched on from
    that list, as an informer does.
    """
    statuses: dict[str, dict[str, Any]] = {}

    def seen(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        if obj["metadata"]["name"] in names and status.get("phase"):
            statuses[obj["metadata"]["name"]] = status
        return len(statuses) == len(names)

    timeout = aiohttp.ClientTimeout(total=600, sock_read=None)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(ssl=context)
    ) as session:
        while True:
            async with session.get(url) as listing:
                assert listing.status == 200, await listing.text()
                found = await listing.json()
            for obj in found["items"]:
                seen(obj)
            if len(statuses) == len(names):
                return statuses
            params = {"watch": "true", "resourceVersion": found["metadata"]["resourceVersion"]}
            async with session.get(url, params=params) as response:
                async for line in response.content:
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        break  # the version is gone from the watch cache: list again
                    if seen(event["object"]):
                        return statuses


async def test_a_thousand_fuzzed_engines_never_crash_the_operator(tmp_path: Path) -> None:
    scenario, recorder = await make_sandbox_scenario(
        tmp_path, fake_pods=True, exchange=False, poll=30
    )
    try:
        assert scenario.box is not None and scenario.box.control_plane is not None
        cluster = scenario.box.control_plane
        context = cluster.ssl_context()  # the admin's client certificate
        base = cluster.url + API.format(namespace=scenario.namespace)
        specs = fuzzed_specs(1000)
        accepted: dict[str, dict[str, Any]] = {}
        rejected = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:

            async def post(index: int, spec: dict[str, Any]) -> None:
                nonlocal rejected
                name = f"fuzz-{index}"
                body = {
                    "apiVersion": "hean.io/v1alpha1",
                    "kind": "TradingEngine",
                    "metadata": {"name": name},
                    "spec": spec,
                }
                async with session.post(base, json=body) as response:
                    payload = await response.json()
                    assert response.status in (201, 400, 422), (response.status, payload, spec)
                    if response.status == 201:
                        accepted[name] = spec
                    else:
                        rejected += 1
                        assert payload["kind"] == "Status" and payload["message"], payload

            for start in range(0, len(specs), 50):
                await asyncio.gather(
                    *(post(i, s) for i, s in enumerate(specs[start : start + 50], start))
                )
        assert accepted and rejected, (len(accepted), rejected)
        statuses = await asyncio.wait_for(_phases_of(base, set(accepted), context), 600)
        invalid = 0
        for name, status in statuses.items():
            if status["phase"] == "Invalid":
                invalid += 1
                condition = next(c for c in status["conditions"] if c["type"] == "SpecValid")
                assert condition["status"] == "False"
                # a clear reason: every problem names its field
                for problem in condition["message"].split("; "):
                    assert problem.startswith("spec"), (name, problem, accepted[name])
            else:
                assert status["phase"] in ("Pending", "Starting", "Running"), (name, status)
        # the operator's pod never restarted (a crash would have)
        operator = await scenario.box.operator_pod()
        assert operator is not None
        assert operator["status"]["containerStatuses"][0]["restartCount"] == 0
        print(
            f"fuzz: {len(specs)} posted, {rejected} rejected by the schema, "
            f"{len(accepted)} accepted, {invalid} marked Invalid"
        )
    finally:
        await stop_recording(recorder)
        assert scenario.box is not None
        await scenario.box.stop()
