"""Events name the operator as their reporting controller, not kopf's "kopf"/"dev"."""

from __future__ import annotations

import socket
from typing import Any

import kopf
import pytest

from hean_operator.kube.cluster import KubernetesCluster
from hean_operator.kube.reporting import REPORTING_COMPONENT, reporting_instance
from hean_operator.main import configure_kopf

ENGINE = {
    "apiVersion": "hean.io/v1alpha1",
    "kind": "TradingEngine",
    "metadata": {"name": "btc", "namespace": "trading", "uid": "u-1"},
}


class FakeCore:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
        self.events.append((namespace, body))


def test_the_instance_is_the_pod_name_or_else_the_host_name() -> None:
    assert (
        reporting_instance({"POD_NAME": "hean-operator-7d9f-abcde"}) == "hean-operator-7d9f-abcde"
    )
    assert reporting_instance({}) == socket.gethostname()[:128]
    assert len(reporting_instance({"POD_NAME": "x" * 300})) == 128


def test_kopf_posts_events_as_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "hean-operator-0")
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    assert settings.posting.reporting_component == REPORTING_COMPONENT == "hean-operator"
    assert settings.posting.reporting_instance == "hean-operator-0"


def test_the_clusters_own_events_name_the_operator_too() -> None:
    cluster = KubernetesCluster(reporting_instance="hean-operator-0")
    core = FakeCore()
    cluster._core = core  # type: ignore[assignment]
    cluster.create_event(ENGINE, "Warning", "ApprovalLost", "y" * 2000)
    [(namespace, body)] = core.events
    assert namespace == "trading"
    assert body["source"] == {"component": "hean-operator"}
    assert body["reportingComponent"] == "hean-operator"
    assert body["reportingInstance"] == "hean-operator-0"
    assert body["involvedObject"]["uid"] == "u-1"
    assert len(body["message"]) == 1024
    assert body["firstTimestamp"] == body["lastTimestamp"]
    assert body["firstTimestamp"].endswith("Z")


def test_the_cluster_defaults_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "hean-operator-1")
    cluster = KubernetesCluster()
    core = FakeCore()
    cluster._core = core  # type: ignore[assignment]
    cluster.create_event(ENGINE, "Normal", "Approved", "ok")
    assert core.events[0][1]["reportingInstance"] == "hean-operator-1"
