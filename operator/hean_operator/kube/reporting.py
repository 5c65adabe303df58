"""Who the operator's Events say reported them (`kubectl describe`'s "From" column).

kopf's own Events and the ones `KubernetesCluster.create_event` posts carry the
same pair: the component `hean-operator` and this operator's pod as the instance.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

REPORTING_COMPONENT = "hean-operator"
_MAX_INSTANCE = 128  # the API server's limit on an Event's reportingInstance


def reporting_instance(environ: Mapping[str, str] = os.environ) -> str:
    """This operator process: `POD_NAME` when set, else the host name (in a pod, its name)."""
    return (environ.get("POD_NAME") or socket.gethostname())[:_MAX_INSTANCE]
