"""Fixtures of the cluster tests: the session's real control plane, as its admin.

The helpers live in real_cluster_support.py (a uniquely named module: every
test folder's conftest.py is importable as `conftest`, so tests never import it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from real_cluster_support import Kube, ensure_crds

from cluster_support import binaries, shared_control_plane, unique


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Kube:
    """kubectl/helm/HTTP as the cluster admin; the chart's CRDs are installed."""
    cluster = shared_control_plane()
    found = Kube(cluster, binaries(), tmp_path_factory.mktemp("kube-home"))
    ensure_crds(found)
    return found


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A namespace of the test's own, deleted afterwards (nothing waits for it)."""
    name = kube.create_namespace(unique("t"))
    yield name
    kube.delete_namespaces(name)
