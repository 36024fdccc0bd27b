"""Return requests: which route a delivered order's items take, and what happens next.

Routing: an item priced below `shop.returns.keep_it_below` is refunded without being sent back (shipping
it back would cost more than it is worth: "keep it"); any other item is shipped back with a return label.
This skill explains the route, then collects what policy.md asks for: the items (buttons, or the names in the
shopper's words) and the refund method (the order's original method or one of the shopper's gift cards,
SEMANTICS.md). The return itself (return_delivered_order_items) is written only after the shopper confirms
the listed details (core.confirm).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from core.confirm import ask_to_confirm, register_done_text
from core.message import Button, Reply
from core.skills import flow
from core.skills.base import SkillContext
from core.skills.choices import (
    choose_method_buttons,
    chosen_method,
    item_label,
    items_text,
    method_label,
    sentences,
    user_method,
)
from core.skills.order_lookup import named_items
from core.skills.orders import item_names, items_total, signed_in_account

ORDERS_OFFERED = 3
INTENT = "return_request"


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
    """The items the shopper names, else all."""
    return named_items(ctx, items) or items


def explain_routes(ctx: SkillContext, order: dict[str, Any]) -> str:
    t, cur = ctx.t, ctx.shop.currency
    threshold = Decimal(str(ctx.shop.returns.keep_it_below))
    routes = route_items(_mentioned(ctx, order["items"]), threshold)
    lines = []
    keep, ship = routes[ReturnRoute.KEEP_IT], routes[ReturnRoute.SHIP_BACK]
    if keep:
        lines.append(t("{items}: below {threshold}, so you don't need to send it back: you keep it and get a "
                       "refund of {refund}.", items=item_names(t, keep),
                       threshold=t.money(threshold, cur),
                       refund=t.money(items_total(keep), cur)))
    if ship:
        lines.append(t("{items}: please send it back with the free return label we'll email you; the refund of "
                       "{refund} is paid once the parcel reaches our warehouse.",
                       items=item_names(t, ship),
                       refund=t.money(items_total(ship), cur)))
    lines.append(t("Next I'll list the items and the refund method for you to confirm; nothing changes before "
                   "you say yes."))
    return "\n".join(lines)


async def return_request(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    threshold = t.money(Decimal(str(ctx.shop.returns.keep_it_below)), ctx.shop.currency)
    account = signed_in_account(ctx, "return_request", t(
            "Delivered orders can be returned: items under {threshold} are refunded without being sent back, "
            "others are shipped back with a free label. To start, please send me the email address of your "
            "account.", threshold=threshold))
    if account.user is None:
        return account.replies
    user = account.user
    asked = flow.resume(ctx, INTENT)
    data = asked.data if asked else {}
    order_id = ctx.understanding.entity("order_id") or data.get("order_id")
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
    if asked is not None and asked.step == "items":
        return _after_items(ctx, user, order, _chosen_items(ctx, order, data))
    if asked is not None and asked.step == "method":
        return _confirm(ctx, user, order, list(data.get("item_ids") or []), chosen_method(ctx, data))
    explained = Reply(text=t("Order {order_id}:", order_id=order_id) + "\n" + explain_routes(ctx, order))
    named = named_items(ctx, order["items"])
    if named or len(order["items"]) == 1:
        return [explained, *_after_items(ctx, user, order, [i["item_id"] for i in named or order["items"]])]
    return [explained, ask_items(ctx, order)]


def ask_items(ctx: SkillContext, order: dict[str, Any]) -> Reply:
    t = ctx.t
    options = {t("All items"): [i["item_id"] for i in order["items"]]}
    options.update({item_label(t, i): [i["item_id"]] for i in order["items"]})
    flow.ask(ctx, INTENT, "items", {"order_id": order["order_id"], "options": options}, options)
    return Reply(text=t("Which items would you like to return? Tap one, or name them."),
                 buttons=tuple(Button(label, label) for label in options))


def _chosen_items(ctx: SkillContext, order: dict[str, Any], data: dict[str, Any]) -> list[str]:
    ids = flow.pressed(ctx, dict(data.get("options") or {}))
    if ids is not None:
        return list(ids)
    return [i["item_id"] for i in named_items(ctx, order["items"])]


def _after_items(ctx: SkillContext, user: dict[str, Any], order: dict[str, Any], item_ids: list[str]) -> list[Reply]:
    """The items are known: ask for the refund method when there is a choice, else list the return to confirm."""
    if not item_ids:
        return [ask_items(ctx, order)]
    original = order["payment_history"][0]["payment_method_id"]
    methods = [original] + [mid for mid, m in user["payment_methods"].items()
                            if m["source"] == "gift_card" and mid != original]
    if len(methods) == 1:
        return _confirm(ctx, user, order, item_ids, original)
    labels = {mid: method_label(ctx, user_method(ctx, user, mid)) for mid in methods}
    return choose_method_buttons(ctx, INTENT, "method", {"order_id": order["order_id"], "item_ids": item_ids},
                                 labels, ctx.t("Where should the refund go: back to the original payment method, "
                                               "or to a gift card?"))


def _confirm(ctx: SkillContext, user: dict[str, Any], order: dict[str, Any], item_ids: list[str],
             method_id: str | None) -> list[Reply]:
    t = ctx.t
    if method_id is None or not item_ids:
        return _after_items(ctx, user, order, item_ids)
    items = _items(order, item_ids)
    summary = "\n".join([
        t("Return from order {order_id}: {items}.", order_id=order["order_id"], items=items_text(t, items)),
        t("Refund: {amount} to your {method}.", amount=t.money(items_total(items), ctx.shop.currency),
          method=method_label(ctx, user_method(ctx, user, method_id))),
    ])
    args = {"order_id": order["order_id"], "item_ids": item_ids, "payment_method_id": method_id}
    return [ask_to_confirm(ctx, "return_delivered_order_items", args, summary)]


def _items(order: dict[str, Any], item_ids: list[str]) -> list[dict[str, Any]]:
    """The order's items for these ids (an id listed twice is two items)."""
    wanted = list(item_ids)
    found = []
    for item in order["items"]:
        if item["item_id"] in wanted:
            wanted.remove(item["item_id"])
            found.append(item)
    return found


def return_requested(ctx: SkillContext, args: dict[str, Any], order: dict[str, Any]) -> list[Reply]:
    """After the write: what the shopper keeps, what goes back, when the refund comes."""
    t, cur = ctx.t, ctx.shop.currency
    routes = route_items(_items(order, args["item_ids"]), Decimal(str(ctx.shop.returns.keep_it_below)))
    lines = [t("Done: the return for order {order_id} is requested.", order_id=order["order_id"])]
    if routes[ReturnRoute.KEEP_IT]:
        lines.append(t("You can keep {items}; the refund of {refund} is on its way.",
                       items=item_names(t, routes[ReturnRoute.KEEP_IT]),
                       refund=t.money(items_total(routes[ReturnRoute.KEEP_IT]), cur)))
    if routes[ReturnRoute.SHIP_BACK]:
        lines.append(t("You'll get an email with the free return label for {items}; the refund of {refund} is paid "
                       "once they reach our warehouse.",
                       items=item_names(t, routes[ReturnRoute.SHIP_BACK]),
                       refund=t.money(items_total(routes[ReturnRoute.SHIP_BACK]), cur)))
    return [Reply(text=sentences(t, lines))]


register_done_text("return_delivered_order_items", return_requested)
