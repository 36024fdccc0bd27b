"""Order look-up through the web chat API: by order number, by a product the shopper bought, by the last 4
digits of their phone; always only the signed-in shopper's orders, in zh-CN and en."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from core.app import Hub
from core.commerce.phones import phone_book
from tests.conftest import say

JAMES = "james_li_5688"  # +86 150 3808 6236 (core/data/phones.yaml); orders: Grill, Hiking Boots, Water Bottle, ...
MEI = "mei_martin_4260"  # +86 152 1735 6677


def test_phone_tails_belong_to_one_shopper() -> None:
    book = phone_book()
    assert book.owns_tail(JAMES, "6236") and not book.owns_tail(JAMES, "6677")
    assert book.owns_tail(MEI, "6677") and not book.owns_tail("nobody_1234", "1234")
    assert not book.owns_tail(JAMES, "236") and not book.owns_tail(JAMES, "")
    assert len(phone_book().phones_of(JAMES)) == 1


async def test_by_order_number_only_the_shoppers_own(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    own = await say(client, JAMES, "where is order #W4435622?", locale="en")
    assert own["replies"][0]["text"].startswith("Order #W4435622: delivered. Items: Hiking Boots, Water Bottle.")
    other = await say(client, JAMES, "where is order #W2768383?")  # emma_kim_1076's order
    assert other["replies"][0]["text"] == "I couldn't find order #W2768383 on your account."


async def test_by_product_name_in_zh_and_en(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    grill = await say(client, JAMES, "我买的烤炉到哪了")
    assert grill["route"] == "skill"
    text = grill["replies"][0]["text"]
    assert text.startswith("订单 #W3632959：已发货。商品：烤炉。") and "包裹474654093386的最新物流" in text
    assert "请注意：您的包裹正在退回我们这里。" in text  # the demo parcel is on its way back

    bottles = await say(client, JAMES, "where are my water bottles?", locale="en")
    reply = bottles["replies"][0]
    assert reply["text"].startswith("Your orders with Water Bottle:\nOrder #W4435622")
    assert [b["payload"] for b in reply["buttons"]] == ["#W4435622", "#W2611340"]  # newest first

    missing = await say(client, JAMES, "where is my laptop?")
    assert missing["replies"][0]["text"] == "I couldn't find Laptop in your orders."
    zh = await say(client, JAMES, "我的笔记本电脑到哪了", locale="zh-CN")
    assert zh["replies"][0]["text"] == "在您的订单中没有找到笔记本电脑。"


async def test_by_phone_tail_never_another_shoppers_orders(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    mine = await say(client, JAMES, "查一下尾号6236的订单")
    assert mine["route"] == "skill"
    assert mine["replies"][0]["text"].startswith("这是您最近的订单：")
    assert [b["payload"] for b in mine["replies"][0]["buttons"]] == ["#W3638028", "#W4435622", "#W3632959"]
    # 手机号 is a phone number, not the Smartphone James never bought
    worded = await say(client, JAMES, "我手机号尾号6236，订单到哪了")
    assert worded["replies"][0]["text"].startswith("这是您最近的订单：")

    # Mei's tail, asked by James: nothing of Mei's is shown.
    theirs = await say(client, JAMES, "orders for the phone with last 4 digits 6677", locale="en")
    text = theirs["replies"][0]["text"]
    assert text.startswith("The phone number ending in 6677 isn't the one on your account")
    assert "#W" not in text and theirs["replies"][0]["buttons"] == []

    # A guest cannot use a phone tail to find anyone: they are asked to sign in first.
    guest = await say(client, "guest-tail", "尾号6677的订单")
    assert "邮箱" in guest["replies"][0]["text"] and "#W" not in guest["replies"][0]["text"]
    signed = await say(client, "guest-tail", "mei.martin4637@example.com")  # now Mei: her own orders
    assert [b["payload"] for b in signed["replies"][0]["buttons"]] == ["#W5564375", "#W3288665", "#W7017301"]
