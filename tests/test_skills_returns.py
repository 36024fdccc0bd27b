"""Return routing: keep-it below the configured value, ship-back otherwise; the skill through the web chat API."""

from __future__ import annotations

from decimal import Decimal

from aiohttp.test_utils import TestClient

from core.app import Hub
from core.skills.returns import ReturnRoute, route_item, route_items
from tests.conftest import say


def test_routing_threshold() -> None:
    limit = Decimal(30)
    assert route_item(Decimal("29.99"), limit) == ReturnRoute.KEEP_IT
    assert route_item(Decimal("30.00"), limit) == ReturnRoute.SHIP_BACK  # at the threshold: shipped back
    assert route_item(Decimal("0.50"), Decimal(0)) == ReturnRoute.SHIP_BACK  # 0 turns keep-it off
    routes = route_items([{"name": "Notebook", "price": 28.59}, {"name": "Skateboard", "price": 187.23}], limit)
    assert [i["name"] for i in routes[ReturnRoute.KEEP_IT]] == ["Notebook"]
    assert [i["name"] for i in routes[ReturnRoute.SHIP_BACK]] == ["Skateboard"]


async def test_keep_it_for_a_cheap_item_in_en(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    body = await say(client, "evelyn_gonzalez_8876", "I want to return order #W8341134", locale="en")
    assert body["route"] == "skill"
    text = body["replies"][0]["text"]
    assert "Notebook: below $30.00, so you don't need to send it back" in text and "$29.28" in text
    assert "nothing changes before you say yes" in text
    # Explained, not written: the order is still delivered.
    assert hub.engine.commerce.get_order_details("#W8341134")["status"] == "delivered"


async def test_mixed_order_in_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    body = await say(client, "liam_li_5260", "订单W8512927要退货")
    text = body["replies"][0]["text"]
    assert text.startswith("订单#W8512927：")
    assert "Notebook：价格低于US$30.00，无需寄回" in text
    assert "Skateboard：请用我们邮件发送的免费退货面单寄回" in text


async def test_order_choice_not_delivered_and_sign_in(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    choose = await say(client, "james_li_5688", "I'd like to return something", locale="en")
    reply = choose["replies"][0]
    assert reply["text"] == "Which order would you like to return?"
    assert [b["payload"] for b in reply["buttons"]] == ["Return #W3638028", "Return #W4435622"]
    picked = await say(client, "james_li_5688", "Return #W4435622")
    assert "Hiking Boots, Water Bottle: please send it back" in picked["replies"][0]["text"]
    shipped = await say(client, "james_li_5688", "return #W2611340")
    assert "hasn't been delivered" in shipped["replies"][0]["text"]

    guest = await say(client, "guest-r", "我要退货")
    assert "邮箱" in guest["replies"][0]["text"] and "US$30.00" in guest["replies"][0]["text"]
    signed = await say(client, "guest-r", "evelyn.gonzalez2110@example.com")
    assert signed["route"] == "skill"
    assert [b["payload"] for b in signed["replies"][0]["buttons"]] == ["退货 #W8341134"]
