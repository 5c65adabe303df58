"""What the chart's read-only console may do, asked of the real authorizer and tried
with the console's own client.

tests/repo/chart/test_chart_console.py checks the rendered rules against the
console's call table (`hean_desk.console.access.CONSOLE_VERBS`); this installs
the chart with `console.enabled` (pods never scheduled: a node selector no node
has) and asks the API server (`--authorization-mode=Node,RBAC`):

- `kubectl auth can-i` as the console's ServiceAccount: every read in the table,
  in every watched namespace, and the control Secret of the one engine that
  `console.engineHistory` names; no write of anything, no other Secret, no
  `create` on pods/proxy (a POST to an engine), nothing in an unwatched namespace
  or across namespaces;
- the DeskClient the console runs, with a token of that ServiceAccount (the
  TokenRequest API, as the kubelet mounts one in the pod): its reads go through,
  and its patch of a TradingEngine's spec is refused with the clear RBAC message;
- the read-only console itself on that client, as the pod serves it: the
  overview lists the watched namespaces' engines, an engine's page says which
  permission its history lacks, and the action endpoint refuses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from real_cluster_support import CHART_DIR, NOWHERE, Kube, Question, wait_until

from cluster_support import unique
from hean_desk.client import DeskClient
from hean_desk.console import make_app
from hean_desk.console.access import CONSOLE_VERBS
from hean_desk.console.desk_source import DeskSource
from hean_desk.errors import DeskError

GROUPED = {"tradingengines", "liveapprovals", "backtests"}


@dataclass
class Install:
    release: str
    namespace: str
    service_account: str
    watched: list[str]
    unwatched: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@pytest.fixture
def install(kube: Kube) -> Iterator[Install]:
    namespace = kube.create_namespace(unique("op"))
    watched = [kube.create_namespace(unique("t")) for _ in range(2)]
    unwatched = kube.create_namespace(unique("t"))
    release = unique("hean")
    values = kube.values_file(
        {
            "watchNamespaces": watched,
            "nodeSelector": NOWHERE,
            "console": {
                "enabled": True,
                "nodeSelector": NOWHERE,
                "engineHistory": [f"{watched[0]}/btc"],
            },
        }
    )
    try:
        kube.helm(
            "install", release, str(CHART_DIR), "--namespace", namespace, "--values", str(values)
        )
        yield Install(release, namespace, f"{release}-console", watched, unwatched)
    finally:
        kube.helm("uninstall", release, "--namespace", namespace, check=False)
        kube.delete_namespaces(namespace, *watched, unwatched)


def _kubectl_resource(resource: str) -> tuple[str, tuple[str, ...]]:
    base, _, sub = resource.partition("/")
    name = f"{base}.hean.io" if base in GROUPED else base
    return name, ((f"--subresource={sub}",) if sub else ())


def _reads(namespace: str | None) -> dict[Question, bool]:
    out: dict[Question, bool] = {}
    for resource, verbs in CONSOLE_VERBS.items():
        name, extra = _kubectl_resource(resource)
        out |= {Question(verb, name, namespace, extra): True for verb in verbs}
    return out


NEVER: list[tuple[str, str, tuple[str, ...]]] = [
    ("patch", "tradingengines.hean.io", ()),
    ("update", "tradingengines.hean.io", ()),
    ("create", "tradingengines.hean.io", ()),
    ("delete", "tradingengines.hean.io", ()),
    ("patch", "tradingengines.hean.io", ("--subresource=status",)),
    ("create", "liveapprovals.hean.io", ()),
    ("delete", "liveapprovals.hean.io", ()),
    ("create", "backtests.hean.io", ()),
    ("delete", "backtests.hean.io", ()),
    ("create", "pods", ("--subresource=proxy",)),  # a POST to the engine (/control)
    ("create", "pods", ("--subresource=portforward",)),
    ("create", "pods", ("--subresource=exec",)),
    ("get", "pods", ()),
    ("delete", "pods", ()),
    ("list", "secrets", ()),
    ("get", "secrets", ()),
    ("get", "secrets/eth-control", ()),  # an engine engineHistory does not name
    ("get", "configmaps", ()),
    ("create", "events", ()),
    ("*", "*", ()),
]


def test_the_console_may_read_what_it_shows_and_change_nothing(
    kube: Kube, install: Install
) -> None:
    first, second = install.watched
    expected = _reads(first) | _reads(second)
    expected[Question("get", "secrets/btc-control", first)] = True
    expected[Question("get", "secrets/btc-control", second)] = False  # by namespace too
    for ns in install.watched:
        expected |= {Question(v, r, ns, e): False for v, r, e in NEVER}
    # nothing outside the watched namespaces, nor across all of them
    expected |= {replace(q, namespace=install.unwatched): False for q in _reads(first)}
    expected |= {replace(q, namespace="kube-system"): False for q in _reads(first)}
    expected |= {replace(q, namespace=install.namespace): False for q in _reads(first)}
    for verb in ("list", "watch"):
        expected[Question(verb, "tradingengines.hean.io", None)] = False
    wait_until(
        "the console's RBAC to be in effect",
        lambda: kube.can_i(install.user, "list", "tradingengines.hean.io", first),
    )
    answers = kube.answers(install.user, expected)
    wrong = [
        f"can-i {q}: {'yes' if answers[q] else 'no'}, expected {'yes' if allowed else 'no'}"
        for q, allowed in expected.items()
        if answers[q] != allowed
    ]
    assert not wrong, f"{install.user}:\n" + "\n".join(wrong)


def _engine(name: str, namespace: str) -> dict[str, Any]:
    manifest = yaml.safe_load((CHART_DIR.parents[1] / "examples" / "paper-engine.yaml").read_text())
    manifest["metadata"] = {"name": name, "namespace": namespace}
    return dict(manifest)


def _console_kubeconfig(kube: Kube, install: Install, path: Path) -> Path:
    """A kubeconfig with a token of the console's ServiceAccount (TokenRequest)."""
    code, answer = kube.api(
        "POST",
        f"/api/v1/namespaces/{install.namespace}/serviceaccounts/{install.service_account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
    )
    assert code == 201, answer
    admin = yaml.safe_load(Path(kube.kubeconfig).read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "console", "user": {"token": answer["status"]["token"]}}],
                "contexts": [
                    {
                        "name": "console",
                        "context": {"cluster": cluster["name"], "user": "console"},
                    }
                ],
                "current-context": "console",
            }
        )
    )
    return path


