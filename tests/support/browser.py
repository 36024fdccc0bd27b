"""Debian's headless Chromium driven by playwright, and a whole hub on a free port for it to open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect

from core.app import build_hub, create_app
from core.config import Config

CHROMIUM = Path("/usr/bin/chromium")
# The flags this machine's closed network needs: no background connections that would be refused.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 5_000
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is not installed: apt-get install -y chromium (playwright's own browsers are not used)",
    ),
]


@asynccontextmanager
async def serving_hub(config: Config) -> AsyncIterator[str]:
    """The whole hub built from `config`, listening on a free port of 127.0.0.1; yields its base URL."""
    hub = await build_hub(config)
    runner = web.AppRunner(create_app(hub), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def open_widget(browser: Browser, url: str) -> Page:
    """The chat widget at `url`, once its socket is online, with no script error on the page."""
    page = await browser.new_page(viewport={"width": 420, "height": 760})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "online")
    assert errors == [], errors
    return page


async def send(page: Page, text: str) -> None:
    box = page.get_by_test_id("message-input")
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")
