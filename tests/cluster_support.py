"""The test world: one real Kubernetes control plane per test session.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from
the Go modules pinned in cluster/ (`hean sandbox build`; reused from the cache
once built) and started on loopback the first time a test asks for them. Each
test then takes a namespace (and, in scenarios, a node and a Helm release) of
its own, so tests never see each other's objects; tests/conftest.py stops the
cluster when the session ends.

No stand-in: when the binaries cannot be built (no Go toolchain), the tests
that need the cluster fail with the reason.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from hean_operator.crds import write_crds
from hean_sandbox.controlplane.build import Binaries, BuildError, ensure_binaries
from hean_sandbox.controlplane.cluster import ControlPlane

_lock = threading.Lock()
_cluster: ControlPlane | None = None
_workdir: Path | None = None


def binaries() -> Binaries:
    try:
        return ensure_binaries(print)
    except BuildError as exc:
        pytest.fail(f"the control plane cannot be built here: {exc}", pytrace=False)


def shared_control_plane() -> ControlPlane:
    """The session's cluster, started on first use."""
    global _cluster, _workdir
    with _lock:
        if _cluster is None:
            built = binaries()
            _workdir = Path(tempfile.mkdtemp(prefix="hean-cluster-"))
            cluster = ControlPlane(built, _workdir)
            cluster.start()
            _cluster = cluster
            atexit.register(stop_shared_control_plane)
        return _cluster


def stop_shared_control_plane() -> None:
    global _cluster, _workdir
    with _lock:
        if _cluster is not None:
            _cluster.stop()
            _cluster = None
        if _workdir is not None:
            shutil.rmtree(_workdir, ignore_errors=True)
            _workdir = None


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


_crds_installed = False


def cluster_with_crds() -> ControlPlane:
    """The session's cluster with HEAN's CRDs (generated from the models) established."""
    global _crds_installed
    cluster = shared_control_plane()
    with _lock:
        if not _crds_installed:
            crds = write_crds(Path(tempfile.mkdtemp(prefix="hean-crds-")))
            kubectl = [str(cluster.binaries.kubectl), "--kubeconfig", str(cluster.admin_kubeconfig)]
            for path in crds:
                subprocess.run([*kubectl, "apply", "--server-side", "-f", str(path)], check=True)
            subprocess.run(
                [*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"],
                check=True,
                capture_output=True,
            )
            _crds_installed = True
    return cluster


def namespace_kubeconfig(cluster: ControlPlane, directory: Path) -> tuple[str, Path]:
    """A fresh namespace and an admin kubeconfig whose context points at it."""
    namespace = unique("t")
    cluster.create_namespace(namespace)
    assert cluster.admin is not None
    path = cluster.write_kubeconfig(
        directory / "kubeconfig", cluster.admin, user="admin", namespace=namespace
    )
    return namespace, path


def engine_manifest(
    name: str, exchange_url: str | None, namespace: str = "default", **spec_overrides: Any
) -> dict[str, Any]:
    """A valid paper TradingEngine (the scenarios' and the cluster tests' one)."""
    exchange: dict[str, Any] = {"id": "binance"}
    if exchange_url is not None:
        exchange["endpoint"] = exchange_url
    spec: dict[str, Any] = {
        "mode": "paper",
        "exchange": exchange,
        "market": {"symbol": "BTC/USDT", "timeframe": "1m"},
        "strategy": {"name": "ema_cross", "params": {"fast": 3, "slow": 8, "quantity": "0.5"}},
        "risk": {
            "maxOrderNotional": "10000",
            "maxPositionNotional": "20000",
            "maxOpenOrders": 4,
            "maxDailyLoss": "5000",
            "maxDrawdownPct": "20",
            "maxOrdersPerMinute": 30,
        },
        "paper": {"startingBalances": {"USDT": "100000"}, "feeRate": "0.001"},
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
