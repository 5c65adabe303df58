"""`hean operator run`: the kopf operator with HEAN's settings, metrics and handlers."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from prometheus_client import start_http_server

from hean_operator.approvals.trust import trust_state
from hean_operator.builders.common import LABEL_COMPONENT
from hean_operator.builders.job import JobSettings
from hean_operator.children.ensure import CALL_THREADS
from hean_operator.context import CONTEXT, OperatorContext
from hean_operator.handlers import approvals, backtests, engines
from hean_operator.kube.backtests import KubernetesBacktests
from hean_operator.kube.cluster import KubernetesCluster
from hean_operator.kube.reporting import REPORTING_COMPONENT, reporting_instance
from hean_operator.kube.trust import TrustFiles, TrustWatcher
from hean_operator.metrics import OperatorMetrics
from hean_operator.settings import OperatorSettings
from hean_operator.status.handled import HandledSpecStorage, RetryProgressStorage

FINALIZER = "hean.io/finalizer"
# Threads for the handlers' blocking API calls, and as many pooled connections to
# the API server (a call that finds the pool empty would open a new TLS connection).
API_THREADS = 32
# kopf's "... succeeded." lines of the routine handlers: one per engine per timer
# tick, and two per engine pod event (its index, its Ready check), say nothing
# (status changes are Events and logged); failures still show.
QUIET_SUCCESSES = (
    "Timer 'poll' succeeded",
    "Timer 'approvals' succeeded",
    "Indexer ",
    "Handler 'engine_pod_ready' succeeded",
)
ENGINE_PODS = f"{LABEL_COMPONENT}=engine"


def _quiet_routine(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not (message.startswith(QUIET_SUCCESSES) and message.endswith(" succeeded."))


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
    else:
        try:
            kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kube_config.ConfigException:
            kube_config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = kube_client.Configuration.get_default_copy()
    # The children's own threads (children/ensure.py) call the API server too.
    configuration.connection_pool_maxsize = API_THREADS + CALL_THREADS + 8
    kube_client.Configuration.set_default(configuration)


def configure_kopf(
    settings: kopf.OperatorSettings, handled: kopf.DiffBaseStorage | None = None
) -> None:
    """kopf's settings for this operator: its finalizer, its bookkeeping, its Events.

    kopf's writes of its own are the finalizer (once per engine) and, while a
    handler is retried, its progress (annotations). What it last handled of a
    spec (its diff base) is no write of its own: it is in the status the
    reconcile writes anyway (`hean_operator.status.handled`).
    """
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = RetryProgressStorage(prefix="hean.io")
    settings.persistence.diffbase_storage = handled or HandledSpecStorage()
    settings.posting.level = logging.INFO
    # Events name the operator as their reporting controller, not kopf's "kopf"/"dev".
    settings.posting.reporting_component = REPORTING_COMPONENT
    settings.posting.reporting_instance = reporting_instance()
    settings.watching.server_timeout = 300
    # Engine pods only, filtered by the API server: the handlers' `labels=` filters
    # are kopf's, applied after every pod of the watched namespaces (any
    # application's) has been sent and decoded.
    settings.watching.label_selectors["v1", "pods"] = ENGINE_PODS


def backtest_runtime(settings: OperatorSettings) -> backtests.BacktestRuntime:
    """The Backtest handlers' client and settings: Jobs run the engine image's command."""
    image = settings.image
    return backtests.BacktestRuntime(
        cluster=KubernetesBacktests(),
        settings=settings,
        job=JobSettings(command=image.command, pull_policy=image.pull_policy),
    )


def build_registry(settings: OperatorSettings, context: OperatorContext) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings, context.handled)
        # The handlers' blocking API calls run in the loop's default executor
        # (asyncio.to_thread): asyncio sizes it by CPUs (6 threads on 2 cores),
        # which queues a hundred engines' calls, each mostly waiting on the API server.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="api")
        )
        await context.engines.open()
        memo[CONTEXT] = context
        memo["backtests"] = backtest_runtime(context.settings)
        watcher = await _read_trust(context)
        if watcher is not None:
            memo["trust_watcher"] = watcher

    @kopf.on.cleanup(registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        watcher = memo.get("trust_watcher")
        if watcher is not None:
            watcher.stop()
        await context.engines.close()

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


async def _read_trust(context: OperatorContext) -> TrustWatcher | None:
    """Read the trust policy before the first engine is judged, then follow its changes.

    Runs in kopf's start-up, before any resource handler (kopf fills its index of
    LiveApprovals before them too): a restarted operator that judged running
    engines with no trust policy read yet would halt them all.
    """
    settings = context.settings
    if settings.trust_configmap is None:
        context.set_trust(trust_state(None, configured=False))
        return None
    loop = asyncio.get_running_loop()

    def changed(files: TrustFiles) -> None:  # on the watch's thread
        loop.call_soon_threadsafe(context.set_trust, trust_state(files))

    watcher = TrustWatcher(settings.trust_namespace, settings.trust_configmap, changed)
    context.set_trust(trust_state(await asyncio.to_thread(watcher.read)))
    watcher.start()
    return watcher


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
        logging.getLogger("kopf.objects").addFilter(_quiet_routine)
        # kopf's liveness endpoint is aiohttp: one access line per probe says nothing.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    _load_kube_config(settings.kubeconfig)
    metrics = OperatorMetrics()
    if settings.metrics_port is not None:
        start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry
        )
    context = OperatorContext(cluster=KubernetesCluster(), settings=settings, metrics=metrics)
    registry = build_registry(settings, context)
    await kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
