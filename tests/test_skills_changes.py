"""Cancelling and changing orders through the whole hub (web chat API, memory and Redis sessions): the skill
lists the details, nothing is written before a yes, refusals change nothing, and a write is in the demo
store's journal (it survives a restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from core.app import Hub
from core.commerce.demo_store import DemoStore
from core.skills.addresses import address_in, parse_address
from core.skills.changes import read_reason
from tests.conftest import SHARED_DATA, say

SHARED_DB = SHARED_DATA / "retail" / "db.json"


def reopened(tmp_path: Path) -> DemoStore:
    """The demo store as a restarted hub would open it from the test's data folder."""
    return DemoStore.open(SHARED_DB, tmp_path / "var")


def payloads(body: dict[str, Any], reply: int = -1) -> list[str]:
    return [b["payload"] for b in body["replies"][reply]["buttons"]]


def text(body: dict[str, Any]) -> str:
    return "\n".join(r["text"] for r in body["replies"])


def test_reasons_and_addresses_are_read_from_words() -> None:
    assert read_reason("I ordered it by mistake") == "ordered by mistake"
    assert read_reason("订单W3130288不要了") == "no longer needed"
    assert read_reason("下错单了") == "ordered by mistake"
    assert read_reason("too expensive") is None
    assert parse_address("100 Main St, Apt 2, Austin, TX 78701, USA") == {
        "address1": "100 Main St", "address2": "Apt 2", "city": "Austin", "state": "TX", "zip": "78701",
        "country": "USA"}
    assert parse_address("100 Main St, Austin, TX, 78701")["address2"] == ""
    assert parse_address("Austin, TX") is None
    assert address_in("change the address of order #W3062096 to 9 Pine Rd, Boston, MA 02118")["city"] == "Boston"


async def test_cancel_in_en_asks_the_reason_lists_and_writes(web_hub: tuple[TestClient, Hub], tmp_path: Path) -> None:
    client, hub = web_hub
    user = "mia_moore_8366"
    asked = await say(client, user, "I want to cancel order #W3130288", locale="en")
    assert asked["replies"][0]["text"] == "Why would you like to cancel order #W3130288?"
    assert payloads(asked) == ["No longer needed", "Ordered by mistake"]
    listed = await say(client, user, "Ordered by mistake")
    summary = listed["replies"][0]["text"]
    assert "Cancel order #W3130288, reason: Ordered by mistake." in summary
    assert "Bookshelf (" in summary and "Electric Toothbrush (" in summary
    assert "$2,101.83 back to your gift card (balance $70.00), at once." in summary
    assert payloads(listed) == ["yes", "no"]
    assert hub.engine.commerce.get_order_details("#W3130288")["status"] == "pending"  # nothing before the yes
    done = await say(client, user, "yes")
    assert done["replies"][0]["text"].startswith("Order #W3130288 is cancelled. $2,101.83 back to your gift card")
    store = reopened(tmp_path)
    order = store.get_order_details("#W3130288")
    assert order["status"] == "cancelled" and order["cancel_reason"] == "ordered by mistake"
    assert store.get_user_details(user)["payment_methods"]["gift_card_7471275"]["balance"] == 2171.83
    store.close()


async def test_cancel_in_zh_with_the_reason_in_the_words(web_hub: tuple[TestClient, Hub], tmp_path: Path) -> None:
    client, hub = web_hub
    user = "ivan_hernandez_6923"
    listed = await say(client, user, "取消订单W4284542，不需要了")
    summary = listed["replies"][0]["text"]
    assert "取消订单#W4284542，原因：不再需要。" in summary
    assert "5到7个工作日" in summary
    done = await say(client, user, "确认")
    assert "订单#W4284542已取消" in done["replies"][0]["text"]
    order = hub.engine.commerce.get_order_details("#W4284542")
    assert order["status"] == "cancelled" and order["payment_history"][-1] == {
        "transaction_type": "refund", "amount": 2020.61, "payment_method_id": "credit_card_7455506"}


