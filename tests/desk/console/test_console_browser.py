"""The console in a real browser (Debian's Chromium) against a fake client: what a
person sees and clicks, live updates included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from console_fake import FakeClient, demo_client, engine_object, fill
from playwright.async_api import Page, expect

from console_browser_support import chromium, serving

Fixture = tuple[FakeClient, Page, str]


@pytest.fixture
async def desk() -> AsyncIterator[Fixture]:
    fake = demo_client()
    async with serving(fake) as url, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        yield fake, page, url
    fake.close()


async def live(page: Page) -> None:
    """Wait until the page's event stream is connected."""
    await expect(page.locator("body")).to_have_attribute("data-live", "open")


async def test_overview_lists_engines_and_follows_the_watch(desk: Fixture) -> None:
    fake, page, url = desk
    await page.goto(url)
    rows = page.locator("#engines tbody tr")
    await expect(rows).to_have_count(3)
    btc = page.locator('tr[data-key="desk/btc"]')
    await expect(btc.locator('[data-field="equity"]')).to_have_text("100,012.5")
    await live(page)
    fake.push("MODIFIED", engine_object("desk", "btc", equity="100777.125", pnl="777.125"))
    await expect(btc.locator('[data-field="equity"]')).to_have_text("100,777.125")
    await expect(btc.locator('[data-field="pnl"]')).to_contain_text("+777.125")
    fake.push("ADDED", engine_object("alpha", "ada"))
    await expect(rows).to_have_count(4)
    await expect(rows.first).to_have_attribute("data-key", "alpha/ada")  # kept in order


async def test_engine_page_shows_fills_and_filters_them(desk: Fixture) -> None:
    fake, page, url = desk
    await page.goto(url)
    await page.click('a[href="/engines/desk/btc"]')
    table = page.locator("#fills-table tbody tr")
    await expect(table).to_have_count(3)
    await expect(page.locator('tr[data-trade-id="t-1"] [data-field="price"]')).to_have_text(
        "29,950.12"
    )
    await expect(page.locator("#panel-chart svg")).to_have_count(2)
    await live(page)
    await page.select_option("#fills-filter select[name=side]", "sell")
    await page.click("#fills-filter button")
    await expect(table).to_have_count(1)
    assert page.url.endswith("?side=sell")
    await page.select_option("#fills-filter select[name=side]", "")
    await page.click("#fills-filter button")
    await expect(table).to_have_count(3)
    # a new fill appears without a reload
    with fake.lock:
        fake.history[("desk/btc", "fills")].append(
            fill("t-9", "sell", "30111.25", "0.05", "2026-01-02T03:09:00Z")
        )
    await expect(page.locator('tr[data-trade-id="t-9"] [data-field="price"]')).to_have_text(
        "30,111.25"
    )


async def test_halt_asks_naming_the_engine_then_patches(desk: Fixture) -> None:
    fake, page, url = desk
    await page.goto(url + "engines/desk/btc")
    await live(page)
    await page.click('button[data-action="halt"]')
    dialog = page.locator("#confirm")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#confirm-text")).to_contain_text("Halt engine desk/btc?")
    await page.click("#confirm-cancel")
    assert fake.patches == []  # cancelled: nothing sent
    await page.click('button[data-action="halt"]')
    await page.click("#confirm-ok")
    await expect(page.locator("#notice")).to_contain_text("halt: desk/btc spec patched")
    assert fake.patches == [("desk", "btc", {"halt": True})]
    # the watch reports the new phase; the page follows
    await expect(page.locator('#panel-summary [data-field="phase"]')).to_have_text("Halted")


async def test_a_user_without_rbac_sees_a_clear_refusal(desk: Fixture) -> None:
    fake, page, url = desk
    fake.forbid_patch = True
    await page.goto(url + "engines/desk/btc")
    await live(page)
    await page.click('button[data-action="pause"]')
    await page.click("#confirm-ok")
    notice = page.locator("#notice")
    await expect(notice).to_contain_text("Refused by Kubernetes RBAC")
    await expect(notice).to_contain_text("cannot patch")
    await expect(notice).to_have_class("refusal")
    assert fake.patches == []


async def test_approvals_page(desk: Fixture) -> None:
    _, page, url = desk
    await page.goto(url)
    await page.click("nav >> text=Approvals")
    row = page.locator('tr[data-approval="desk/eth-live-approval"]')
    await expect(row).to_contain_text("alice, bob")
    await expect(row).to_contain_text("2099-01-01 00:00:00Z")


async def test_backtests_page_and_a_sweeps_ranking(desk: Fixture) -> None:
    _, page, url = desk
    await page.goto(url)
    await page.click("nav >> text=Backtests")
    rows = page.locator("#backtests tbody tr")
    await expect(rows).to_have_count(3)
    jan = page.locator('tr[data-backtest="desk/ema-jan"]')
    await expect(jan.locator('[data-field="totalReturnPct"]')).to_have_text("12.3456789")
    await expect(jan.locator('[data-field="maxDrawdownPct"]')).to_have_text("4.10")
    await page.click('a[href="/backtests/research/ema-sweep"]')
    await expect(page.locator("#backtest-name")).to_have_text("ema-sweep")
    ranking = page.locator("#ranking tbody tr")
    await expect(ranking).to_have_count(2)
    await expect(ranking.first).to_have_attribute("data-run", "3")
    await expect(ranking.nth(1).locator('[data-field="value"]')).to_have_text("-0.50")
    await expect(page.locator('[data-field="report"]')).to_contain_text(
        "reports/research/ema-sweep/u-2/3.html on PersistentVolumeClaim backtest-results"
    )
    await expect(page.locator('nav a[aria-current="page"]')).to_have_text("Backtests")
    # the report opens as a page of its own (sandboxed: its styles apply, no script runs)
    await page.click("#open-report")
    await expect(page.locator("h1")).to_have_text("reports/research/ema-sweep/u-2/3.html")
    await expect(page.locator("h1")).to_have_css("color", "rgb(17, 34, 51)")
    await expect(page.locator('#stats [data-key="sharpe"]')).to_have_attribute(
        "data-value", "1.2345"
    )
