"""Recommendations: what goes with a product, as product cards (text on channels without cards).

The products to start from, in this order: those the shopper names ("what goes with the sunscreen?"), those
they recently put in the cart, saved or looked at (core.shop_events, when a channel reports them), those of
their last order; else the operator's featured picks. Suggestions come from core.commerce.recommend:
operator rules first, then bought together in the order history.
"""

from __future__ import annotations

from decimal import Decimal

from core.commerce.base import CommerceError
from core.commerce.products import knowledge
from core.commerce.recommend import Source, Suggestion, recommender
from core.message import EventKind, ProductCard, Reply
from core.shop_events import recent
from core.skills.base import SkillContext
from core.skills.orders import signed_in_user

SHOWN = 3
SEEDS = 3  # products to start from, at most
_EVENT_ORDER = {EventKind.CART: 0, EventKind.FAVOURITE: 1, EventKind.BROWSE: 2}


def seeds(ctx: SkillContext) -> tuple[list[str], list[str], str]:
    """The products to start from, the products not to suggest (already in the cart), and where they came
    from: "named", "events", "orders" or "none"."""
    in_cart = [e.product for e in recent(ctx.session) if e.kind == EventKind.CART]
    named = [p.name for p in knowledge().find(ctx.text)]
    if named:
        return named[:SEEDS], in_cart, "named"
    events = sorted(recent(ctx.session), key=lambda e: (_EVENT_ORDER.get(e.kind, 3), -e.at))
    if events:
        return list(dict.fromkeys(e.product for e in events))[:SEEDS], in_cart, "events"
    user_id = signed_in_user(ctx)
    if user_id is not None:
        try:
            order_ids = ctx.commerce.get_user_details(user_id)["orders"]
            if order_ids:
                items = ctx.commerce.get_order_details(order_ids[-1])["items"]
                return list(dict.fromkeys(i["name"] for i in items))[:SEEDS], in_cart, "orders"
        except CommerceError:
            pass
    return [], in_cart, "none"


def card(ctx: SkillContext, suggestion: Suggestion) -> ProductCard:
    t = ctx.t
    kb = knowledge()
    own = kb.get(suggestion.name)
    product_id, price = (own.product_id, own.price) if own is not None and own.product_id else (None, None)
    if product_id is None:
        product_id = ctx.commerce.list_all_product_types().get(suggestion.name, suggestion.name)
        try:
            variants = ctx.commerce.get_product_details(product_id)["variants"].values()
            prices = [Decimal(str(v["price"])) for v in variants if v.get("available")]
            price = float(min(prices)) if prices else None
        except CommerceError:
            price = None
    if suggestion.source == Source.RULE and suggestion.why:
        description = suggestion.why.get(t.locale) or suggestion.why.get("en")
    elif suggestion.source == Source.TOGETHER and suggestion.seed:
        description = t("Often bought with {product}", product=kb.local_name(suggestion.seed, t.locale))
    else:
        description = None
    shown_price = t("from {price}", price=t.money(price, ctx.shop.currency)) if price is not None else None
    return ProductCard(title=kb.local_name(suggestion.name, t.locale), product_id=str(product_id),
                       price=shown_price, description=description)


async def product_recommend(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    kb = knowledge()
    start, in_cart, source = seeds(ctx)
    suggestions = recommender().suggest(start, in_cart, SHOWN)
    if not suggestions:
        return [Reply(text=t("I don't have a suggestion for that yet. Tell me what you're shopping for and "
                             "I'll have a look."))]
    names = t(", ").join(kb.local_name(n, t.locale) for n in start)
    intro = {
        "named": t("These go well with {products}:", products=names),
        "events": t("Based on what you've been looking at ({products}), you may like:", products=names),
        "orders": t("Based on your last order ({products}), you may like:", products=names),
        "none": t("Some of our favourites:"),
    }[source]
    return [Reply(text=intro), *(Reply(card=card(ctx, s)) for s in suggestions)]
