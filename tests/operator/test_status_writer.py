"""The one status writer: conditions by type, resourceVersion-guarded writes, retries on 409."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from operator_fakes import FakeCluster, report

from hean_contract.status import ConditionStatus, ConditionType
from hean_operator.builders.common import EngineRef
from hean_operator.engines.pods import PodView
from hean_operator.status.derive import Observation
from hean_operator.status.writer import (
    StatusConflict,
    StatusWriter,
    condition_status,
    observed_status,
)

ENGINE = EngineRef(name="btc", namespace="trading", uid="uid-1", generation=1)
READY_POD = PodView(exists=True, phase="Running", ready=True)
STARTING_POD = PodView(exists=True, phase="Running", ready=False)


def _cluster() -> FakeCluster:
    cluster = FakeCluster()
    cluster.add_engine("trading", "btc", "uid-1", {"mode": "paper"})
    return cluster


def _observed(pod: PodView, now: str) -> Any:
    engine = report() if pod.ready else None

    def desired(current: Mapping[str, Any]) -> dict[str, Any]:
        return observed_status(Observation(generation=1, pod=pod, engine=engine), current, now)

    return desired


def _ready(cluster: FakeCluster) -> tuple[str, str]:
    found = cluster.condition("trading", "btc", "Ready")
    return found["status"], found["lastTransitionTime"]


def test_nothing_changed_is_no_write() -> None:
    cluster = _cluster()
    writer = StatusWriter(cluster)
    first = writer.write(ENGINE, _observed(READY_POD, "t1"))
    assert first is not None and first.phase_changed
    assert cluster.writes == [("patch", "tradingengines/status")]
    again = writer.write(ENGINE, _observed(READY_POD, "t2"))  # a later look, same findings
    assert again is not None and again.changes == {}
    assert cluster.writes == [("patch", "tradingengines/status")]
    assert _ready(cluster) == ("True", "t1")  # set by type: the transition time stays


def test_a_write_from_a_stale_read_is_refused_reread_and_recomputed() -> None:
    """The approvals' LiveApproved lands between a poll's read and its write: the poll's
    write is refused (409), and its retry keeps the newer condition."""
    cluster = _cluster()
    writer = StatusWriter(cluster)
    stale = copy.deepcopy(cluster.engine("trading", "btc"))  # the poll's read (kopf's body)
    approved = (ConditionStatus.TRUE, "Approved", "signed by alice")

    def approval_lands() -> None:
        def desired(current: Mapping[str, Any]) -> dict[str, Any]:
            return condition_status(ConditionType.LIVE_APPROVED, approved, 1, current, "t0")

        assert writer.write(ENGINE, desired) is not None

    cluster.before_status_patch = approval_lands
    seen: list[Mapping[str, Any]] = []

    def poll(current: Mapping[str, Any]) -> dict[str, Any]:
        seen.append(copy.deepcopy(dict(current)))
        obs = Observation(generation=1, pod=STARTING_POD, mode="live")
        return observed_status(obs, current, "t1")

    # The approval's write waits for the writer's lock in a real operator; here it is
    # made by the API server's other client, between the poll's read and its write.
    writer_for_poll = StatusWriter(cluster)
    written = writer_for_poll.write(ENGINE, poll, resource=stale)
    assert written is not None
    assert ("conflict", "tradingengines/status") in cluster.writes
    assert len(seen) == 2 and "conditions" in seen[1]  # recomputed from the fresh read
    types = [c["type"] for c in cluster.engine("trading", "btc")["status"]["conditions"]]
    assert "LiveApproved" in types  # not overwritten by the poll's whole list
    live = cluster.condition("trading", "btc", "LiveApproved")
    assert (live["status"], live["reason"]) == ("True", "Approved")
    assert cluster.condition("trading", "btc", "Ready")["reason"] == "EngineNotReady"


def test_an_older_observation_is_never_written_over_a_newer_one() -> None:
    """A poll that looked before the pod turned Ready writes after the pod watch's
    Ready=True: its write is refused (409) and, read again, dropped."""
    cluster = _cluster()
    writer = StatusWriter(cluster)
    body = copy.deepcopy(cluster.engine("trading", "btc"))
    poll_looked, pod_watch_looked = 10.0, 11.0

    def pod_watch_writes() -> None:
        written = writer.write(ENGINE, _observed(READY_POD, "t2"), observed_at=pod_watch_looked)
        assert written is not None and written.changes

    cluster.before_status_patch = pod_watch_writes
    # The pod watch's write lands while the poll's attempt is on its way (in one
    # operator the writer's lock orders them; here the poll's writer is another one
    # that shares the record of observations, and the API server's 409 orders them).
    poll_writer = StatusWriter(cluster)
    poll_writer._observed = writer._observed
    written = poll_writer.write(
        ENGINE, _observed(STARTING_POD, "t1"), resource=body, observed_at=poll_looked
    )
    assert written is not None and written.stale and written.changes == {}
    assert _ready(cluster) == ("True", "t2")
    assert cluster.writes.count(("conflict", "tradingengines/status")) == 1


def test_a_write_that_keeps_meeting_newer_versions_gives_up() -> None:
    cluster = _cluster()
    writer = StatusWriter(cluster, attempts=3)

    def bump() -> None:
        cluster.engine("trading", "btc")["metadata"]["resourceVersion"] += "x"
        cluster.before_status_patch = bump

    cluster.before_status_patch = bump
    with pytest.raises(StatusConflict, match="3 attempts"):
        writer.write(ENGINE, _observed(READY_POD, "t1"))


def test_a_deleted_or_replaced_engine_is_not_written() -> None:
    cluster = _cluster()
    writer = StatusWriter(cluster)
    other = EngineRef(name="btc", namespace="trading", uid="uid-2", generation=1)
    assert writer.write(other, _observed(READY_POD, "t1")) is None  # another engine's name
    del cluster.objects[("tradingengines", "trading", "btc")]
    assert writer.write(ENGINE, _observed(READY_POD, "t1")) is None
    assert cluster.writes == []
