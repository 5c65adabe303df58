"""Events name the operator as their reporting controller, not kopf's "kopf"/"dev"."""

from __future__ import annotations

import socket

import kopf
import pytest

from hean_operator.kube import events
from hean_operator.kube.reporting import REPORTING_COMPONENT, reporting_instance
from hean_operator.main import configure_kopf

ENGINE = {
    "apiVersion": "hean.io/v1alpha1",
    "kind": "TradingEngine",
    "metadata": {"name": "btc", "namespace": "trading", "uid": "u-1"},
}


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


def test_every_event_goes_through_kopfs_poster_with_the_message_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The approvals' Events too (they were posted by a client of their own): one poster,
    so one reporting controller, the operator's."""
    posted: list[tuple[str, str, str, str]] = []
    monkeypatch.setattr(
        kopf,
        "warn",
        lambda obj, *, reason, message: posted.append(("Warning", obj["kind"], reason, message)),
    )
    monkeypatch.setattr(
        kopf,
        "info",
        lambda obj, *, reason, message: posted.append(("Normal", obj["kind"], reason, message)),
    )
    events.warning(ENGINE, "ApprovalLost", "y" * 2000)
    events.normal(ENGINE, "Approved", "ok")
    assert [p[:3] for p in posted] == [
        ("Warning", "TradingEngine", "ApprovalLost"),
        ("Normal", "TradingEngine", "Approved"),
    ]
    assert len(posted[0][3]) == 1024
