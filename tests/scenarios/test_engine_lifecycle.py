"""TradingEngine scenarios driven with kubectl against the real operator in the sandbox."""

from __future__ import annotations

import json

from scenario_support import Scenario, added, deleted, engine_pod_uids, max_concurrent_pods

POD = "btc-engine"


async def create_ready(scenario: Scenario, name: str = "btc", **spec: object) -> None:
    await scenario.apply(scenario.engine(name, **spec))
    await scenario.wait(f"tradingengine/{name}", "condition=Ready")


async def test_create_runs_one_engine_pod_with_true_status(scenario: Scenario) -> None:
    await create_ready(scenario)
    engine = await scenario.get("tradingengine", "btc")
    status = engine["status"]
    assert status["phase"] == "Running"
    assert status["observedGeneration"] == 1
    assert status["riskState"] == "ACTIVE"
    assert status["equity"] == "100000"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "SpecValid": "True",
        "Ready": "True",
        "Reconciled": "True",
        "LiveApproved": "True",
    }
    # the children, each owned by the engine (garbage-collected with it)
    uid = engine["metadata"]["uid"]
    for kind, name in [
        ("pod", "btc-engine"),
        ("configmap", "btc-config"),
        ("secret", "btc-control"),
        ("persistentvolumeclaim", "btc-history"),
    ]:
        child = await scenario.get(kind, name)
        owners = child["metadata"]["ownerReferences"]
        assert [(o["kind"], o["uid"], o.get("controller")) for o in owners] == [
            ("TradingEngine", uid, True)
        ], kind
    # the printer columns, as a user sees them
    table = (await scenario.kubectl("get", "tradingengines")).stdout.splitlines()
    assert table[0].split() == ["NAME", "MODE", "PHASE", "RISK", "READY", "EQUITY", "PNL", "AGE"]
    assert table[1].split()[:6] == ["btc", "paper", "Running", "ACTIVE", "True", "100000"]
    events = (
        await scenario.kubectl(
            "get", "events", "--field-selector", "involvedObject.name=btc", "-o", "json"
        )
    ).json()
    reasons = {e["reason"] for e in events["items"]}
    assert "Running" in reasons
    pod_uid = (await scenario.get("pod", "btc-engine"))["metadata"]["uid"]
    await scenario.until_pods(added(pod_uid))
    assert engine_pod_uids(scenario.pod_events, "btc") == {pod_uid}
    # the operator's logs are JSON lines that name the resource they are about
    log = await scenario.operator_log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    about = [line for line in lines if (line.get("object") or {}).get("name") == "btc"]
    assert about and all(line["object"]["namespace"] == scenario.namespace for line in about)
    assert not [line for line in lines if line.get("severity") in ("error", "critical")]


async def test_spec_change_replaces_the_pod_never_running_two(scenario: Scenario) -> None:
    await create_ready(scenario)
    first = await scenario.get("pod", "btc-engine")
    await scenario.kubectl(
        "patch",
        "tradingengine",
        "btc",
        "--type=merge",
        "-p",
        '{"spec": {"strategy": {"params": {"fast": 4}}}}',
    )
    await scenario.wait("tradingengine/btc", "jsonpath={.status.observedGeneration}=2")
    await scenario.wait("tradingengine/btc", "condition=Ready")
    second = await scenario.get("pod", "btc-engine")
    old, new = first["metadata"]["uid"], second["metadata"]["uid"]
    assert new != old
    assert second["metadata"]["annotations"]["hean.io/spec-generation"] == "2"
    await scenario.until_pods(added(new))
    config = await scenario.get("configmap", "btc-config")
    assert "fast: 4" in next(iter(config["data"].values()))
    # at no moment did two pods of the engine exist (counted by its label, whatever
    # their names): the old one was gone before the new one was created
    events = scenario.pod_events
    assert events.index(("DELETED", "btc-engine", old, "btc")) < events.index(
        ("ADDED", "btc-engine", new, "btc")
    )
    assert max_concurrent_pods(events, "btc") == 1
    assert engine_pod_uids(events, "btc") == {new}
    # the new pod continues the paper account from the engine's claim (issue 15): no
    # reset, so nothing to warn of
    listed = (await scenario.kubectl("get", "events", "-o", "json")).json()["items"]
    assert not [e for e in listed if e["reason"] == "PaperAccountReset"]
    claim = second["spec"]["volumes"]
    assert {"name": "history", "persistentVolumeClaim": {"claimName": "btc-history"}} in claim


async def test_pause_and_resume_without_a_restart(scenario: Scenario) -> None:
    await create_ready(scenario)
    uid = (await scenario.get("pod", "btc-engine"))["metadata"]["uid"]
    await scenario.kubectl("patch", "te", "btc", "--type=merge", "-p", '{"spec":{"paused":true}}')
    await scenario.wait("tradingengine/btc", "jsonpath={.status.phase}=Paused")
    await scenario.kubectl("patch", "te", "btc", "--type=merge", "-p", '{"spec":{"paused":false}}')
    await scenario.wait("tradingengine/btc", "jsonpath={.status.phase}=Running")
    assert (await scenario.get("pod", "btc-engine"))["metadata"]["uid"] == uid
    engine = await scenario.get("te", "btc")
    assert engine["metadata"]["generation"] == 3  # paused is spec: generations move
    events = (await scenario.kubectl("get", "events", "-o", "json")).json()["items"]
    assert {"Pause", "Resume"} <= {e["reason"] for e in events}


