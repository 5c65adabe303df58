"""Issue 14 items 7 and 8 on the real cluster: the operator touches only what it owns,
and an evicted engine pod is replaced (one pod at a time)."""

from __future__ import annotations

from typing import Any

from scenario_support import Scenario, added, deleted, engine_pod_uids, max_concurrent_pods


async def _events(scenario: Scenario, name: str) -> list[dict[str, Any]]:
    listed = await scenario.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
    )
    return list(listed.json()["items"])


async def test_item7_unrelated_objects_named_like_children_survive_the_engine(
    scenario: Scenario,
) -> None:
    # someone else's objects, named as the children of engines `app` and `search` would be
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-config"},
        "data": {"setting": "theirs"},
    }
    await scenario.apply(config)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "search-engine", "labels": {"app": "search"}},
        "spec": {"containers": [{"name": "search", "image": "registry.invalid/search:1"}]},
    }
    await scenario.apply(pod)
    before_config = await scenario.get("configmap", "app-config")
    before_pod = await scenario.get("pod", "search-engine")
    await scenario.apply(scenario.engine("app"))
    await scenario.apply(scenario.engine("search"))
    for name, taken in (("app", "ConfigMap app-config"), ("search", "Pod search-engine")):
        await scenario.wait(
            f"tradingengine/{name}",
            'jsonpath={.status.conditions[?(@.type=="Ready")].reason}=NameTaken',
        )
        engine = await scenario.get("te", name)
        assert engine["status"]["phase"] == "Failed"
        assert taken in engine["status"]["message"]
        ready = next(c for c in engine["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and taken in ready["message"]
        warnings = [e for e in await _events(scenario, name) if e["reason"] == "NameTaken"]
        assert warnings and warnings[0]["type"] == "Warning"
        assert taken in warnings[0]["message"]
        # no engine pod beside a taken name; the children whose names were free may
        # have been made (a new engine's are created without reading them first), and
        # then they are the engine's own, collected with it
        if name == "app":
            assert (await scenario.kubectl("get", "pod", "app-engine", check=False)).returncode
        for kind, child in (
            ("secret", f"{name}-control"),
            ("persistentvolumeclaim", f"{name}-history"),
        ):
            made = await scenario.kubectl("get", kind, child, "-o", "json", check=False)
            if made.returncode == 0:
                owners = made.json()["metadata"].get("ownerReferences") or []
                assert [(o["uid"], o.get("controller")) for o in owners] == [
                    (engine["metadata"]["uid"], True)
                ]
    after_config = await scenario.get("configmap", "app-config")
    assert after_config["data"] == {"setting": "theirs"}
    assert (
        after_config["metadata"]["resourceVersion"] == before_config["metadata"]["resourceVersion"]
    )
    assert "ownerReferences" not in after_config["metadata"]
    after_pod = await scenario.get("pod", "search-engine")
    assert after_pod["metadata"]["uid"] == before_pod["metadata"]["uid"]
    assert "deletionTimestamp" not in after_pod["metadata"]
    # deleting the engines (the garbage collector deletes only what they own) keeps them
    for name in ("app", "search"):
        await scenario.kubectl("delete", "tradingengine", name, "--wait=true", "--timeout=60s")
    # a fresh engine of another name makes its children and is collected with them:
    # the garbage collector has run its course once that is done
    await scenario.apply(scenario.engine("probe"))
    await scenario.wait("configmap/probe-config", "create")
    await scenario.kubectl("delete", "tradingengine", "probe", "--wait=true", "--timeout=60s")
    await scenario.kubectl("wait", "--for=delete", "configmap/probe-config", "--timeout=60s")
    for name in ("app", "search"):  # the engines' own children went with them
        gone = await scenario.kubectl("get", "secret", f"{name}-control", check=False)
        assert gone.returncode != 0
    assert (await scenario.get("configmap", "app-config"))["data"] == {"setting": "theirs"}
    survivor = await scenario.get("pod", "search-engine")
    assert survivor["metadata"]["uid"] == before_pod["metadata"]["uid"]
    assert "deletionTimestamp" not in survivor["metadata"]


async def test_item8_an_evicted_engine_pod_is_replaced(scenario: Scenario) -> None:
    await scenario.apply(scenario.engine("btc"))
    await scenario.wait("tradingengine/btc", "condition=Ready")
    old = (await scenario.get("pod", "btc-engine"))["metadata"]["uid"]
    await scenario.until_pods(added(old))
    # what the kubelet writes when it evicts a pod
    await scenario.kubectl(
        "patch",
        "pod",
        "btc-engine",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Failed", "reason": "Evicted", '
        '"message": "The node was low on resource: memory."}}',
    )
    await scenario.until_pods(deleted(old))
    await scenario.wait("pod/btc-engine", "create")
    await scenario.wait("pod/btc-engine", "condition=Ready")
    await scenario.wait("tradingengine/btc", "condition=Ready")
    new = (await scenario.get("pod", "btc-engine"))["metadata"]["uid"]
    assert new != old
    await scenario.until_pods(added(new))
    events = scenario.pod_events
    assert events.index(("DELETED", "btc-engine", old, "btc")) < events.index(
        ("ADDED", "btc-engine", new, "btc")
    )
    assert max_concurrent_pods(events, "btc") == 1
    assert engine_pod_uids(events, "btc") == {new}
    reasons = {(e["type"], e["reason"]) for e in await _events(scenario, "btc")}
    assert ("Warning", "PodFailed") in reasons
    # the replacement continues the paper account from the engine's claim: no reset
    assert not [r for r in reasons if r[1] == "PaperAccountReset"]
