"""A hand-over as people see it, in headless Chromium: a shopper in the web chat widget, an agent in the console.

The shopper complains, the agent signs in, claims and replies, the shopper sees the reply and the bot stays
silent, the agent releases, and the bot answers again.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import make_config
from tests.support.browser import BROWSER_MARKS, TIMEOUT_MS, open_widget, send, serving_hub

pytestmark = BROWSER_MARKS
TOKEN = "alice-console-token-42"


@pytest.fixture
async def hub_url(tmp_path: Path) -> AsyncIterator[str]:
    """The whole hub on the embedded store, with one agent, on a free port of 127.0.0.1."""
    async with serving_hub(make_config(tmp_path, agents={"tokens": {"alice": TOKEN}})) as url:
        yield url


async def sign_in(chromium: Browser, url: str) -> Page:
    context = await chromium.new_context(viewport={"width": 1280, "height": 820})  # its own cookies
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = await page.goto(f"{url}/console/")
    assert response is not None and response.status == 401, "no token, no console: only the sign-in form"
    await page.get_by_test_id("login-token").fill("wrong-token-0000000000")
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).to_have_text("This token is not valid.")
    await page.get_by_test_id("login-token").fill(TOKEN)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("agent-id")).to_have_text("alice")
    await expect(page.get_by_test_id("console-status")).to_have_attribute("data-state", "online")
    assert errors == [], errors
    return page


async def test_a_shopper_is_handed_over_served_by_an_agent_and_returned_to_the_bot(
    hub_url: str, browser: Browser, tmp_path: Path
) -> None:
    shopper = await open_widget(browser, f"{hub_url}/?user_id=james_li_5688&locale=zh-CN")
    bot, agent = shopper.get_by_test_id("message-bot"), shopper.get_by_test_id("message-agent")
    await send(shopper, "有满减优惠吗")
    await expect(bot).to_have_count(1)
    await send(shopper, "你们的服务太差了，我要投诉！")
    await expect(bot.last).to_contain_text("人工客服")
    await expect(bot).to_have_count(2)

    console = await sign_in(browser, hub_url)
    item = console.get_by_test_id("queue-item")
    await expect(item).to_have_count(1)
    await expect(item.first).to_contain_text("complaint")
    await expect(item.first.get_by_test_id("waiting")).to_have_text(re.compile(r"^\d+s$"))
    await item.first.click()
    transcript = console.get_by_test_id("transcript")
    await expect(transcript.get_by_test_id("entry-shopper").last).to_contain_text("我要投诉")
    await expect(console.get_by_test_id("profile-tier")).to_have_text("regular")
    await expect(console.get_by_test_id("tag")).to_contain_text(["price-sensitive"])
    await expect(console.get_by_test_id("order").first).to_contain_text("#W")
    await expect(console.get_by_test_id("reply-input")).to_be_disabled()

    await console.get_by_test_id("claim").click()
    await expect(console.get_by_test_id("held-item")).to_have_count(1)
    await expect(console.get_by_test_id("reply-input")).to_be_enabled()
    await expect(bot.last).to_contain_text("人工客服已加入对话"), "the shopper is told a person joined"
    await expect(bot).to_have_count(3)

    # While the agent holds the conversation the shopper's words reach the console, live, and the bot is silent.
    await send(shopper, "你好，我的订单到哪了？")
    await expect(transcript.get_by_test_id("entry-shopper").last).to_contain_text("我的订单到哪了")
    await expect(shopper.get_by_test_id("typing")).to_be_hidden()
    await expect(bot).to_have_count(3)

    suggestion = console.get_by_test_id("suggestion").first
    await expect(suggestion).to_contain_text("您好，我是客服 alice")
    await suggestion.click()
    box = console.get_by_test_id("reply-input")
    await expect(box).to_have_value(re.compile("^您好，我是客服 alice"))
    await box.fill("您好，我是客服小李。您的订单 #W3632959 已发货，我帮您查一下物流。")
    await box.press("Enter")
    await expect(box).to_have_value("")
    await expect(agent).to_have_count(1)
    await expect(agent.last).to_contain_text("我帮您查一下物流")
    await expect(agent.last.get_by_test_id("sender")).to_have_text("人工客服")
    await expect(transcript.get_by_test_id("entry-agent").last).to_contain_text("我帮您查一下物流")

    await send(shopper, "谢谢")
    await expect(transcript.get_by_test_id("entry-shopper").last).to_contain_text("谢谢")
    await expect(shopper.get_by_test_id("typing")).to_be_hidden()
    await expect(bot).to_have_count(3), "still silent: thanks went to the agent"
    await console.screenshot(path=str(tmp_path / "console-held.png"))

    await console.get_by_test_id("release").click()
    await expect(console.get_by_test_id("held-item")).to_have_count(0)
    await expect(bot.last).to_contain_text("智能助手")
    await expect(bot).to_have_count(4)
    await send(shopper, "你好")
    await expect(bot).to_have_count(5)
    await expect(bot.last).to_contain_text("您好")
    await shopper.screenshot(path=str(tmp_path / "widget-after-handoff.png"))
