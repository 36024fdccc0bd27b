"""Nearby stores and free samples through the whole hub (web chat API, memory and Redis sessions)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from core.app import Hub
from core.push.stores import load_catalog
from core.skills.stores import cities, named_city
from tests.conftest import say


def test_cities_are_named_in_every_locale() -> None:
    catalog = load_catalog()
    assert list(cities(catalog)) == ["Shanghai", "Beijing", "Tokyo", "Dubai"]
    for text in ("上海有门店吗", "any store in shanghai?", "上海の店舗", "هل لديكم متجر في شنغهاي"):
        assert {s.id for s in named_city(catalog, text)} == {"sh-jingan", "sh-ifc", "sh-xujiahui"}, text
    assert named_city(catalog, "where is your store?") == []


async def test_stores_in_a_named_city_with_hours_and_samples_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    body = await say(client, "ann", "北京附近有门店吗")
    text = body["replies"][0]["text"]
    assert text.startswith("我们在北京的门店：")
    assert text.count("\n· ") == 3 and "今天营业时间" in text and "免费小样" in text


async def test_without_a_city_the_shopper_picks_one_en(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    asked = await say(client, "ann", "is there a store nearby?", locale="en")
    reply = asked["replies"][0]
    assert reply["text"] == "We have stores in Shanghai, Beijing, Tokyo, Dubai. Which city are you in?"
    assert [b["payload"] for b in reply["buttons"]] == ["Shanghai", "Beijing", "Tokyo", "Dubai"]
    picked = await say(client, "ann", "Tokyo")  # the button's answer: no keyword would route it
    assert picked["route"] == "skill"
    assert picked["replies"][0]["text"].startswith("Our stores in Tokyo:\n· GINZA SIX, 6-10-1 Ginza")
