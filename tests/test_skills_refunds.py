"""Refund status through the whole hub: what was refunded, to which method, and when it arrives (policy.md:
a gift card at once, another method in 5 to 7 business days); only the signed-in shopper's orders."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from core.app import Hub
from tests.conftest import say


async def test_gift_card_refund_of_a_cancelled_order_en(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    body = await say(client, "amelia_wilson_4614", "where is my refund?", locale="en")
    assert body["route"] == "skill"
    assert body["replies"][0]["text"] == ("Order #W4420044 (cancelled): $296.47 refunded to your gift card "
                                          "(balance $97.00): it is already in its balance.")
    other = await say(client, "amelia_wilson_4614", "refund status of order #W4284542")
    assert other["replies"][0]["text"] == "I couldn't find order #W4284542 on your account."
    none = await say(client, "amelia_wilson_4614", "refund status of order #W3062096")
    assert none["replies"][0]["text"] == "Order #W3062096 has no refund."


async def test_card_refund_after_a_cancel_and_a_requested_return_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    user = "ivan_hernandez_6923"
    hub.engine.commerce.cancel_pending_order("#W4284542", "no longer needed")
    hub.engine.commerce.return_delivered_order_items("#W5838674", ["7453605304"], "credit_card_7455506")
    body = await say(client, user, "我的退款到账了吗")
    text = body["replies"][0]["text"]
    assert ("订单#W4284542（已取消）：US$2,020.61已退回您的尾号4127的Mastercard卡：将在退款后5到7个工作日内到账。"
            in text)
    assert "订单#W5838674（退货申请中）：退货处理完成后，US$150.01将退回您的尾号4127的Mastercard卡" in text


async def test_refund_status_asks_a_guest_to_sign_in(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    asked = await say(client, "guest-rf", "where is my refund", locale="en")
    assert "email address of your account" in asked["replies"][0]["text"]
    signed = await say(client, "guest-rf", "lucas.martin5733@example.com")
    assert signed["replies"][0]["text"] == ("Order #W9144718 (cancelled): $385.01 refunded to your gift card "
                                            "(balance $68.00): it is already in its balance.")
