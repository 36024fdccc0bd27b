"""The web chat widget as shoppers use it: the real page, the real hub, Debian's headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, expect

from tests.support.browser import BROWSER_MARKS, open_widget, send

pytestmark = BROWSER_MARKS


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
