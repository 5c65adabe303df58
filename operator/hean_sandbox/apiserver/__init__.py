"""An in-process Kubernetes API server emulator over real HTTP (`hean sandbox`).

`kubectl`, the `kubernetes` Python client and kopf talk to it as to a cluster.
See docs/sandbox.md for what is emulated and what is not.
"""

from __future__ import annotations

from .errors import ApiError
from .server import ApiServer
from .store import AuditEntry, Store
from .threaded import ServerThread

__all__ = ["ApiError", "ApiServer", "AuditEntry", "ServerThread", "Store"]
