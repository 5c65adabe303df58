"""Helpers of the console's browser tests: the console served on a free loopback
port in the test's event loop, and Debian's Chromium driven by Playwright.

The browser is always /usr/bin/chromium (Debian's package; .ci/run installs it):
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from hean_desk.console.server import run
from hean_desk.console.source import ConsoleClient

CHROMIUM = Path("/usr/bin/chromium")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)", pytrace=False)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def serving(client: ConsoleClient, report_interval: float = 0.5) -> AsyncIterator[str]:
    """The console on 127.0.0.1 (a free port) until the block ends; yields its URL."""
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run(
            client,
            host="127.0.0.1",
            port=0,
            on_ready=ready.set_result,
            stop=stop,
            report_interval=report_interval,
        )
    )
    try:
        yield await asyncio.wait_for(ready, 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
