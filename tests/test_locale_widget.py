"""The web widget in Arabic, in Debian's headless Chromium: right to left, the pack's robot persona, a screenshot."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright, expect

from core.app import build_hub, create_app
from tests.conftest import make_config
from tests.test_widget_browser import CHROMIUM, CHROMIUM_ARGS, open_widget, send

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed: apt-get install -y chromium"),
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def hub_url(tmp_path: Path) -> AsyncIterator[str]:
    hub = await build_hub(make_config(tmp_path))
    runner = web.AppRunner(create_app(hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
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


async def test_arabic_widget_is_right_to_left_with_the_robot_persona(hub_url: str, browser: Browser,
                                                                       tmp_path: Path) -> None:
    page = await open_widget(browser, f"{hub_url}/?locale=ar")
    chat = page.get_by_test_id("chat")
    await expect(chat).to_have_attribute("dir", "rtl")
    assert await page.get_attribute("html", "dir") == "rtl"
    for testid in ("chat", "message-list", "message-input"):
        direction = await page.get_by_test_id(testid).evaluate("node => getComputedStyle(node).direction")
        assert direction == "rtl", testid

    title = page.get_by_test_id("assistant-name")
    await expect(title).to_have_attribute("data-bot-name", "المساعد كيفو")
    await expect(title).to_contain_text("المساعد كيفو")
    assert await page.locator(".chat-header .avatar-bot").get_attribute("data-avatar-kind") == "robot"
    # The input starts on the right: its box ends where the composer ends, mirrored from ltr.
    composer = await page.get_by_test_id("composer").bounding_box()
    send_button = await page.get_by_test_id("send-button").bounding_box()
    assert composer and send_button and send_button["x"] < composer["x"] + composer["width"] / 2, \
        "the send button sits on the left in rtl"

    await send(page, "مرحبا")
    answer = page.get_by_test_id("message-bot").last
    await expect(answer).to_contain_text("المساعد كيفو")
    await expect(answer.get_by_test_id("message-text")).to_have_text(re.compile("[\u0600-\u06ff]"))

    shot = tmp_path / "widget-ar-rtl.png"
    await page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000


async def test_english_widget_stays_left_to_right_with_its_persona(hub_url: str, browser: Browser) -> None:
    page = await open_widget(browser, f"{hub_url}/?locale=en")
    await expect(page.get_by_test_id("chat")).to_have_attribute("dir", "ltr")
    await expect(page.get_by_test_id("assistant-name")).to_have_attribute("data-bot-name", "Kefu")
