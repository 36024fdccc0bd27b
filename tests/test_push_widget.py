"""The web chat's location opt-in, in headless Chromium: the shopper presses the location button, the
browser hands over its position, the hub asks whether it may use it for nearby offers, the shopper agrees."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.support.browser import BROWSER_MARKS, TIMEOUT_MS

pytestmark = BROWSER_MARKS

JINGAN = {"latitude": 31.2240, "longitude": 121.4480}


async def test_a_shopper_shares_a_location_from_the_widget_and_opts_in(
    hub_url: str, browser: Browser
) -> None:
    context = await browser.new_context(geolocation=JINGAN, permissions=["geolocation"],
                                        viewport={"width": 420, "height": 760})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{hub_url}/?locale=en&user_id=geo-shopper")
    await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "online")

    await page.get_by_test_id("share-location").click()
    shopper, bot = page.get_by_test_id("message-shopper"), page.get_by_test_id("message-bot")
    await expect(shopper.last).to_contain_text("Shared my location")
    await expect(bot.last).to_contain_text("free samples at stores near you")
    choices = bot.last.get_by_test_id("quick-reply")
    await expect(choices).to_have_count(2)

    await choices.first.click()
    await expect(shopper.last).to_contain_text("Yes, please")  # the button's title, not its payload
    await expect(bot.last).to_contain_text("For the next 30 days")
    await context.close()
