"""A kubeconfig pointing kubectl and client libraries at the emulator."""

from __future__ import annotations

import yaml

CONTEXT = "hean-sandbox"


def kubeconfig(server: str, *, token: str | None = None, namespace: str = "default") -> str:
    user: dict[str, str] = {"token": token} if token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)
