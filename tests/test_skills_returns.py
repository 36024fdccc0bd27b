"""Return routing: keep-it below the configured value, ship-back otherwise; the skill through the web chat API."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from aiohttp.test_utils import TestClient

from core.app import Hub
from core.commerce.demo_store import DemoStore
from core.skills.returns import ReturnRoute, route_item, route_items
from tests.conftest import SHARED_DATA, say


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
    assert "笔记本子：价格低于US$30.00，无需寄回" in text
    assert "滑板：请用我们邮件发送的免费退货面单寄回" in text


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


async def test_return_picks_items_and_refund_method_then_writes(web_hub: tuple[TestClient, Hub],
                                                                tmp_path: Path) -> None:
    client, hub = web_hub
    user = "ivan_hernandez_6923"
    asked = await say(client, user, "I want to return the Desk Lamp and the Wall Clock from order #W5838674",
                      locale="en")
    assert "Wall Clock, Desk Lamp: please send it back" in asked["replies"][0]["text"]
    methods = asked["replies"][1]
    assert methods["text"] == "Where should the refund go: back to the original payment method, or to a gift card?"
    assert [b["payload"] for b in methods["buttons"]] == ["Mastercard card ending 4127", "gift card (balance $85.00)"]
    listed = await say(client, user, "gift card (balance $85.00)")
    summary = listed["replies"][0]["text"]
    assert summary.startswith("Return from order #W5838674: Wall Clock (")
    assert "Refund: $346.16 to your gift card (balance $85.00)." in summary
    assert hub.engine.commerce.get_order_details("#W5838674")["status"] == "delivered"
    done = await say(client, user, "yes please")
    assert done["replies"][0]["text"].startswith("Done: the return for order #W5838674 is requested. You'll get an "
                                                 "email with the free return label for Wall Clock, Desk Lamp")
    store = DemoStore.open(SHARED_DATA / "retail" / "db.json", tmp_path / "var")  # as after a restart
    order = store.get_order_details("#W5838674")
    assert (order["status"], order["return_items"], order["return_payment_method_id"]) == (
        "return requested", ["6534134392", "7453605304"], "gift_card_9368765")
    store.close()


async def test_return_in_zh_keep_it_single_item_and_a_no(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    asked = await say(client, "evelyn_gonzalez_8876", "订单W8341134要退货")
    # One item, one possible refund method (the original PayPal): straight to the list to confirm.
    summary = asked["replies"][1]["text"]
    assert "退货订单#W8341134：笔记本子" in summary and "退款：US$29.28退回您的PayPal。" in summary
    done = await say(client, "evelyn_gonzalez_8876", "好的")
    assert "无需寄回" in done["replies"][0]["text"] or "您可以保留" in done["replies"][0]["text"]
    assert hub.engine.commerce.get_order_details("#W8341134")["status"] == "return requested"

    client_user = "liam_li_5260"
    choose = await say(client, client_user, "return order #W8512927", locale="en")
    assert choose["replies"][1]["buttons"][0]["payload"] == "All items"
    listed = await say(client, client_user, "All items")
    assert "Refund: $215.82 to your Visa card ending 3867." in listed["replies"][0]["text"]
    await say(client, client_user, "no")
    assert hub.engine.commerce.get_order_details("#W8512927")["status"] == "delivered"
