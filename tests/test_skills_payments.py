"""Payment-failure diagnosis: causes from words and error codes, and the skill through the web chat API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.skills.payments import METHOD_NAMES, asks_how_to_pay, codes_in, diagnose
from tests.conftest import hub_client, make_config, say


@pytest.mark.parametrize(("text", "cause"), [
    ("付款失败，提示余额不足", "insufficient_balance"),
    ("支付一直转圈，然后说超时了", "network_timeout"),
    ("付不了，说超过单笔限额", "card_limit"),
    ("支付被风控拦截了", "risk_control"),
    ("银行卡过期了还能付吗", "expired_card"),
    ("银行系统维护，付款失败", "bank_maintenance"),
    ("my card was declined, it says the card is expired", "expired_card"),
    ("payment failed: insufficient funds", "insufficient_balance"),
    ("the payment failed with error code 51", "insufficient_balance"),
    ("payment failed, error code 61", "card_limit"),
    ("PAYMENT FAILED: BANKERROR", "bank_maintenance"),
    ("blocked as suspicious by my bank", "risk_control"),
    ("残高不足と表示されました", "insufficient_balance"),
    ("فشل الدفع بسبب الرصيد", "insufficient_balance"),
])
def test_causes_from_words_and_codes(text: str, cause: str) -> None:
    assert diagnose(text)[0].id == cause


def test_a_quoted_code_beats_keywords_and_numbers_without_a_code_word_are_not_codes() -> None:
    # "network" says timeout, but the bank's code 54 says the card expired.
    assert diagnose("network was fine but error code 54")[0].id == "expired_card"
    assert codes_in("I paid 51 dollars for order #W2611340") == set()
    assert diagnose("I paid 51 dollars and it failed") == []
    assert codes_in("错误码：51") == {"51"}


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Hub]]:
    async with hub_client(make_config(tmp_path)) as pair:
        yield pair


async def test_payment_issue_in_zh_and_en(web: tuple[TestClient, Hub]) -> None:
    client, _ = web
    zh = await say(client, "p1", "付款失败，提示余额不足")
    assert zh["route"] == "skill"
    assert zh["replies"][0]["text"] == "账户或银行卡余额不足以支付这笔订单。\n请充值或换一种支付方式后重新付款。"
    en = await say(client, "p2", "card declined with error code 54", locale="en")
    assert en["replies"][0]["text"].startswith("The card has expired or its expiry date was entered wrongly.")
    vague = await say(client, "p3", "my payment failed", locale="en")
    assert "error code" in vague["replies"][0]["text"]


@pytest.mark.parametrize(("text", "asks"), [
    ("能用京东支付吗", True),
    ("支付方式有哪些", True),
    ("do you take PayPal?", True),
    ("楽天ペイ使える？", True),
    ("楽天ペイで支払いできますか？", True),
    ("ممكن أدفع بفودافون كاش؟", True),
    ("付款失败了，能用别的卡吗", False),
    ("my card was declined, can I pay with PayPal instead?", False),
    ("クレジットカードが使えない", False),
    ("فشل الدفع، هل تقبلون بطاقة أخرى؟", False),
    ("can I pay with it? error code 51", False),
])
def test_a_question_about_how_to_pay_is_told_apart_from_a_failed_payment(text: str, asks: bool) -> None:
    assert asks_how_to_pay(text) is asks


async def test_a_question_about_how_to_pay_gets_the_shops_methods(web: tuple[TestClient, Hub]) -> None:
    client, hub = web
    for user, text, locale in (("m1", "你们支持哪些支付方式", "zh-CN"), ("m2", "do you take Apple Pay?", "en"),
                               ("m3", "楽天ペイで支払いできますか？", "ja"), ("m4", "ممكن أدفع بفودافون كاش؟", "ar")):
        body = await say(client, user, text, locale=locale)
        catalogs = hub.engine.catalogs
        methods = catalogs.gettext(locale, ", ").join(catalogs.gettext(locale, n) for n in METHOD_NAMES.values())
        assert body["route"] == "skill" and methods in body["replies"][0]["text"], (text, body)
