"""Screenshots of every console page, for docs/desk.md (so they stay current).

Starts a sandbox of its own (the real control plane, a node running engine pods
as processes, the exchange simulator replaying the shared BTC/USD candles, HEAN
installed with its chart), creates a live engine approved by a local key and
two paper engines, waits for the live one to trade, serves the console exactly
as `kubectl hean console` does, and photographs the pages with Debian's
Chromium (/usr/bin/chromium; Playwright never downloads a browser) at 1280x800.

    .venv/bin/python scripts/console_screenshots.py [--out docs/images]

Everything it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Page, async_playwright

from hean_contract.spec import parse_spec
from hean_desk.client import DeskClient
from hean_desk.console.desk_source import DeskSource
from hean_desk.console.server import run
from hean_engine.approval.manifest import approval_manifest
from hean_engine.approval.sign import add_signature, new_approval
from hean_sandbox.up import ExchangeSimOptions, Sandbox, SandboxOptions
from hean_sim.exchange.config import ApiKey

REPO = Path(__file__).resolve().parent.parent
CANDLES = REPO.parent / "shared" / "data" / "btcusd_bitfinex_1m_2017-2018.csv.gz"
KEY = ApiKey("desk-demo-apikey-Jq83mZ", "desk-demo-secret-Wd52pLr9")
NAMESPACE = "trading"
RISK = {
    "maxOrderNotional": "10000",
    "maxPositionNotional": "20000",
    "maxOpenOrders": 4,
    "maxDailyLoss": "500",
    "maxDrawdownPct": "5",
    "maxOrdersPerMinute": 30,
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def engine(name: str, exchange_url: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mode": "paper",
        "exchange": {"id": "binance", "endpoint": exchange_url},
        "market": {"symbol": "BTC/USDT", "timeframe": "1m"},
        "strategy": {"name": "ema_cross", "params": {"fast": 2, "slow": 3, "quantity": "0.5"}},
        "risk": RISK,
        "paper": {"startingBalances": {"USDT": "100000"}, "feeRate": "0.001"},
    }
    body.update(spec)
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": body,
    }


async def apply(box: Sandbox, manifest: dict[str, Any]) -> None:
    await box.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(manifest))


async def create_engines(box: Sandbox, url: str) -> None:
    signer = Ed25519PrivateKey.generate()
    pem = signer.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    await apply(
        box,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "hean-liveapproval-trust"},
            "data": {"alice.pub": pem.decode(), "policy.yaml": yaml.safe_dump({"required": 1})},
        },
    )
    await apply(
        box,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sim-keys"},
            "data": {"apiKey": b64(KEY.api_key), "secret": b64(KEY.secret)},
        },
    )
    live = engine(
        "btc-live",
        url,
        mode="live",
        exchange={"id": "binance", "endpoint": url, "credentialsSecret": "sim-keys"},
        strategy={"name": "ema_cross", "params": {"fast": 2, "slow": 3, "quantity": "0.01"}},
        live={"syncIntervalSeconds": 1, "recvWindowMs": 1000},
    )
    del live["spec"]["paper"]
    await apply(box, live)
    _, out, _ = await box.kubectl("get", "-n", NAMESPACE, "te", "btc-live", "-o", "json")
    created = yaml.safe_load(out)
    approval = new_approval(
        namespace=NAMESPACE,
        engine="btc-live",
        engine_uid=created["metadata"]["uid"],
        spec=parse_spec(created["spec"]),
        ttl=timedelta(hours=8),
        now=datetime.now(UTC),
        name="btc-live-approval",
    )
    await apply(box, approval_manifest(add_signature(approval, "alice", signer)))
    await apply(box, engine("btc-paper", url))
    await apply(
        box,
        engine(
            "eth-paper",
            url,
            strategy={"name": "ema_cross", "params": {"fast": 3, "slow": 8, "quantity": "0.2"}},
        ),
    )


async def wait_for_fills(source: DeskSource, count: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if len(source.engine_history(NAMESPACE, "btc-live", "fills")) >= count:
                return
        except Exception as exc:  # not running yet
            print(f"waiting for btc-live: {exc}")
        await asyncio.sleep(2)
    raise SystemExit(f"btc-live made fewer than {count} fills in {limit:.0f}s")


async def shoot(page: Page, url: str, path: Path, *, scroll_to: str | None = None) -> None:
    await page.goto(url)
    await page.wait_for_selector("body[data-live=open]")
    await page.wait_for_timeout(500)  # let the first stream message land before the picture
    if scroll_to:
        await page.locator(scroll_to).scroll_into_view_if_needed()
    await page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(REPO)}")


async def photograph(source: DeskSource, out: Path) -> None:
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(
        run(source, host="127.0.0.1", port=0, on_ready=ready.set_result, stop=stop)
    )
    url = await ready
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium")
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await shoot(page, url, out / "console-overview.png")
            engine_url = f"{url}engines/{NAMESPACE}/btc-live"
            await shoot(page, engine_url, out / "console-engine.png")
            await shoot(
                page, engine_url, out / "console-engine-books.png", scroll_to="#panel-fills"
            )
            await shoot(page, engine_url, out / "console-engine-ops.png", scroll_to="#panel-logs")
            await shoot(page, f"{url}approvals", out / "console-approvals.png")
            await page.goto(engine_url)
            await page.click('button[data-action="halt"]')
            await page.wait_for_selector("#confirm[open]")
            await page.screenshot(path=str(out / "console-halt-confirm.png"))
            print("wrote the halt confirmation")
            await page.click("#confirm-cancel")
            await browser.close()
    finally:
        stop.set()
        await server


async def main(out: Path, seconds: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="hean-screens-"))
    data = work / "candles.csv"
    with gzip.open(CANDLES, "rt", encoding="utf-8") as stream:
        data.write_text("".join(line for _, line in zip(range(3000), stream, strict=False)))
    box = Sandbox(
        SandboxOptions(
            kubeconfig=work / "kubeconfig",
            workdir=work / "sandbox",
            namespace=NAMESPACE,
            operator_namespace=NAMESPACE,
            poll_interval=1.0,
            exchange_sim=ExchangeSimOptions(
                data=data, keys=[KEY], balances={"USDT": Decimal(10_000), "BTC": Decimal(0)}
            ),
            say=print,
        )
    )
    try:
        await box.start()
        await create_engines(box, box.exchange.url)
        desk = DeskClient(kubeconfig=str(work / "kubeconfig"))
        source = DeskSource(desk)
        await wait_for_fills(source, 4, seconds)
        await photograph(source, out)
        desk.close()
    finally:
        await box.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--seconds", type=float, default=240.0, help="how long to wait for fills")
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(arguments.out.resolve(), arguments.seconds))
