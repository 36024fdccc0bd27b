"""The shopper as an agent sees them: tier, tags, orders; and the priority of their hand-over.

Tier comes from the shop's data (lifetime spend over the demo store's orders) and our own extension
data (`escalation.vip_users`); tags come from the conversation (what the shopper asked about and how).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from core.commerce.base import CommerceBackend, CommerceError
from core.config import EscalationConfig
from core.sessions import Session
from core.skills.orders import STORE_USER

LAST_ORDER = "last_order_id"  # the order the conversation was last about (core.skills.orders)
VIP, REGULAR, GUEST = "vip", "regular", "guest"
OPEN_ORDER_STATES = ("pending", "pending (item modified)", "processed")
ORDERS_SHOWN = 5

# tag -> (intents that show it, words that show it, in zh / en / ja / ar)
TAGS: dict[str, tuple[frozenset[str], re.Pattern[str]]] = {
    "price-sensitive": (frozenset({"promotion_query"}), re.compile(
        r"优惠|便宜|折扣|降价|太贵|满减|优惠券|coupon|discount|cheaper|price|expensive|deal|クーポン|割引|安く|高い|"
        r"خصم|سعر|غالي|كوبون", re.I)),
    "ingredient-focused": (frozenset({"product_question"}), re.compile(
        r"成分|配方|过敏|添加剂|ingredient|allerg|material|原材料|アレルギー|素材|مكونات|حساسية|مواد", re.I)),
    "size-unsure": (frozenset({"size_advice"}), re.compile(r"尺码|码数|size|サイズ|مقاس", re.I)),
    "after-sales": (frozenset({"return_request", "exchange_request", "refund_status"}), re.compile(
        r"退货|换货|退款|return|refund|exchange|返品|交換|返金|إرجاع|استبدال|استرداد", re.I)),
}

# Priority at opening (0 to about 100); waiting adds AGING_PER_MINUTE per minute, so nobody waits forever.
EMOTION_WEIGHT = 40.0
VIP_BONUS = 25.0
ORDER_VALUE_MAX = 20.0  # log-scaled: about 10 for a 300 order, 20 from 10,000 up
REASON_BONUS = {"complaint": 10.0, "emotion": 5.0, "human_agent": 5.0, "llm_transfer": 5.0, "vip": 5.0}
AGING_PER_MINUTE = 2.0


@dataclass(slots=True)
class Profile:
    store_user_id: str | None
    name: str | None
    tier: str
    lifetime_spend: float
    order_value: float  # the order the conversation is about, else the largest open one
    tags: list[str] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)  # newest first: id, status, total, items

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def order_total(order: dict[str, Any]) -> float:
    return round(sum(float(item.get("price", 0)) for item in order.get("items", ())), 2)


def priority(emotion: float, tier: str, order_value: float, reason: str) -> float:
    value = min(ORDER_VALUE_MAX, ORDER_VALUE_MAX * math.log10(1 + max(order_value, 0.0)) / 4)
    return round(EMOTION_WEIGHT * emotion + (VIP_BONUS if tier == VIP else 0.0) + value
                 + REASON_BONUS.get(reason, 0.0), 2)


def rank(base: float, opened_at: float) -> float:
    """A queue score that orders tickets by their priority *now*, for any now.

    priority_now = base + AGING_PER_MINUTE * (now - opened_at) / 60; every ticket ages at the same rate,
    so ordering by base - AGING_PER_MINUTE * opened_at / 60 is the same order, and it never needs updating.
    """
    return base - AGING_PER_MINUTE * opened_at / 60


def priority_now(base: float, opened_at: float, now: float) -> float:
    return round(base + AGING_PER_MINUTE * max(0.0, now - opened_at) / 60, 2)


class Profiles:
    def __init__(self, commerce: CommerceBackend, config: EscalationConfig) -> None:
        self.commerce = commerce
        self.config = config
        self._vip_users = frozenset(config.vip_users)

    def _orders(self, user_id: str) -> list[dict[str, Any]]:
        try:
            ids = self.commerce.get_user_details(user_id).get("orders", [])
            return [self.commerce.get_order_details(order_id) for order_id in reversed(ids)]
        except CommerceError:
            return []

    def tier(self, user_id: str | None, orders: list[dict[str, Any]] | None = None) -> tuple[str, float]:
        if not user_id or not self.commerce.user_exists(user_id):
            return GUEST, 0.0
        orders = self._orders(user_id) if orders is None else orders
        spend = round(sum(order_total(o) for o in orders if o.get("status") != "cancelled"), 2)
        vip = user_id in self._vip_users or spend >= self.config.vip_spend
        return (VIP if vip else REGULAR), spend

    def is_vip(self, session: Session) -> bool:
        user_id = session.slots.get(STORE_USER)
        return bool(user_id) and self.tier(str(user_id))[0] == VIP

    def build(self, session: Session) -> Profile:
        user_id = session.slots.get(STORE_USER)
        user_id = str(user_id) if user_id else None
        orders = self._orders(user_id) if user_id and self.commerce.user_exists(user_id) else []
        tier, spend = self.tier(user_id, orders)
        name = None
        if tier != GUEST and user_id:
            first_last = self.commerce.get_user_details(user_id).get("name", {})
            name = " ".join(p for p in (first_last.get("first_name"), first_last.get("last_name")) if p) or None
        return Profile(user_id, name, tier, spend, self._order_value(session, orders), tags_of(session),
                       [{"order_id": o["order_id"], "status": o["status"], "total": order_total(o),
                         "items": [i["name"] for i in o.get("items", ())]} for o in orders[:ORDERS_SHOWN]])

    @staticmethod
    def _order_value(session: Session, orders: list[dict[str, Any]]) -> float:
        about = session.slots.get(LAST_ORDER)
        for order in orders:
            if order["order_id"] == about:
                return order_total(order)
        open_totals = [order_total(o) for o in orders if o.get("status") in OPEN_ORDER_STATES]
        return max(open_totals, default=0.0)


def tags_of(session: Session) -> list[str]:
    """Tags from the conversation: the intents the bot recognised and the shopper's own words."""
    intents = {entry.intent for entry in session.history if entry.intent}
    words = "\n".join(entry.text for entry in session.history if entry.role == "shopper")
    return [tag for tag, (tag_intents, pattern) in TAGS.items() if intents & tag_intents or pattern.search(words)]
