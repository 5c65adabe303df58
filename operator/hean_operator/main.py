"""`hean operator run`: the kopf operator with HEAN's settings, metrics and handlers."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from typing import Any

import aiohttp
import kopf
from kubernetes import config as kube_config
from prometheus_client import start_http_server

from hean_operator.approvals.scheduler import SystemClock
from hean_operator.builders.job import JobSettings
from hean_operator.handlers import approvals, backtests, engines
from hean_operator.kube.backtests import KubernetesBacktests
from hean_operator.kube.cluster import KubernetesCluster
from hean_operator.kube.reporting import REPORTING_COMPONENT, reporting_instance
from hean_operator.kube.trust import TrustFiles, TrustWatcher
from hean_operator.metrics import OperatorMetrics
from hean_operator.settings import OperatorSettings

FINALIZER = "hean.io/finalizer"


def _quiet_polls(record: logging.LogRecord) -> bool:
    """Drop kopf's "Timer 'poll' succeeded" lines: one per engine per poll interval
    says nothing (status changes are Events and logged); failures still show."""
    return not record.getMessage().startswith("Timer 'poll' succeeded")


def _retries_are_warnings(record: logging.LogRecord) -> bool:
    """kopf logs each retried API request at ERROR ("Request attempt #1/9 failed; will
    retry"). A real API server answers 429 while a new CRD's storage starts and 5xx
    during upgrades; a request that is retried has not failed yet, so it is a
    WARNING. The attempt that gives up ("escalating") stays an ERROR."""
    if record.levelno == logging.ERROR and "failed; will retry" in record.getMessage():
        record.levelno = logging.WARNING
        record.levelname = "WARNING"
    return True


def _load_kube_config(kubeconfig: str | None) -> None:
    if kubeconfig:
        kube_config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return
    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        kube_config.load_kube_config()  # type: ignore[no-untyped-call]


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator: its finalizer, its annotations, its Events."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="hean.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="hean.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # Events name the operator as their reporting controller, not kopf's "kopf"/"dev".
    settings.posting.reporting_component = REPORTING_COMPONENT
    settings.posting.reporting_instance = reporting_instance()
    settings.watching.server_timeout = 300


def backtest_runtime(settings: OperatorSettings) -> backtests.BacktestRuntime:
    """The Backtest handlers' client and settings: Jobs run the engine image's command."""
    image = settings.image
    return backtests.BacktestRuntime(
        cluster=KubernetesBacktests(),
        settings=settings,
        job=JobSettings(command=image.command, pull_policy=image.pull_policy),
    )


def build_registry(settings: OperatorSettings, runtime: engines.Runtime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings)
        runtime.session = aiohttp.ClientSession()
        memo["runtime"] = runtime
        memo["backtests"] = backtest_runtime(runtime.settings)
        await _start_approvals(settings_=runtime.settings, runtime=runtime, memo=memo)

    @kopf.on.cleanup(registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        watcher = memo.get("trust_watcher")
        if watcher is not None:
            watcher.stop()
        if runtime.session is not None:
            await runtime.session.close()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if settings.kubeconfig:
            # An explicit --kubeconfig wins over in-cluster credentials; kopf's
            # kubeconfig login reads $KUBECONFIG, which run_operator points at it.
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_via_client(**kwargs)

    engines.register(registry, settings)
    approvals.register(registry)
    backtests.register(registry)
    return registry


async def _start_approvals(
    settings_: OperatorSettings, runtime: engines.Runtime, memo: kopf.Memo
) -> None:
    """Know the trust policy and every LiveApproval before the first engine is judged.

    Runs in kopf's start-up (before any resource handler): a restarted operator
    that judged running engines with nothing indexed yet would halt them all.
    """
    loop = asyncio.get_running_loop()
    configured = settings_.trust_configmap is not None
    enforcer = approvals.ApprovalEnforcer(
        runtime, SystemClock(loop), approvals.trust_state(None, configured)
    )
    # kopf's context (its Event queue) for evaluations started by timers and threads
    enforcer.bind(loop, contextvars.copy_context())
    if settings_.trust_configmap is not None:

        def changed(files: TrustFiles) -> None:
            state = approvals.trust_state(files)
            loop.call_soon_threadsafe(enforcer.set_trust, state)

        watcher = TrustWatcher(settings_.trust_namespace, settings_.trust_configmap, changed)
        enforcer.trust = approvals.trust_state(await asyncio.to_thread(watcher.read))
        if enforcer.trust.problem:
            logging.getLogger("hean.operator.trust").warning(
                "trust policy: %s", enforcer.trust.problem
            )
        watcher.start()
        memo["trust_watcher"] = watcher
    namespaces: list[str | None] = list(settings_.namespaces) or [None]
    for namespace in namespaces:
        for manifest in await asyncio.to_thread(runtime.cluster.list_approvals, namespace):
            enforcer.index(manifest)
    runtime.approvals = enforcer
    for key in enforcer.engines():  # approvals written while the operator was away
        enforcer.request(key)


async def run_operator(
    settings: OperatorSettings,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    # JSON lines, each handler's line carrying the resource (namespace, name, uid)
    # under "object": what a log pipeline can filter an engine's history by.
    kopf.configure(
        verbose=settings.verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="object",
    )
    if settings.kubeconfig:
        os.environ["KUBECONFIG"] = settings.kubeconfig
    for handler in logging.getLogger().handlers:
        handler.addFilter(_retries_are_warnings)
    if not settings.verbose:
        logging.getLogger("kopf.objects").addFilter(_quiet_polls)
        # kopf's liveness endpoint is aiohttp: one access line per probe says nothing.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    _load_kube_config(settings.kubeconfig)
    metrics = OperatorMetrics()
    if settings.metrics_port is not None:
        start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry
        )
    runtime = engines.Runtime(cluster=KubernetesCluster(), settings=settings, metrics=metrics)
    registry = build_registry(settings, runtime)
    await kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
