"""Promotions: the best way to use the current promotions on the shopper's cart, or the rules themselves.

A signed-in shopper's cart is their order awaiting shipment (the one they name, else the latest); the
answer is one sentence for the best combination (core.commerce.promotions.best_plan) plus the
lowest-priced items that reach the next full-reduction step. Anyone else gets the current rules.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from core.commerce.base import CommerceBackend
from core.commerce.promotions import (
    BUNDLED,
    CartLine,
    FullReduction,
    NextTierOffer,
    Plan,
    PromotionRules,
    best_plan,
    load_rules,
    money,
    next_tier_offers,
)
from core.config import PROJECT_ROOT, ShopConfig
from core.message import Reply
from core.skills.base import SkillContext
from core.skills.orders import signed_in_user

PENDING = ("pending", "pending (item modified)")
ITEMS_SUGGESTED = 3


def promotion_rules(shop: ShopConfig) -> PromotionRules:
    path = Path(shop.promotions_file) if shop.promotions_file else BUNDLED
    return load_rules(path if path.is_absolute() else PROJECT_ROOT / path)


# (product name, price) of every item on sale, per backend, kept CATALOG_TTL_S: reading all 50 products
# costs ~1.3 ms (each read is a copy), most of a promotion answer; prices change rarely and a minute late is fine.
CATALOG_TTL_S = 60.0
_catalogs: WeakKeyDictionary[Any, tuple[float, list[tuple[str, Decimal]]]] = WeakKeyDictionary()


def catalog(commerce: CommerceBackend, now: float | None = None) -> list[tuple[str, Decimal]]:
    """(product name, price) of every item on sale."""
    now = time.monotonic() if now is None else now
    cached = _catalogs.get(commerce)
    if cached is not None and now - cached[0] < CATALOG_TTL_S:
        return cached[1]
    items = []
    for product_id in commerce.list_all_product_types().values():
        product = commerce.get_product_details(product_id)
        items += [(product["name"], money(v["price"])) for v in product["variants"].values() if v.get("available")]
    _catalogs[commerce] = (now, items)
    return items


def first_pending(commerce: CommerceBackend, order_ids: Iterable[str]) -> dict[str, Any] | None:
    """The first of these orders that awaits shipment."""
    for order_id in order_ids:
        order = commerce.get_order_details(order_id)
        if order["status"] in PENDING:
            return order
    return None


def pending_order(ctx: SkillContext, user_id: str) -> dict[str, Any] | None:
    """The order the shopper named if it awaits shipment, else their latest order that does."""
    orders = ctx.commerce.get_user_details(user_id)["orders"]
    named = ctx.understanding.entity("order_id")
    return first_pending(ctx.commerce, [named] if named in orders else reversed(orders))


def describe_reduction(ctx: SkillContext, reduction: FullReduction) -> str:
    t, cur = ctx.t, ctx.shop.currency
    if reduction.every is not None:
        every = dict(amount=t.money(reduction.every.off, cur), step=t.money(reduction.every.threshold, cur))
        if reduction.max_off is None:
            return t("{amount} off every {step}", **every)
        return t("{amount} off every {step}, up to {cap} off", cap=t.money(reduction.max_off, cur), **every)
    return t(", ").join(t("spend {threshold}, get {amount} off", threshold=t.money(s.threshold, cur),
                          amount=t.money(s.off, cur)) for s in reduction.tiers)


def describe_rules(ctx: SkillContext, rules: PromotionRules) -> str:
    t, cur, locale = ctx.t, ctx.shop.currency, ctx.t.locale
    lines = [t("Current promotions:")]
    for shop in rules.shops.values():
        if shop.reduction is not None:
            rules_text = describe_reduction(ctx, shop.reduction)
            lines.append(t("{shop}: {rules}.", shop=shop.name.get(locale), rules=rules_text))
    shop_coupons = [t("{coupon} ({shop}) {amount} off from {threshold}", coupon=c.id,
                      shop=rules.shops[c.shop].name.get(locale), amount=t.money(c.off, cur),
                      threshold=t.money(c.threshold, cur)) for c in rules.coupons if c.shop is not None]
    platform = [t("{coupon} {amount} off from {threshold}", coupon=c.id, amount=t.money(c.off, cur),
                  threshold=t.money(c.threshold, cur)) for c in rules.coupons if c.platform]
    if shop_coupons:
        lines.append(t("Shop coupons: {coupons}.", coupons=t(", ").join(shop_coupons)))
    if platform:
        lines.append(t("Platform coupons: {coupons}.", coupons=t(", ").join(platform)))
    lines.append(t("One shop coupon per shop, and a platform coupon stacks with shop coupons; a shop coupon's "
                   "threshold counts after the full reduction, a platform coupon's after the shop coupons."))
    for gift in rules.gifts:
        lines.append(t("Orders from {shops} or more shops paying at least {total} get a free {gift}.",
                       shops=gift.min_shops, total=t.money(gift.min_total, cur), gift=gift.name.get(locale)))
    return "\n".join(lines)


def explain_plan(ctx: SkillContext, rules: PromotionRules, plan: Plan, order_id: str) -> str:
    """One sentence: what to use, what the shopper pays and saves."""
    t, cur, locale = ctx.t, ctx.shop.currency, ctx.t.locale
    parts = []
    for part in plan.parts:
        if part.reduction:
            parts.append(t("{shop} full reduction {amount} off", shop=rules.shops[part.shop].name.get(locale),
                           amount=t.money(part.reduction, cur)))
        if part.coupon is not None:
            parts.append(t("shop coupon {coupon} {amount} off", coupon=part.coupon.id,
                           amount=t.money(part.coupon_off, cur)))
    if plan.platform_coupon is not None:
        parts.append(t("platform coupon {coupon} {amount} off", coupon=plan.platform_coupon.id,
                       amount=t.money(plan.platform_off, cur)))
    if not parts:
        text = t("No promotion applies to order {order_id} yet: you pay {total}.", order_id=order_id,
                 total=t.money(plan.total, cur))
    else:
        text = t("For order {order_id} the best combination is {parts}: you pay {total} instead of {subtotal}, "
                 "saving {saving}.", order_id=order_id, parts=t(", ").join(parts), total=t.money(plan.total, cur),
                 subtotal=t.money(plan.subtotal, cur), saving=t.money(plan.saving, cur))
    for gift in plan.gifts:
        text += "\n" + t("You also get a free {gift}.", gift=gift.name.get(locale))
    return text


def suggest(ctx: SkillContext, rules: PromotionRules, offer: NextTierOffer) -> str:
    t, cur = ctx.t, ctx.shop.currency
    items = t(", ").join(t("{name} ({price})", name=name, price=t.money(price, cur)) for name, price in offer.items)
    return t("Add {gap} more from {shop} to reach {threshold} and save {extra} more, for example: {items}.",
             gap=t.money(offer.gap, cur), shop=rules.shops[offer.shop].name.get(ctx.t.locale),
             threshold=t.money(offer.threshold, cur), extra=t.money(offer.extra_off, cur), items=items)


async def promotion_query(ctx: SkillContext) -> list[Reply]:
    rules = promotion_rules(ctx.shop)
    user_id = signed_in_user(ctx)
    order = pending_order(ctx, user_id) if user_id else None
    if order is None:
        return [Reply(text=describe_rules(ctx, rules))]
    ctx.session.slots["last_order_id"] = order["order_id"]
    cart = [CartLine(item["name"], money(item["price"])) for item in order["items"]]
    text = explain_plan(ctx, rules, best_plan(rules, cart), order["order_id"])
    offers = next_tier_offers(rules, cart, catalog(ctx.commerce), ITEMS_SUGGESTED)
    if offers and offers[0].items:
        text += "\n" + suggest(ctx, rules, offers[0])
    return [Reply(text=text)]
