"""Finding the signed-in shopper's orders by what they say: a product they bought ("where are my running
shoes?", "我买的跑鞋到哪了") or the last 4 digits of their phone ("尾号6236的订单").

Only ever among the shopper's own orders: a product name filters their orders; a phone tail is checked
against their own numbers (core.commerce.phones) and finds nothing for anyone else's number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.commerce.phones import phone_book
from core.commerce.products import ProductInfo, knowledge
from core.skills.base import SkillContext


@dataclass(frozen=True, slots=True)
class ProductLookup:
    products: tuple[ProductInfo, ...]  # what the shopper named
    orders: tuple[dict[str, Any], ...]  # their orders holding any of them, newest first


def _product_entities(ctx: SkillContext) -> list[str]:
    return [e.value for e in ctx.understanding.entities if e.name == "product"]


def named_products(ctx: SkillContext) -> tuple[ProductInfo, ...]:
    """The products the message names: the NLU's `product` entities first (a shopper may name two), then
    the names in the words themselves that the NLU did not mark."""
    kb = knowledge()
    found: dict[str, ProductInfo] = {}
    for product in (*(p for value in _product_entities(ctx) for p in kb.find(value)), *kb.find(ctx.text)):
        found.setdefault(product.name, product)
    return tuple(found.values())


def named_items(ctx: SkillContext, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order items the shopper names: by a product entity, the product's name in any of our languages
    (デスクライト, 台灯 are the Desk Lamp), or the store's own item name in the text."""
    known = {p.name for p in named_products(ctx)}
    wanted = [value.lower() for value in _product_entities(ctx)]
    text = ctx.text.lower()
    return [i for i in items
            if i["name"] in known or any(w in i["name"].lower() for w in wanted) or i["name"].lower() in text]


def orders_holding(ctx: SkillContext, order_ids: Iterable[str], products: tuple[ProductInfo, ...]) -> ProductLookup:
    names = {p.name for p in products}
    orders = [ctx.commerce.get_order_details(oid) for oid in reversed(list(order_ids))]
    return ProductLookup(products, tuple(o for o in orders if any(i["name"] in names for i in o["items"])))


def owns_phone_tail(user_id: str, tail: str) -> bool:
    return phone_book().owns_tail(user_id, tail)
