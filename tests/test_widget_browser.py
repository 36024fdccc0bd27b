"""The web chat widget as shoppers use it: the real page, the real hub, Debian's headless Chromium."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect

from core.app import build_hub, create_app
from tests.conftest import make_config

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is not installed: apt-get install -y chromium (playwright's own browsers are not used)",
    ),
]
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


@pytest.fixture
async def hub_url(tmp_path: Path) -> AsyncIterator[str]:
    """The whole hub on the embedded store (no Redis, no keys), listening on a free port of 127.0.0.1."""
    hub = await build_hub(make_config(tmp_path))
    runner = web.AppRunner(create_app(hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_widget(browser: Browser, url: str) -> Page:
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


async def test_shopper_chats_through_the_widget(hub_url: str, browser: Browser, tmp_path: Path) -> None:
    # An anonymous shopper greets the bot, then answers with a quick reply.
    page = await open_widget(browser, f"{hub_url}/?locale=zh-CN")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert await page.get_attribute("html", "dir") == "ltr"
    shopper, bot = page.get_by_test_id("message-shopper"), page.get_by_test_id("message-bot")

    box = page.get_by_test_id("message-input")
    await box.fill("你好")
    await box.press("Shift+Enter")  # a new line, not a send
    await expect(box).to_have_value("你好\n")
    await expect(shopper).to_have_count(0)
    await box.press("Enter")
    await expect(box).to_have_value("")
    await expect(shopper.last).to_contain_text("你好")
    await expect(bot.first).to_contain_text("您好")
    quick = bot.first.get_by_test_id("quick-reply")
    await expect(quick).to_have_count(2)
    await expect(page.get_by_test_id("typing")).to_be_hidden()

    await quick.first.click()
    await expect(shopper).to_have_count(2)
    await expect(shopper.last).to_contain_text("我的订单到哪了")
    await expect(bot).to_have_count(2)
    await expect(bot.last.get_by_test_id("message-text")).not_to_be_empty()

    # Markup a shopper types is shown as text, never interpreted.
    await send(page, "<img src=x onerror=alert(1)>")
    await expect(shopper.last.get_by_test_id("message-text")).to_have_text("<img src=x onerror=alert(1)>")
    await expect(bot).to_have_count(3)
    assert await page.locator(".messages img").count() == 0
    await page.screenshot(path=str(tmp_path / "widget-anonymous.png"))

    # A signed-in demo shopper asks where the orders are and gets them listed, with order buttons.
    page = await open_widget(browser, f"{hub_url}/?user_id=james_li_5688&locale=zh-CN")
    await send(page, "我的订单到哪了")
    answer = page.get_by_test_id("message-bot").last
    await expect(answer).to_contain_text(re.compile(r"#W\d+"))
    await expect(answer.get_by_test_id("quick-reply").first).to_have_text(re.compile(r"^#W\d+$"))
    await expect(page.get_by_test_id("error")).to_have_count(0)
    await page.screenshot(path=str(tmp_path / "widget-orders.png"))

    # Arabic mirrors the page.
    page = await open_widget(browser, f"{hub_url}/?locale=ar")
    assert await page.get_attribute("html", "lang") == "ar"
    assert await page.get_attribute("html", "dir") == "rtl"
    await expect(page.get_by_test_id("message-input")).to_have_attribute("placeholder", re.compile("[\u0600-\u06ff]"))
    await page.screenshot(path=str(tmp_path / "widget-ar.png"))
