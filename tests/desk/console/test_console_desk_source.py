"""DeskSource's scope: which namespaces the console lists, without a cluster.

Unscoped, everything the user may list, and the context's namespace once a
cluster-wide list of engines is refused (for approvals and backtests, only that
read falls back); given namespaces (the chart's in-cluster console), each of
them and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from hean_desk.console.desk_source import DeskSource
from hean_desk.errors import DeskError


@dataclass(frozen=True)
class View:
    name: str
    namespace: str
    raw: dict[str, Any] = field(default_factory=dict)


class FakeDesk:
    """DeskClient's listing methods over a few objects; refuses what `cluster_wide` lacks."""

    def __init__(self, *, engines_cluster_wide: bool, others_cluster_wide: bool) -> None:
        self.api = client.ApiClient()
        self.default_namespace = "mine"
        self.engines_cluster_wide = engines_cluster_wide
        self.others_cluster_wide = others_cluster_wide
        self.asked: list[tuple[str, str | None]] = []

    def _views(self, kind: str, namespace: str | None, allowed: bool) -> list[View]:
        self.asked.append((kind, namespace))
        if namespace is None and not allowed:
            raise DeskError(f"forbidden: your Kubernetes user may not list {kind} in all")
        return [
            View(f"{kind}-{ns}", ns, {"metadata": {"name": f"{kind}-{ns}", "namespace": ns}})
            for ns in ("mine", "a", "b")
            if namespace in (None, ns)
        ]

    def list_engines(self, namespace: str | None) -> list[View]:
        return self._views("engines", namespace, self.engines_cluster_wide)

    def list_backtests(self, namespace: str | None) -> list[View]:
        return self._views("backtests", namespace, self.others_cluster_wide)


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["metadata"]["namespace"] for i in items]


def test_unscoped_lists_every_namespace() -> None:
    desk = FakeDesk(engines_cluster_wide=True, others_cluster_wide=True)
    source = DeskSource(desk)  # type: ignore[arg-type]
    assert names(source.list_engines()) == ["mine", "a", "b"]
    assert names(source.list_engines("a")) == ["a"]


def test_a_refused_cluster_wide_engine_list_narrows_to_the_context() -> None:
    desk = FakeDesk(engines_cluster_wide=False, others_cluster_wide=False)
    source = DeskSource(desk)  # type: ignore[arg-type]
    assert names(source.list_engines()) == ["mine"]
    desk.asked.clear()
    assert names(source.list_engines()) == ["mine"]
    assert desk.asked == [("engines", "mine")]  # not asked cluster-wide again


def test_a_refused_backtest_list_falls_back_for_that_read_only() -> None:
    desk = FakeDesk(engines_cluster_wide=True, others_cluster_wide=False)
    source = DeskSource(desk)  # type: ignore[arg-type]
    assert names(source.list_backtests()) == ["mine"]
    assert names(source.list_engines()) == ["mine", "a", "b"]  # engines stay cluster-wide


def test_given_namespaces_are_the_scope() -> None:
    desk = FakeDesk(engines_cluster_wide=True, others_cluster_wide=True)
    source = DeskSource(desk, ["b", "a", "b"])  # type: ignore[arg-type]
    assert names(source.list_engines()) == ["b", "a"]
    assert names(source.list_backtests()) == ["b", "a"]
    assert ("engines", None) not in desk.asked  # never cluster-wide