async def test_cancel_no_changes_nothing_and_other_reasons_are_refused(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    user = "mia_moore_8366"
    before = hub.engine.commerce.get_order_details("#W3130288")
    asked = await say(client, user, "cancel #W3130288 please, it's too expensive", locale="en")
    assert asked["replies"][0]["text"] == "Why would you like to cancel order #W3130288?"
    again = await say(client, user, "it is too expensive")
    assert again["replies"][0]["text"].startswith("I can cancel an order only for one of these two reasons:")
    await say(client, user, "No longer needed")
    no = await say(client, user, "no")
    assert no["replies"][0]["text"] == "All right, I haven't changed anything."
    assert hub.engine.commerce.get_order_details("#W3130288") == before
    # The "yes" after a "no" answers nothing: it is not a write.
    after = await say(client, user, "yes")
    assert "cancelled" not in text(after)
    assert hub.engine.commerce.get_order_details("#W3130288") == before


async def test_cancel_refusals_delivered_and_other_shoppers_order(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    user = "mia_moore_8366"
    delivered = await say(client, user, "cancel order #W5544629, ordered by mistake", locale="en")
    assert delivered["replies"][0]["text"] == (
        "Order #W5544629 is delivered, so it can't be cancelled: only orders awaiting shipment can. "
        "A delivered order can be returned or exchanged instead.")
    other = await say(client, user, "cancel order #W4284542, ordered by mistake")
    assert other["replies"][0]["text"] == "I couldn't find order #W4284542 on your account."
    assert hub.engine.commerce.get_order_details("#W4284542")["status"] == "pending"
    assert hub.engine.commerce.get_order_details("#W5544629")["status"] == "delivered"
    # Without an order number: the shopper's pending orders as buttons.
    choose = await say(client, user, "I want to cancel an order")
    assert payloads(choose) == ["Cancel #W3130288"]
    picked = await say(client, user, "Cancel #W3130288")
    assert picked["replies"][0]["text"] == "Why would you like to cancel order #W3130288?"


async def test_cancel_asks_a_guest_to_sign_in_first(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    asked = await say(client, "guest-c", "cancel my order", locale="en")
    assert "email address of your account" in asked["replies"][0]["text"]
    signed = await say(client, "guest-c", "mia.moore8091@example.com")
    assert payloads(signed) == ["Cancel #W3130288"]


async def test_order_address_in_one_line_en(web_hub: tuple[TestClient, Hub], tmp_path: Path) -> None:
    client, _ = web_hub
    user = "amelia_wilson_4614"
    listed = await say(client, user, "change the address of order #W3062096 to 9 Pine Rd, Unit 4, Boston, MA 02118",
                       locale="en")
    assert listed["replies"][0]["text"].startswith(
        "Change the shipping address of order #W3062096 from 388 Elm Avenue, Suite 384, Dallas, TX 75215, USA to "
        "9 Pine Rd, Unit 4, Boston, MA 02118, USA.")
    done = await say(client, user, "yes")
    assert done["replies"][0]["text"] == ("Done: order #W3062096 will be shipped to 9 Pine Rd, Unit 4, Boston, "
                                          "MA 02118, USA.")
    store = reopened(tmp_path)
    assert store.get_order_details("#W3062096")["address"] == {
        "address1": "9 Pine Rd", "address2": "Unit 4", "city": "Boston", "state": "MA", "country": "USA",
        "zip": "02118"}
    store.close()


async def test_order_address_field_by_field_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    user = "amelia_wilson_4614"
    first = await say(client, user, "帮我改一下订单W3062096的收货地址")
    assert "街道地址" in text(first)
    for answer in ("9 Pine Rd", "没有", "Boston", "MA"):
        await say(client, user, answer)
    wrong_zip = await say(client, user, "波士顿")
    assert "抱歉" in wrong_zip["replies"][0]["text"]
    await say(client, user, "02118")
    listed = await say(client, user, "美国")
    assert "9 Pine Rd, Boston, MA 02118, USA" in listed["replies"][0]["text"]
    await say(client, user, "好的")
    assert hub.engine.commerce.get_order_details("#W3062096")["address"]["address2"] == ""


async def test_default_address_and_a_stop_midway(web_hub: tuple[TestClient, Hub], tmp_path: Path) -> None:
    client, hub = web_hub
    user = "amelia_wilson_4614"
    before = hub.engine.commerce.get_user_details(user)["address"]
    await say(client, user, "change my default address", locale="en")
    stopped = await say(client, user, "never mind")
    assert stopped["replies"][0]["text"] == "All right, I haven't changed anything."
    assert hub.engine.commerce.get_user_details(user)["address"] == before
    await say(client, user, "change my default address")
    listed = await say(client, user, "12 Oak Lane, Portland, OR 97201")
    assert listed["replies"][0]["text"].startswith("Change your default address from 388 Elm Avenue")
    done = await say(client, user, "yes")
    assert done["replies"][0]["text"] == "Done: your default address is now 12 Oak Lane, Portland, OR 97201, USA."
    store = reopened(tmp_path)
    assert store.get_user_details(user)["address"]["city"] == "Portland"
    store.close()


async def test_payment_change_en(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    user = "omar_johnson_2562"
    asked = await say(client, user, "change the payment method of order #W8797321", locale="en")
    assert "is paid with your gift card (balance $61.00)" in asked["replies"][0]["text"]
    assert payloads(asked) == ["PayPal"]
    listed = await say(client, user, "PayPal")
    assert "Pay order #W8797321 ($2,583.18) with your PayPal instead of your gift card" in listed["replies"][0]["text"]
    done = await say(client, user, "yes")
    assert done["replies"][0]["text"].startswith("Done: order #W8797321 is now paid with your PayPal.")
    user_after = hub.engine.commerce.get_user_details(user)
    assert user_after["payment_methods"]["gift_card_9532915"]["balance"] == 2644.18


async def test_item_swap_zh_and_once_per_order(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    user = "omar_johnson_2562"
    what = await say(client, user, "修改订单W8797321")
    assert len(payloads(what)) == 3
    items = await say(client, user, payloads(what)[2])
    camera = next(p for p in payloads(items) if p.startswith("监控摄像头"))
    variants = await say(client, user, camera)
    more = await say(client, user, payloads(variants)[0])
    assert len(payloads(more)) == 2  # that's all / another item: the change happens once, so collect it all
    method_q = await say(client, user, payloads(more)[0])
    assert payloads(method_q)
    listed = await say(client, user, payloads(method_q)[0])
    assert "只能修改一次" in listed["replies"][0]["text"]
    await say(client, user, "是的")
    order = hub.engine.commerce.get_order_details("#W8797321")
    assert order["status"] == "pending (item modified)"
    camera_now = next(i for i in order["items"] if i["name"] == "Indoor Security Camera")
    assert camera_now["item_id"] != "8470360507"
    assert order["payment_history"][-1]["payment_method_id"] in ("gift_card_9532915", "paypal_6053880")
    again = await say(client, user, "修改订单W8797321的尺码")
    assert "已经修改过一次" in again["replies"][0]["text"]


async def test_exchange_en_collects_items_method_and_writes(web_hub: tuple[TestClient, Hub], tmp_path: Path) -> None:
    client, hub = web_hub
    user = "ivan_hernandez_6923"
    items = await say(client, user, "I want to exchange something from order #W5838674", locale="en")
    assert items["replies"][0]["text"] == "Which item of order #W5838674 would you like to change?"
    lamp = next(p for p in payloads(items) if p.startswith("Desk Lamp ("))
    variants = await say(client, user, lamp)
    assert variants["replies"][0]["text"].startswith("Desk Lamp (")
    new_label = payloads(variants)[0]
    more = await say(client, user, new_label)
    assert payloads(more) == ["That's all", "Change another item"]
    method_q = await say(client, user, "That's all")
    assert method_q["replies"][0]["text"].startswith("The new items cost")
    card = next(p for p in payloads(method_q) if p.startswith("Mastercard"))
    listed = await say(client, user, card)
    summary = listed["replies"][0]["text"]
    assert summary.startswith("Exchange these items of order #W5838674:\nDesk Lamp (")
    assert "items can be changed only once per order" in summary
    assert hub.engine.commerce.get_order_details("#W5838674")["status"] == "delivered"
    done = await say(client, user, "yes")
    assert done["replies"][0]["text"].startswith("Done: the exchange for order #W5838674 is requested.")
    store = reopened(tmp_path)
    order = store.get_order_details("#W5838674")
    assert order["status"] == "exchange requested" and order["exchange_items"] == ["7453605304"]
    assert order["exchange_payment_method_id"] == "credit_card_7455506"
    store.close()


async def test_exchange_refused_for_an_order_not_delivered_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    refused = await say(client, "ivan_hernandez_6923", "订单W4284542我要换货")
    assert refused["replies"][0]["text"] == "订单#W4284542状态为待发货，无法换货：只有已签收的订单可以换货。"
    assert hub.engine.commerce.get_order_details("#W4284542")["status"] == "pending"
    choose = await say(client, "ivan_hernandez_6923", "我要换货")
    assert payloads(choose) == ["换货 #W5838674"]


async def test_change_without_an_order_number_offers_the_pending_orders(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    user = "amelia_wilson_4614"
    choose = await say(client, user, "I want to change my shipping address", locale="en")
    assert payloads(choose) == ["Change #W3062096"]
    picked = await say(client, user, "Change #W3062096")  # what to change was kept with the question
    assert picked["replies"][-1]["text"] == "What is the street address (house number and street)?"


async def test_payment_change_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    user = "omar_johnson_2562"
    asked = await say(client, user, "订单W8797321换个支付方式")
    assert payloads(asked) == ["PayPal"]
    listed = await say(client, user, "PayPal")
    assert "W8797321" in listed["replies"][0]["text"] and "PayPal" in listed["replies"][0]["text"]
    assert len(hub.engine.commerce.get_order_details("#W8797321")["payment_history"]) == 1, (
        "nothing is written before the yes")
    done = await say(client, user, "好的")
    assert "PayPal" in done["replies"][0]["text"]
    payments = [p for p in hub.engine.commerce.get_order_details("#W8797321")["payment_history"]
                if p["transaction_type"] == "payment"]
    assert payments[-1]["payment_method_id"] == "paypal_6053880"