async def test_halt_keeps_the_pod_for_inspection(scenario: Scenario) -> None:
    await create_ready(scenario)
    uid = (await scenario.get("pod", "btc-engine"))["metadata"]["uid"]
    await scenario.kubectl("patch", "te", "btc", "--type=merge", "-p", '{"spec":{"halt":true}}')
    await scenario.wait("tradingengine/btc", "jsonpath={.status.phase}=Halted")
    engine = await scenario.get("te", "btc")
    assert engine["status"]["riskState"] == "HALTED"
    assert "halt" in engine["status"]["message"]
    pod = await scenario.get("pod", "btc-engine")
    assert pod["metadata"]["uid"] == uid and pod["status"]["phase"] == "Running"
    await scenario.kubectl("patch", "te", "btc", "--type=merge", "-p", '{"spec":{"halt":false}}')
    await scenario.wait("tradingengine/btc", "jsonpath={.status.phase}=Running")


async def test_delete_halts_the_engine_then_removes_everything(scenario: Scenario) -> None:
    await create_ready(scenario)
    engine = await scenario.get("te", "btc")
    assert "hean.io/finalizer" in engine["metadata"]["finalizers"]
    await scenario.kubectl("delete", "tradingengine", "btc", "--wait=true", "--timeout=60s")
    gone = await scenario.kubectl("get", "te", "btc", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    # the real garbage collector removes the owned children after the engine, not with it
    for child in ("configmap/btc-config", "secret/btc-control", "pod/btc-engine"):
        await scenario.kubectl("wait", "--for=delete", child, "--timeout=60s")
    events = (await scenario.kubectl("get", "events", "-o", "json")).json()["items"]
    deleted = [e for e in events if e["reason"] == "Deleted"]
    assert deleted and deleted[0]["message"] == "engine halted with no open orders"


async def test_operator_restart_mid_change_converges_without_duplicates(
    scenario: Scenario,
) -> None:
    await create_ready(scenario)
    old = (await scenario.get("pod", "btc-engine"))["metadata"]["uid"]
    await scenario.kubectl(
        "patch",
        "te",
        "btc",
        "--type=merge",
        "-p",
        '{"spec": {"strategy": {"params": {"slow": 9}}}}',
    )
    # kill the operator hard in the middle of the replacement: the old pod is gone,
    # the new one may or may not have been created yet
    await scenario.until_pods(deleted(old))
    await scenario.restart_operator()
    await scenario.wait("tradingengine/btc", "jsonpath={.status.observedGeneration}=2")
    await scenario.wait("tradingengine/btc", "condition=Ready")
    pod = await scenario.get("pod", "btc-engine")
    assert pod["metadata"]["annotations"]["hean.io/spec-generation"] == "2"
    await scenario.until_pods(added(pod["metadata"]["uid"]))
    assert max_concurrent_pods(scenario.pod_events, "btc") == 1
    assert engine_pod_uids(scenario.pod_events, "btc") == {pod["metadata"]["uid"]}
    for kind in ("configmap", "secret", "persistentvolumeclaim"):
        items = (await scenario.kubectl("get", kind, "-o", "json")).json()["items"]
        names = [i["metadata"]["name"] for i in items if i["metadata"]["name"].startswith("btc")]
        assert len(names) == 1, (kind, names)


async def test_engine_pod_deleted_by_hand_is_recreated(scenario: Scenario) -> None:
    await create_ready(scenario)
    uid = (await scenario.get("pod", "btc-engine"))["metadata"]["uid"]
    await scenario.kubectl("delete", "pod", "btc-engine", "--wait=true")
    await scenario.wait("pod/btc-engine", "create")
    await scenario.wait("pod/btc-engine", "condition=Ready")
    await scenario.wait("tradingengine/btc", "condition=Ready")
    new = (await scenario.get("pod", "btc-engine"))["metadata"]["uid"]
    assert new != uid
    await scenario.until_pods(added(new))
    assert max_concurrent_pods(scenario.pod_events, "btc") == 1


async def test_a_rotated_control_token_is_picked_up_without_an_operator_restart(
    scenario: Scenario,
) -> None:
    await create_ready(scenario)
    # pause once: the operator now holds the engine's token in its cache
    await scenario.kubectl("patch", "te", "btc", "--type=merge", "-p", '{"spec":{"paused":true}}')
    await scenario.wait("tradingengine/btc", "jsonpath={.status.phase}=Paused")
    old = (await scenario.get("secret", "btc-control"))["data"]
    # rotate as docs/operations.md says: the Secret, then the pod
    await scenario.kubectl("delete", "secret", "btc-control")
    await scenario.kubectl("delete", "pod", "btc-engine", "--wait=true")
    await scenario.wait("pod/btc-engine", "create")
    await scenario.wait("pod/btc-engine", "condition=Ready")
    assert (await scenario.get("secret", "btc-control"))["data"] != old
    # the new engine starts paused (from its config); resuming needs the new token
    await scenario.kubectl("patch", "te", "btc", "--type=merge", "-p", '{"spec":{"paused":false}}')
    await scenario.wait("tradingengine/btc", "jsonpath={.status.phase}=Running")
    events = (await scenario.kubectl("get", "events", "-o", "json")).json()["items"]
    assert "Resume" in {e["reason"] for e in events}
