"""The web widget in Arabic, in Debian's headless Chromium: right to left, the pack's robot persona, a screenshot."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, expect

from tests.support.browser import BROWSER_MARKS, open_widget, send

pytestmark = BROWSER_MARKS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
