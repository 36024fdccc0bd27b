"""Multi-turn skill flows in ja and ar (and the cancel reasons in all four languages) through the web chat API:
the shopper names things in their own language, presses the buttons they are shown, says yes in their own
words, and the store is written only then. Every reply passes the locale pack's check."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.commerce.products import knowledge
from tests.conftest import say
from tests.support.locale_checks import SCRIPT, assert_clean

YES = {"zh-CN": "好的", "en": "yes", "ja": "はい", "ar": "نعم"}


def checked(hub: Hub, locale: str, body: dict[str, Any]) -> dict[str, Any]:
    """The turn's body, after checking each reply is in the shopper's script and passes their pack."""
    assert body["route"] == "skill", body
    for reply in body["replies"]:
        assert re.search(SCRIPT[locale], reply["text"]), reply["text"]
    assert_clean(hub, locale, body)
    return body


CANCEL = {"zh-CN": "取消订单#W5918442", "en": "cancel order #W5918442", "ja": "注文#W5918442をキャンセルしたいです",
          "ar": "أريد إلغاء الطلب #W5918442"}


@pytest.mark.parametrize("web_hub", ["memory"], indirect=True)
@pytest.mark.parametrize("locale", list(CANCEL))
@pytest.mark.parametrize("button", [0, 1])
async def test_a_cancel_reason_button_is_understood_in_every_language(web_hub: tuple[TestClient, Hub], locale: str,
                                                                      button: int) -> None:
    client, hub = web_hub
    user = "sofia_rossi_8776"
    asked = checked(hub, locale, await say(client, user, CANCEL[locale], locale=locale))
    reasons = asked["replies"][0]["buttons"]
    assert len(reasons) == 2
    listed = checked(hub, locale, await say(client, user, reasons[button]["payload"], locale=locale))
    assert "#W5918442" in listed["replies"][0]["text"]
    confirm = [b["payload"] for b in listed["replies"][0]["buttons"]]
    assert confirm == ["yes", "no"], "the list to confirm, not the question again"
    assert hub.engine.commerce.get_order_details("#W5918442")["status"] == "pending"
    checked(hub, locale, await say(client, user, YES[locale], locale=locale))
    order = hub.engine.commerce.get_order_details("#W5918442")
    assert order["status"] == "cancelled"
    assert order["cancel_reason"] == ("no longer needed", "ordered by mistake")[button]


RETURN = {"ja": "注文#W5838674のデスクライトと掛け時計を返品したいです",
          "ar": "أريد إرجاع مصباح المكتب وساعة الحائط من الطلب #W5838674"}


@pytest.mark.parametrize("web_hub", ["memory"], indirect=True)
@pytest.mark.parametrize("locale", list(RETURN))
async def test_a_return_of_items_named_in_the_shoppers_language(web_hub: tuple[TestClient, Hub], locale: str) -> None:
    client, hub = web_hub
    user = "ivan_hernandez_6923"
    asked = checked(hub, locale, await say(client, user, RETURN[locale], locale=locale))
    explained = asked["replies"][0]["text"]
    # the items by their names in the shopper's language
    assert all(knowledge().local_name(name, locale) in explained for name in ("Wall Clock", "Desk Lamp")), explained
    assert "Espresso Machine" not in explained, "only the two items named, of the order's five"
    gift_card = asked["replies"][1]["buttons"][1]["payload"]
    listed = checked(hub, locale, await say(client, user, gift_card, locale=locale))
    assert [b["payload"] for b in listed["replies"][0]["buttons"]] == ["yes", "no"]
    assert hub.engine.commerce.get_order_details("#W5838674")["status"] == "delivered"
    checked(hub, locale, await say(client, user, YES[locale], locale=locale))
    order = hub.engine.commerce.get_order_details("#W5838674")
    assert (order["status"], sorted(order["return_items"]), order["return_payment_method_id"]) == (
        "return requested", ["6534134392", "7453605304"], "gift_card_9368765")


def test_arabic_product_names_are_found_with_the_article() -> None:
    kb = knowledge()
    assert [p.name for p in kb.find("وصل مصباح المكتب؟")] == ["Desk Lamp"]  # noun + noun: the article on the last
    assert [p.name for p in kb.find("الحذاء الجري حقي وين")] == ["Running Shoes"]  # on every word
    assert [p.name for p in kb.find("ابي ارجع حذاء جري")] == ["Running Shoes"]  # and without it


EXCHANGE = {"ja": "注文#W5838674の掛け時計を交換したいです", "ar": "أريد استبدال ساعة الحائط من الطلب #W5838674"}


@pytest.mark.parametrize("web_hub", ["memory"], indirect=True)
@pytest.mark.parametrize("locale", list(EXCHANGE))
async def test_an_exchange_of_an_item_named_in_the_shoppers_language(web_hub: tuple[TestClient, Hub],
                                                                   locale: str) -> None:
    client, hub = web_hub
    user = "ivan_hernandez_6923"
    variants = checked(hub, locale, await say(client, user, EXCHANGE[locale], locale=locale))
    clock = knowledge().local_name("Wall Clock", locale)
    assert variants["replies"][0]["text"].startswith(clock), "no question which item: the clock was named"
    more = checked(hub, locale, await say(client, user, variants["replies"][0]["buttons"][0]["payload"], locale=locale))
    methods = checked(hub, locale, await say(client, user, more["replies"][0]["buttons"][0]["payload"], locale=locale))
    listed = checked(hub, locale, await say(client, user, methods["replies"][0]["buttons"][0]["payload"],
                                            locale=locale))
    assert [b["payload"] for b in listed["replies"][0]["buttons"]] == ["yes", "no"]
    assert hub.engine.commerce.get_order_details("#W5838674")["status"] == "delivered"
    checked(hub, locale, await say(client, user, YES[locale], locale=locale))
    assert hub.engine.commerce.get_order_details("#W5838674")["status"] == "exchange requested"


def test_a_name_inside_a_word_that_is_not_the_product_names_nothing() -> None:
    kb = knowledge()
    assert kb.find("等了十分钟还没人回") == [] and kb.find("رقم جوالي ينتهي بـ 6236") == []
    assert [p.name for p in kb.find("挂钟几点钟能送到")] == ["Wall Clock"]  # the name itself still counts
    assert [p.name for p in kb.find("手机屏幕多大")] == ["Smartphone"]
