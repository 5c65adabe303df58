"""Cut the chart's Role and the operator says so: a 403 is reported, never swallowed.

The operator runs for real here (a process of the test's node, authenticated
as the chart's ServiceAccount by its projected token). One verb is taken out
of its Role with kubectl (`create` on pods); a TradingEngine is applied; the
apiserver's 403 must show in the operator's log, naming the ServiceAccount and
the verb; the engine must not pretend to be Running, and the rest of its
children (made with verbs still granted) are there.

What the real cluster showed: the 403 is in the log only. kopf (1.45) posts a
handler's failure as an Event only with `settings.posting.loggers` on, which
the operator leaves off, so `kubectl describe tradingengine` shows the engine
Pending ("the engine pod is being created") with no Event about the denial.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from real_cluster_support import Failed, Kube, engine_manifest, start_sandbox, wait_until


def _records(log: str) -> list[dict[str, Any]]:
    """The operator's JSON log lines."""
    found = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a plain line, or one still being written
            continue
        if isinstance(record, dict) and "message" in record:
            found.append(record)
    return found


def _without(role: dict[str, Any], resource: str, verb: str) -> dict[str, Any]:
    (rule,) = [r for r in role["rules"] if r["resources"] == [resource]]
    assert verb in rule["verbs"], rule
    rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    return role


async def test_a_cut_role_shows_as_403s_from_the_operator(tmp_path: Path, kube: Kube) -> None:
    box = await start_sandbox(tmp_path, fake_pods=False)
    namespace, release = box.options.namespace, box.options.release
    user = f"system:serviceaccount:{box.options.operator_namespace}:{release}"
    try:
        assert await box.operator_pod() is not None, await box.diagnose()
        role = await asyncio.to_thread(kube.get, "role", release, namespace)
        cut = _without(role, "pods", "create")
        await asyncio.to_thread(kube.kubectl, "replace", "-f", "-", stdin=json.dumps(cut))
        await asyncio.to_thread(
            wait_until,
            "the cut Role to reach the authorizer",
            lambda: not kube.can_i(user, "create", "pods", namespace),
        )
        await asyncio.to_thread(kube.apply, engine_manifest("cut", namespace))

        def denials() -> list[dict[str, Any]]:
            return [
                r
                for r in _records(box.operator_logs())
                if r.get("object", {}).get("name") == "cut"
                and r.get("severity") == "error"
                and "(403)" in r["message"]
            ]

        try:
            found = await asyncio.to_thread(wait_until, "the operator to log the 403", denials)
        except Failed as exc:
            tail = "\n".join(box.operator_logs().splitlines()[-20:])
            raise Failed(f"{exc}\noperator log:\n{tail}") from None
        message = found[0]["message"].replace("\\", "")
        assert message.startswith("Handler 'reconcile' failed with an exception"), message
        assert "Reason: Forbidden" in message
        assert f'User "{user}" cannot create resource "pods"' in message, message

        # and the user sees it on the engine: a Warning Event with the API server's words
        def forbidden_events() -> list[dict[str, Any]]:
            listed = kube.kubectl(
                *("-n", namespace, "get", "events", "-o", "json"),
                *("--field-selector", "involvedObject.name=cut"),
            ).json()
            return [e for e in listed["items"] if e["reason"] == "Forbidden"]

        (event, *_) = await asyncio.to_thread(
            wait_until, "a Forbidden Event on the engine", forbidden_events
        )
        assert event["type"] == "Warning"
        assert f'User "{user}" cannot create resource "pods"' in event["message"]

        # what it could do, it did; what it could not, it did not claim
        assert await asyncio.to_thread(kube.exists, "configmap", "cut-config", namespace)
        assert not await asyncio.to_thread(kube.exists, "pod", "cut-engine", namespace)
        engine = await asyncio.to_thread(kube.get, "tradingengine", "cut", namespace)
        status = engine.get("status") or {}
        assert status.get("phase") not in ("Starting", "Running"), status
        ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
        assert all(c["status"] != "True" for c in ready), status
    finally:
        await box.stop()
