"""Order status: which orders the signed-in shopper has and where they are.

Only the shopper's own orders are shown. A shopper who is not signed in is asked
for the email on their account (the demo store's policy: authenticate first).
An order is found by its number, by a product in it or by the last 4 digits of the
shopper's phone (core.skills.order_lookup); a shipped one comes with its latest
tracking events and any delivery problem (core.skills.tracking).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.commerce.base import CommerceError
from core.commerce.products import ProductInfo, knowledge
from core.locale import N_, Translator
from core.message import Button, Reply
from core.skills.base import SkillContext
from core.skills.order_lookup import named_products, orders_holding, owns_phone_tail
from core.skills.tracking import tracking_details

STORE_USER = "store_user_id"
EXPECTING = "expecting"
RECENT_ORDERS_SHOWN = 3

STATUS_TEXT = {
    "pending": N_("awaiting shipment"),
    "pending (item modified)": N_("awaiting shipment (items changed)"),
    "processed": N_("shipped"),
    "delivered": N_("delivered"),
    "cancelled": N_("cancelled"),
    "return requested": N_("return requested"),
    "exchange requested": N_("exchange requested"),
}


def signed_in_user(ctx: SkillContext) -> str | None:
    """The store user of this conversation, signing in by email when the shopper gave one."""
    user_id = ctx.session.slots.get(STORE_USER)
    if user_id:
        return str(user_id)
    email = ctx.understanding.entity("email")
    if email:
        try:
            user_id = ctx.commerce.find_user_id_by_email(email)
        except CommerceError:
            return None
        ctx.session.slots[STORE_USER] = user_id
        return user_id
    return None


def items_total(items: Iterable[dict[str, Any]]) -> Decimal:
    """What the items cost, exactly (the store keeps prices as JSON floats)."""
    return sum((Decimal(str(item["price"])) for item in items), Decimal(0))


def order_total(order: dict[str, Any]) -> Decimal:
    return items_total(order["items"])


def ask_to_sign_in(ctx: SkillContext, intent: str, ask: str) -> list[Reply]:
    """The answer to a shopper who is not signed in: `ask` for the account's email (or say the one given was
    not found); their next message goes to `intent` again."""
    ctx.session.slots[EXPECTING] = intent
    if ctx.understanding.entity("email"):
        return [Reply(text=ctx.t("I couldn't find an account with that email. Please check it and send it again."))]
    return [Reply(text=ask)]


@dataclass(frozen=True, slots=True)
class Account:
    """The signed-in shopper's store account, or (user None) the replies asking them to sign in."""

    user: dict[str, Any] | None
    replies: list[Reply]


def signed_in_account(ctx: SkillContext, intent: str, ask: str) -> Account:
    """The account a skill acts for: only the signed-in shopper's (policy: authenticate first)."""
    user_id = signed_in_user(ctx)
    if user_id is None:
        return Account(None, ask_to_sign_in(ctx, intent, ask))
    ctx.session.slots.pop(EXPECTING, None)
    return Account(ctx.commerce.get_user_details(user_id), [])


def item_name(t: Translator, item: dict[str, Any]) -> str:
    """The item's product name in the shopper's language (the store's name where we know no other)."""
    return knowledge().local_name(str(item["name"]), t.locale)


def item_names(t: Translator, items: Iterable[dict[str, Any]]) -> str:
    """"烤炉、背包": the items' names in the shopper's language, listed."""
    return t(", ").join(item_name(t, item) for item in items)


def describe_order(ctx: SkillContext, order: dict[str, Any]) -> str:
    t = ctx.t
    status = t(STATUS_TEXT.get(order["status"], order["status"]))
    items = item_names(t, order["items"])
    total = t.money(order_total(order), ctx.shop.currency)
    text = t("Order {order_id}: {status}. Items: {items}. Total: {total}.", order_id=order["order_id"],
             status=status, items=items, total=total)
    tracking = [tid for f in order.get("fulfillments", []) for tid in f.get("tracking_id", [])]
    if tracking:
        return t("{order} Tracking number: {tracking}.", order=text, tracking=t(", ").join(tracking))
    return text


async def order_status(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    account = signed_in_account(ctx, "order_status", t("To look up your orders I need to know who you are: "
                                                       "please send me the email address of your account."))
    if account.user is None:
        return account.replies
    user = account.user
    order_id = ctx.understanding.entity("order_id")
    if order_id:
        if order_id not in user["orders"]:
            return [Reply(text=t("I couldn't find order {order_id} on your account.", order_id=order_id))]
        return order_details(ctx, ctx.commerce.get_order_details(order_id))
    tail = ctx.understanding.entity("phone_tail")
    if tail and not owns_phone_tail(user["user_id"], tail):
        return [Reply(text=t("The phone number ending in {tail} isn't the one on your account, so I can't show "
                             "orders for it. Please check the number, or ask about an order by its number.",
                             tail=tail))]
    products = named_products(ctx)
    if products:
        return orders_with_products(ctx, user["orders"], products)
    recent = list(reversed(user["orders"]))[:RECENT_ORDERS_SHOWN]
    if not recent:
        return [Reply(text=t("I don't see any orders on your account yet."))]
    lines = [t("Here are your latest orders:")]
    lines += [describe_order(ctx, ctx.commerce.get_order_details(oid)) for oid in recent]
    return [Reply(text="\n".join(lines), buttons=tuple(Button(oid, oid) for oid in recent))]


def order_details(ctx: SkillContext, order: dict[str, Any]) -> list[Reply]:
    """One order: its description and, when shipped, its latest tracking events and any problem."""
    ctx.session.slots["last_order_id"] = order["order_id"]
    tracking, buttons = tracking_details(ctx, order)
    text = describe_order(ctx, order)
    return [Reply(text=f"{text}\n{tracking}" if tracking else text, buttons=buttons)]


def orders_with_products(ctx: SkillContext, order_ids: list[str], products: tuple[ProductInfo, ...]) -> list[Reply]:
    """The shopper's orders holding a product they named: one is shown in full, several as a list."""
    t = ctx.t
    found = orders_holding(ctx, order_ids, products)
    names = t(", ").join(p.local_name(t.locale) for p in products)
    if not found.orders:
        return [Reply(text=t("I couldn't find {product} in your orders.", product=names))]
    if len(found.orders) == 1:
        return order_details(ctx, found.orders[0])
    shown = found.orders[:RECENT_ORDERS_SHOWN]
    lines = [t("Your orders with {product}:", product=names), *(describe_order(ctx, o) for o in shown)]
    return [Reply(text="\n".join(lines), buttons=tuple(Button(o["order_id"], o["order_id"]) for o in shown))]
