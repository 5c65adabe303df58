"""Fixtures for the sandbox's node: the session's real control plane, a namespace and a
node of the test's own, and an admin JSON client (helpers in node_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from node_support import NodeWorld, node_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[NodeWorld]:
    """A node that runs pods as processes, in a fresh namespace."""
    async with node_world(tmp_path, fake=False) as current:
        yield current


@pytest.fixture
async def fake_world(tmp_path: Path) -> AsyncIterator[NodeWorld]:
    """A KWOK-style node (pods reported Ready, stand-in engines), in a fresh namespace."""
    async with node_world(tmp_path, fake=True) as current:
        yield current