def test_the_consoles_client_reads_and_is_refused_a_patch(
    kube: Kube, install: Install, tmp_path: Path
) -> None:
    first, second = install.watched
    kube.apply(_engine("btc", first))
    kube.apply(_engine("eth", second))
    kube.apply(_engine("ada", install.unwatched))
    for name in ("btc", "eth"):
        namespace = first if name == "btc" else second
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{name}-control", "namespace": namespace},
                "stringData": {"token": f"{name}-token"},
            }
        )
    desk = DeskClient(str(_console_kubeconfig(kube, install, tmp_path / "console.kubeconfig")))
    try:
        wait_until(
            "the console's RBAC to be in effect",
            lambda: bool(desk.list_engines(first)),
        )
        source = DeskSource(desk, install.watched)
        # every watched namespace's engines, none of the unwatched one's
        listed = {
            (e["metadata"]["namespace"], e["metadata"]["name"]) for e in source.list_engines()
        }
        assert listed == {(first, "btc"), (second, "eth")}
        assert source.list_approvals() == [] and source.list_backtests() == []
        assert desk.get_engine(second, "eth").name == "eth"
        assert desk.events(first, "btc") == []
        # the merged watch of both namespaces starts with both engines
        stream = source.watch_engines()
        seen = {(kind, obj["metadata"]["name"]) for kind, obj in (next(stream), next(stream))}
        stream.close()
        assert seen == {("ADDED", "btc"), ("ADDED", "eth")}

        # the engine's API and log: allowed by RBAC (no pod runs, so not found)
        for call in (
            lambda: desk.engine_report(first, "btc"),
            lambda: desk.logs(first, "btc", 10),
            lambda: desk.engine_history(first, "btc", "fills"),  # its token is readable
        ):
            with pytest.raises(DeskError) as found:
                call()
            assert "forbidden" not in found.value.message, found.value.message

        # the history of an engine engineHistory does not name: its Secret is refused
        with pytest.raises(DeskError, match=r"^forbidden: .* may not get secrets/eth-control"):
            desk.engine_history(second, "eth", "fills")
        # and a change of anything: refused, with the RBAC message
        with pytest.raises(DeskError, match=r"^forbidden: .* may not patch tradingengines"):
            desk.patch_spec(first, "btc", {"halt": True})
        with pytest.raises(DeskError, match=r"^forbidden: .* may not create pods/proxy"):
            desk.test_order(first, "btc", "buy", "0.001")
        with pytest.raises(DeskError, match=r"^forbidden: .* may not list tradingengines"):
            desk.list_engines(install.unwatched)

        pages = asyncio.run(_read_only_pages(DeskSource(desk, install.watched), first, second))
    finally:
        desk.close()
    assert kube.get("tradingengine", "btc", first)["spec"].get("halt") in (None, False)
    overview, engine, refused = pages
    assert f'data-key="{first}/btc"' in overview and f'data-key="{second}/eth"' in overview
    assert "data-action=" not in engine and "This console is read-only" in engine
    assert "may not get secrets/eth-control" in engine  # why the fills are not shown
    assert refused[0] == 403 and "read-only" in refused[1]["message"]


async def _read_only_pages(
    source: DeskSource, first: str, second: str
) -> tuple[str, str, tuple[int, Any]]:
    """The overview, eth's page and a halt, through port-forward's Host (any port)."""
    app = make_app(source, read_only=True, any_port=True)
    forwarded = {"Host": "127.0.0.1:18765"}
    async with TestClient(TestServer(app)) as client:
        started = time.perf_counter()
        response = await client.get("/", headers=forwarded)
        overview = await response.text()
        print(f"overview against the API server: {time.perf_counter() - started:.3f} s")
        assert response.status == 200, overview
        response = await client.get(f"/engines/{second}/eth", headers=forwarded)
        engine = await response.text()
        assert response.status == 200, engine
        halt = await client.post(
            f"/api/engines/{first}/btc/halt",
            headers={**forwarded, "Origin": "http://127.0.0.1:18765"},
        )
        refused = (halt.status, await halt.json())
    return overview, engine, refused
