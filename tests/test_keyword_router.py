"""The keyword router: what answers while no Rasa server does (the degraded mode)."""

from __future__ import annotations

import pytest

from core.keyword_router import KeywordRouter


@pytest.mark.parametrize(("text", "intent"), [
    ("我的退款到账了吗", "refund_status"),
    ("where is my refund", "refund_status"),
    ("返金はいつになりますか", "refund_status"),
    ("متى يوصلني المبلغ المسترد؟", "refund_status"),
    ("I want to return my order", "return_request"),
    ("返品したいです", "return_request"),
    ("أريد إرجاع الساعة", "return_request"),
    ("أريد تغيير عنوان الطلب #W5918442", "order_modify"),
    ("أبغى أغير طريقة الدفع للطلب #W5918442", "order_modify"),
    ("注文の住所を変更したい", "order_modify"),
])
def test_common_requests_in_each_language(text: str, intent: str) -> None:
    result = KeywordRouter().parse_now(text)
    assert (result.intent, result.source) == (intent, "keyword")


def test_text_without_a_keyword_has_no_intent() -> None:
    assert KeywordRouter().parse_now("明天北京会下雨吗").intent is None
