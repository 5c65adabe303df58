"""Issue 14 item 9 against the real apiserver: a TradingEngine name its children cannot
carry is refused at admission (422, with the reason), not left to loop in the operator."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster_support import cluster_with_crds, namespace_kubeconfig
from hean_operator.builders.common import MAX_NAME_LENGTH

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "paper-engine.yaml"


def _engine(name: str, namespace: str) -> dict[str, Any]:
    manifest = dict(yaml.safe_load(EXAMPLE.read_text()))
    manifest["metadata"] = {"name": name, "namespace": namespace}
    return manifest


def test_item9_a_name_too_long_for_its_children_is_refused_with_422(tmp_path: Path) -> None:
    assert MAX_NAME_LENGTH == 54  # 63 minus "-approval", the longest child suffix
    cluster = cluster_with_crds()
    namespace, kubeconfig = namespace_kubeconfig(cluster, tmp_path)
    kubectl = [str(cluster.binaries.kubectl), "--kubeconfig", str(kubeconfig)]

    def apply(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*kubectl, "apply", "-f", "-"],
            input=yaml.safe_dump(_engine(name, namespace)),
            capture_output=True,
            text=True,
            check=False,
        )

    refused = apply("a" * 70)
    assert refused.returncode != 0
    assert "metadata.name: at most 54 characters" in refused.stderr, refused.stderr
    # the status code is 422 Invalid (not a server error, nothing stored)
    url = f"{cluster.url}/apis/hean.io/v1alpha1/namespaces/{namespace}/tradingengines"
    request = urllib.request.Request(
        url,
        data=json.dumps(_engine("b" * 70, namespace)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, context=cluster.ssl_context())
    body = json.loads(raised.value.read())
    assert raised.value.code == 422 and body["reason"] == "Invalid", body
    assert "metadata.name: at most 54 characters" in body["message"]
    # a name that is no DNS-1035 label
    dotted = apply("a.b")
    assert dotted.returncode != 0 and "must start with a letter" in dotted.stderr
    # the longest name allowed is accepted
    assert apply("c" * 54).returncode == 0
    assert apply("c" * 55).returncode != 0
