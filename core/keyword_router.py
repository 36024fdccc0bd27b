"""A keyword router over the DESIGN intents: the degraded mode when no NLU server answers.

It is deliberately plain: a match is confident, anything else falls below the
threshold and goes on to the LLM or the honest fallback.
"""

from __future__ import annotations

import re

from core.entities import extract_entities
from core.nlu import IntentScore, NluResult

# fmt: off
# Order matters: the first intent whose pattern matches wins (specific before general).
# Each entry: intent, then one alternation per language (zh, en, ja, ar).
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("human_agent", (r"转人工|人工客服|真人|找人工", r"human|real person|agent|operator", r"オペレーター|担当者|人間",
                     r"موظف|إنسان|بشري")),
    ("complaint", (r"投诉|差评|垃圾|骗子", r"complain|complaint|terrible service", r"苦情|クレーム", r"شكوى|أشتكي")),
    ("refund_status", (r"退款.*(?:到账|进度|状态|多久|没到)", r"refund status|where is my refund",
                       r"返金.*(?:状況|まだ|いつ)",
                       r"حالة الاسترداد|متى (?:يوصل|يصل|يرجع|ينزل|أستلم)\S* (?:لي )?(?:المبلغ|الاسترداد|فلوسي)")),
    ("return_request", (r"退货|退款|退钱", r"return|refund", r"返品|返金", r"إرجاع|استرداد")),
    ("exchange_request", (r"换货|换个(?!.{0,4}(?:支付|付款))|换尺码", r"exchange|swap", r"交換", r"استبدال")),
    ("order_cancel", (r"取消订单|不要了", r"cancel", r"キャンセル", r"إلغاء")),
    ("order_modify", (r"改.{0,16}地址|修改订单|改订单|地址改|默认地址|[改换].{0,10}(?:支付|付款)方式"
                      r"|改.{0,6}(?:尺码|颜色|款式)",
                      r"change (?:my |the )?(?:\w+ )?(?:address|order|payment)|update (?:my |the )?(?:\w+ )?address"
                      r"|modify", r"住所.*変更|変更",
                      r"تعديل|(?:تغيير|أغير|اغير) (?:ال)?عنوان|(?:تغيير|أغير|اغير) (?:ال)?طريقة الدفع")),
    ("order_status", (r"订单|物流|快递|发货|到哪|到了吗|查单", r"order|tracking|shipping|deliver|where (?:is|are) my",
                      r"注文|配送|荷物|届", r"طلب|شحن|توصيل")),
    ("payment_issue", (r"付款|支付|付不了|扣款", r"payment|pay|card declined", r"支払|決済", r"دفع")),
    ("promotion_query", (r"优惠|满减|优惠券|活动|折扣", r"promo|coupon|discount|sale", r"クーポン|割引|セール",
                         r"خصم|كوبون|عرض")),
    ("size_advice", (r"尺码|码数|穿多大|多大码|什么码|几码|鞋码|身高|体重|脚长", r"size|how tall|foot length",
                     r"サイズ|身長|体重|足の長さ", r"مقاس|طولي|وزني",
                     # a bare measurement ("175cm", "65公斤", "130斤") answers the sizing skill's question
                     r"\d\s*(?:cm|厘米|公分|kg|公斤|斤|lbs?\b|センチ|キロ|سم|كغ)")),
    ("product_recommend", (r"推荐|搭配|配什么", r"recommend|suggest|goes? (?:well )?with", r"おすすめ|オススメ",
                           r"اقترح|توصية")),
    ("store_nearby", (r"门店|附近|小样", r"store near|nearby|shop near", r"店舗|近く", r"متجر قريب|فرع")),
    ("invoice", (r"发票", r"invoice|receipt", r"領収書|請求書", r"فاتورة")),
    ("product_question", (r"成分|用法|怎么用|怎么吃|规格|参数|保养|清洗",
                          r"ingredient|how (?:do i |to )(?:use|clean)|spec|what'?s in",
                          r"使い方|成分|お手入れ", r"مكونات|طريقة الاستخدام")),
    ("thanks_bye", (r"谢谢|感谢|再见|拜拜", r"thank|bye", r"ありがとう|さようなら", r"شكرا|مع السلامة")),
    ("greet", (r"^\s*(?:你好|您好|在吗|哈喽|hi|hello|hey|こんにちは|はじめまして|مرحبا|السلام عليكم)"
               r"[\s!！。.,，~～?？]*$",)),
)
# fmt: on

CONFIDENT = 0.9


class KeywordRouter:
    name = "keyword"
    degraded = False

    def __init__(self, cache_entries: int = 10_000) -> None:
        self._patterns = tuple((intent, re.compile("|".join(alternatives), re.I)) for intent, alternatives in _KEYWORDS)
        # Shoppers repeat themselves ("在吗", "where is my order"): the same text, the same (immutable) result.
        self._recent: dict[str, NluResult] = {}
        self.cache_entries = cache_entries

    async def parse(self, text: str, locale: str) -> NluResult:
        result = self._recent.get(text)
        if result is None:
            result = self._recent[text] = self.parse_now(text)
            if len(self._recent) > self.cache_entries:
                del self._recent[next(iter(self._recent))]  # the oldest entry
        return result

    def parse_now(self, text: str) -> NluResult:
        entities = extract_entities(text)
        for intent, pattern in self._patterns:
            if pattern.search(text):
                return NluResult(intent, CONFIDENT, entities, (IntentScore(intent, CONFIDENT),), self.name)
        if any(e.name == "order_id" for e in entities):
            return NluResult("order_status", CONFIDENT, entities, (IntentScore("order_status", CONFIDENT),), self.name)
        return NluResult(None, 0.0, entities, (), self.name)

    async def ping(self) -> bool:
        return True
