"""The read-only console (`--read-only`, and `--in-cluster` as the chart runs it):
no action buttons, the action endpoint refuses before anything reaches the API
server, a loopback Host on any port (kubectl port-forward's), and /healthz for
the kubelet's probes. Against the fake client, as test_console_server.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from console_fake import FakeClient, demo_client

from hean_desk.client import DeskClient
from hean_desk.console import console as console_command
from hean_desk.console import make_app
from hean_desk.console.server import CSRF_HEADER, READ_ONLY_REFUSAL
from hean_desk.errors import DeskError

ReadOnly = tuple[FakeClient, TestClient[Any, Any]]


@pytest.fixture
async def read_only() -> AsyncIterator[ReadOnly]:
    fake = demo_client()
    app = make_app(fake, report_interval=0.2, read_only=True, any_port=True)
    async with TestClient(TestServer(app)) as client:
        yield fake, client
    fake.close()


async def test_engine_page_has_no_action_buttons_and_says_why(read_only: ReadOnly) -> None:
    _, client = read_only
    page = await (await client.get("/engines/desk/btc")).text()
    assert "data-action=" not in page
    assert "This console is read-only" in page
    assert "kubectl hean halt btc -n desk" in page
    # everything else is still there: the same engine page
    assert 'data-trade-id="t-1"' in page


async def test_every_action_is_refused_before_the_api_server(read_only: ReadOnly) -> None:
    fake, client = read_only
    page = await (await client.get("/")).text()
    token = page.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
    for action in ("pause", "resume", "halt", "no-such-action"):
        response = await client.post(
            f"/api/engines/desk/btc/{action}",
            headers={CSRF_HEADER: token, "Origin": f"http://127.0.0.1:{client.port}"},
        )
        assert response.status == 403
        body = await response.json()
        assert body == {"ok": False, "message": READ_ONLY_REFUSAL}
        assert "read-only" in body["message"] and "kubectl hean" in body["message"]
    assert fake.patches == []


async def test_a_backtests_report_is_not_opened_and_the_page_says_how(
    read_only: ReadOnly,
) -> None:
    fake, client = read_only
    page = await (await client.get("/backtests/research/ema-sweep")).text()
    assert 'id="open-report"' not in page and 'class="run-report"' not in page
    assert "kubectl hean backtest report ema-sweep -n research --open" in page
    assert "reports/research/ema-sweep/u-2/3.html on PersistentVolumeClaim" in page
    response = await client.get("/backtests/research/ema-sweep/report")
    assert response.status == 403
    assert "This console is read-only: opening a report starts a reader pod" in (
        await response.text()
    )
    assert fake.report_files == []  # nothing asked of the API server


async def test_a_loopback_host_on_any_port_is_this_console(read_only: ReadOnly) -> None:
    """kubectl port-forward: the browser names the user's local port, not the pod's."""
    _, client = read_only
    for host in ("127.0.0.1:9999", "localhost:18765", "[::1]:8080", "localhost"):
        response = await client.get("/", headers={"Host": host})
        assert response.status == 200, host
    for host in ("rebound.example:9999", "hean-console.hean-system.svc:8765", "127.0.0.1:x"):
        response = await client.get("/", headers={"Host": host})
        assert response.status == 421, host


async def test_the_local_console_still_wants_its_own_port() -> None:
    fake = demo_client()
    async with TestClient(TestServer(make_app(fake, read_only=True))) as client:
        assert (await client.get("/", headers={"Host": "127.0.0.1:9999"})).status == 421
        assert (await client.get("/", headers={"Host": f"127.0.0.1:{client.port}"})).status == 200
    fake.close()


async def test_healthz_answers_the_kubelet_under_any_host(read_only: ReadOnly) -> None:
    _, client = read_only
    response = await client.get("/healthz", headers={"Host": "10.244.1.7:8765"})
    assert response.status == 200
    assert await response.text() == "ok"
    # and nothing else answers the pod's IP
    assert (await client.get("/", headers={"Host": "10.244.1.7:8765"})).status == 421


def test_in_cluster_outside_a_pod_is_a_clear_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    result = CliRunner().invoke(
        console_command, ["--in-cluster", "--address", "0.0.0.0", "--no-browser"]
    )
    assert result.exit_code == 2
    assert "--in-cluster: not running in a Kubernetes pod" in result.output
    assert "Traceback" not in result.output


def test_in_cluster_takes_no_kubeconfig() -> None:
    with pytest.raises(DeskError, match=r"--kubeconfig: not with --in-cluster"):
        DeskClient("some-kubeconfig", None, in_cluster=True)


def test_in_cluster_reads_the_pods_service_account(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The token and CA Kubernetes mounts, the API server from the pod's environment,
    and the pod's namespace as the default one."""
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "namespace").write_text("hean-system\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setattr("hean_desk.client.SERVICE_ACCOUNT_DIR", tmp_path)
    desk = DeskClient(in_cluster=True)
    try:
        assert desk.default_namespace == "hean-system"
        assert desk.api.configuration.host == "https://10.96.0.1:443"
        assert desk.api.configuration.api_key["BearerToken"].lower() == "bearer sa-token"
    finally:
        desk.close()


def test_a_non_loopback_address_needs_in_cluster() -> None:
    result = CliRunner().invoke(console_command, ["--read-only", "--address", "0.0.0.0"])
    assert result.exit_code == 2
    assert "loopback address only" in result.output and "--in-cluster" in result.output


def test_the_command_documents_read_only_and_in_cluster() -> None:
    result = CliRunner().invoke(console_command, ["--help"])
    assert result.exit_code == 0
    assert "--read-only" in result.output and "--in-cluster" in result.output


@pytest.mark.parametrize(
    ("hean_host", "address", "bound"),
    [
        ("198.18.0.7", "0.0.0.0", "198.18.0.7"),  # a node without network namespaces
        (None, "0.0.0.0", "0.0.0.0"),  # a pod's own network namespace
        ("198.18.0.7", "10.1.2.3", "10.1.2.3"),  # an address given is kept
    ],
)
def test_in_cluster_binds_the_pods_address_the_node_names(
    monkeypatch: pytest.MonkeyPatch, hean_host: str | None, address: str, bound: str
) -> None:
    """--address=0.0.0.0 is the pod's every address; where the node runs pods without
    network namespaces (HEAN's sandbox) it names the pod's own in HEAN_HOST."""
    served: dict[str, Any] = {}

    class Client:
        def __init__(self, *_: Any, **__: Any) -> None: ...

        def close(self) -> None: ...

    def serve(_: Any, **kwargs: Any) -> None:
        served.update(kwargs)

    if hean_host is None:
        monkeypatch.delenv("HEAN_HOST", raising=False)
    else:
        monkeypatch.setenv("HEAN_HOST", hean_host)
    monkeypatch.setattr("hean_desk.console.DeskClient", Client)
    monkeypatch.setattr("hean_desk.console.serve", serve)
    result = CliRunner().invoke(
        console_command, ["--in-cluster", f"--address={address}", "--no-browser"]
    )
    assert result.exit_code == 0, result.output
    assert served["host"] == bound
    assert served["read_only"] is True
