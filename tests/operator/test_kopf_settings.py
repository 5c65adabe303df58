"""kopf's settings as the operator sets them: what it watches, what it logs."""

from __future__ import annotations

import logging

import kopf
from kopf._cogs.structs.references import Resource
from operator_approval_support import live_spec

from hean_operator.builders.common import EngineRef
from hean_operator.builders.pod import EngineImage, build_pod
from hean_operator.handlers import engines
from hean_operator.main import ENGINE_PODS, _quiet_routine, configure_kopf
from hean_operator.settings import OperatorSettings

PODS = Resource(group="", version="v1", plural="pods", kind="Pod", namespaced=True)
ENGINES = Resource(
    group="hean.io", version="v1alpha1", plural="tradingengines", kind="TradingEngine"
)


def test_the_api_server_sends_engine_pods_only() -> None:
    """kopf's `labels=` filters are client-side: without a server-side selector every
    pod of the watched namespaces would be sent to the operator and decoded."""
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    assert list(settings.watching.label_selectors.collect(PODS)) == [ENGINE_PODS]
    assert list(settings.watching.label_selectors.collect(ENGINES)) == []
    # the selector is the label the operator puts on its engine pods
    engine = EngineRef(name="btc", namespace="default", uid="u1", generation=1)
    pod = build_pod(engine, live_spec(), EngineImage())
    key, _, value = ENGINE_PODS.partition("=")
    assert pod["metadata"]["labels"][key] == value


def _shown(message: str, level: int = logging.INFO) -> bool:
    record = logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)
    return _quiet_routine(record)


def test_routine_successes_are_not_logged_but_failures_and_reconciles_are() -> None:
    registry = kopf.OperatorRegistry()
    engines.register(registry, OperatorSettings())
    # the ids kopf names them by (a renamed handler would be logged again)
    routine = [str(h) for h in registry._watching._handlers]
    routine += [str(h) for h in registry._indexing._handlers]
    assert routine == ["Handler 'engine_pod_ready'", "Indexer 'engine_pods_by_name'"]
    for name in (*routine, "Timer 'poll'", "Timer 'approvals'"):
        assert not _shown(f"{name} succeeded.")
        assert _shown(f"{name} failed with an exception and will try again in 1 seconds: x")
    assert _shown("Handler 'reconcile' succeeded.")
    assert _shown("Creation is processed: 1 succeeded; 0 failed.")


def test_a_new_engine_is_first_polled_an_interval_later_a_running_one_soon() -> None:
    """Nothing is to be seen of a new engine before its pod is Ready (its Ready event
    polls it then); an engine found at the operator's start is looked at within the
    jitter. Both jittered, so that engines are not polled in lockstep."""
    settings = OperatorSettings(poll_interval=10, poll_jitter=0.2)
    registry = kopf.OperatorRegistry()
    engines.register(registry, settings)
    (timer,) = registry._spawning._handlers
    delay = timer.initial_delay
    assert callable(delay)
    new = [delay(body={"spec": {}}, meta={}, spec={}) for _ in range(200)]
    running = [delay(body={"status": {"observedGeneration": 1}}) for _ in range(200)]
    assert all(10 <= d <= 12 for d in new) and max(new) - min(new) > 1
    assert all(0 <= d <= 2 for d in running) and max(running) - min(running) > 1
