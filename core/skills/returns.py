"""Return requests: which route a delivered order's items take, and what happens next.

Routing: an item priced below `shop.returns.keep_it_below` is refunded without being sent back (shipping
it back would cost more than it is worth: "keep it"); any other item is shipped back with a return label.
This skill explains the route; the return itself (return_delivered_order_items) is written only after the
shopper confirms the listed details, by the confirmation flow.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from core.message import Button, Reply
from core.skills.base import SkillContext
from core.skills.orders import EXPECTING, ask_to_sign_in, items_total, signed_in_user

ORDERS_OFFERED = 3


class ReturnRoute(StrEnum):
    KEEP_IT = "keep_it"  # refund without return
    SHIP_BACK = "ship_back"


def route_item(price: Decimal, keep_it_below: Decimal) -> ReturnRoute:
    return ReturnRoute.KEEP_IT if price < keep_it_below else ReturnRoute.SHIP_BACK


def route_items(items: list[dict[str, Any]], keep_it_below: Decimal) -> dict[ReturnRoute, list[dict[str, Any]]]:
    routes: dict[ReturnRoute, list[dict[str, Any]]] = {ReturnRoute.KEEP_IT: [], ReturnRoute.SHIP_BACK: []}
    for item in items:
        routes[route_item(Decimal(str(item["price"])), keep_it_below)].append(item)
    return routes


def _mentioned(ctx: SkillContext, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items the shopper names (by the product entity or the product's name in the text), else all."""
    wanted = (ctx.understanding.entity("product") or "").lower()
    text = ctx.text.lower()
    named = [i for i in items if (wanted and wanted in i["name"].lower()) or i["name"].lower() in text]
    return named or items


def explain_routes(ctx: SkillContext, order: dict[str, Any]) -> str:
    t, cur = ctx.t, ctx.shop.currency
    threshold = Decimal(str(ctx.shop.returns.keep_it_below))
    routes = route_items(_mentioned(ctx, order["items"]), threshold)
    lines = []
    keep, ship = routes[ReturnRoute.KEEP_IT], routes[ReturnRoute.SHIP_BACK]
    if keep:
        lines.append(t("{items}: below {threshold}, so you don't need to send it back: you keep it and get a "
                       "refund of {refund}.", items=t(", ").join(i["name"] for i in keep),
                       threshold=t.money(threshold, cur),
                       refund=t.money(items_total(keep), cur)))
    if ship:
        lines.append(t("{items}: please send it back with the free return label we'll email you; the refund of "
                       "{refund} is paid once the parcel reaches our warehouse.",
                       items=t(", ").join(i["name"] for i in ship),
                       refund=t.money(items_total(ship), cur)))
    lines.append(t("Next I'll list the items and the refund method for you to confirm; nothing changes before "
                   "you say yes."))
    return "\n".join(lines)


async def return_request(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    threshold = t.money(Decimal(str(ctx.shop.returns.keep_it_below)), ctx.shop.currency)
    user_id = signed_in_user(ctx)
    if user_id is None:
        return ask_to_sign_in(ctx, "return_request", t(
            "Delivered orders can be returned: items under {threshold} are refunded without being sent back, "
            "others are shipped back with a free label. To start, please send me the email address of your "
            "account.", threshold=threshold))
    ctx.session.slots.pop(EXPECTING, None)
    user = ctx.commerce.get_user_details(user_id)
    order_id = ctx.understanding.entity("order_id")
    if not order_id:
        delivered = [oid for oid in reversed(user["orders"])
                     if ctx.commerce.get_order_details(oid)["status"] == "delivered"][:ORDERS_OFFERED]
        if not delivered:
            return [Reply(text=t("Only delivered orders can be returned, and I don't see a delivered order on your "
                                 "account."))]
        return [Reply(text=t("Which order would you like to return?"),
                      buttons=tuple(Button(oid, t("Return {order_id}", order_id=oid)) for oid in delivered))]
    if order_id not in user["orders"]:
        return [Reply(text=t("I couldn't find order {order_id} on your account.", order_id=order_id))]
    ctx.session.slots["last_order_id"] = order_id
    order = ctx.commerce.get_order_details(order_id)
    if order["status"] != "delivered":
        return [Reply(text=t("Order {order_id} hasn't been delivered, so it can't be returned yet. An order "
                             "awaiting shipment can be cancelled instead.", order_id=order_id))]
    return [Reply(text=t("Order {order_id}:", order_id=order_id) + "\n" + explain_routes(ctx, order))]
