"""What a write will do, in the shopper's language: the details listed before the shopper says yes (core.confirm).

`summarize(ctx, action, args, order)` names the order, the items (name and options), the payment method and
the address the way the shopper knows them, from the store's records; an id it cannot resolve is shown as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.commerce.base import CommerceError
from core.skills.base import SkillContext
from core.skills.changes import REASON_TEXT
from core.skills.choices import item_label, items_text, method_label, user_method
from core.skills.orders import order_total

Record = dict[str, Any]


def address_text(args: dict[str, Any]) -> str:
    parts = (args.get(k, "") for k in ("address1", "address2", "city", "state", "zip", "country"))
    return ", ".join(str(p) for p in parts if p)


def _order_item(order: Record, item_id: str) -> Record | None:
    return next((i for i in order["items"] if i["item_id"] == item_id), None)


def _old_label(ctx: SkillContext, order: Record, item_id: str) -> str:
    item = _order_item(order, item_id)
    return item_label(ctx.t, item) if item else item_id


def _new_label(ctx: SkillContext, order: Record, old_id: str, new_id: str) -> str:
    """The new variant by its options, looked up in the product of the item it replaces."""
    item = _order_item(order, old_id)
    if item is None:
        return new_id
    try:
        variant = ctx.commerce.get_product_details(item["product_id"])["variants"].get(new_id)
    except CommerceError:
        variant = None
    return item_label(ctx.t, {"name": item["name"], "options": variant["options"]}) if variant else new_id


def _method(ctx: SkillContext, order: Record, method_id: str) -> str:
    try:
        user = ctx.commerce.get_user_details(order["user_id"])
    except CommerceError:
        return method_id
    return method_label(ctx, user_method(ctx, user, method_id))


def _changes(ctx: SkillContext, order: Record, args: dict[str, Any]) -> str:
    t = ctx.t
    pairs = zip(args["item_ids"], args["new_item_ids"], strict=False)
    return t(", ").join(t("{old} to {new}", old=_old_label(ctx, order, old), new=_new_label(ctx, order, old, new))
                        for old, new in pairs)


def _items(ctx: SkillContext, order: Record, item_ids: list[str]) -> str:
    return ctx.t(", ").join(_old_label(ctx, order, i) for i in item_ids)


def _cancel(ctx: SkillContext, args: dict[str, Any], order: Record) -> str:
    t = ctx.t
    items = items_text(t, order["items"])
    label = REASON_TEXT.get(args["reason"])
    reason = t(label) if label else args["reason"]
    return t("Cancel order {order_id} ({items}; total {total}). Reason: {reason}. The refund goes to the original "
             "payment method.", order_id=order["order_id"], items=items,
             total=t.money(order_total(order), ctx.shop.currency), reason=reason)


def _order_address(ctx: SkillContext, args: dict[str, Any], order: Record) -> str:
    return ctx.t("Change the shipping address of order {order_id} to: {address}.", order_id=order["order_id"],
                 address=address_text(args))


def _payment(ctx: SkillContext, args: dict[str, Any], order: Record) -> str:
    return ctx.t("Pay order {order_id} with {method} instead.", order_id=order["order_id"],
                 method=_method(ctx, order, args["payment_method_id"]))


def _modify_items(ctx: SkillContext, args: dict[str, Any], order: Record) -> str:
    return ctx.t("In order {order_id}, change {changes}; the price difference is paid or refunded with {method}. "
                 "Items can be changed only once per order: please check that every item you want to change is "
                 "listed.", order_id=order["order_id"], changes=_changes(ctx, order, args),
                 method=_method(ctx, order, args["payment_method_id"]))


def _return(ctx: SkillContext, args: dict[str, Any], order: Record) -> str:
    return ctx.t("Return {items} from order {order_id}; the refund goes to {method}.", order_id=order["order_id"],
                 items=_items(ctx, order, args["item_ids"]),
                 method=_method(ctx, order, args["payment_method_id"]))


def _exchange(ctx: SkillContext, args: dict[str, Any], order: Record) -> str:
    return ctx.t("In order {order_id}, exchange {changes}; the price difference is paid or refunded with {method}. "
                 "Please check that every item you want to exchange is listed.", order_id=order["order_id"],
                 changes=_changes(ctx, order, args),
                 method=_method(ctx, order, args["payment_method_id"]))


_ORDER_WRITES: dict[str, Callable[[SkillContext, dict[str, Any], Record], str]] = {
    "cancel_pending_order": _cancel,
    "modify_pending_order_address": _order_address,
    "modify_pending_order_payment": _payment,
    "modify_pending_order_items": _modify_items,
    "return_delivered_order_items": _return,
    "exchange_delivered_order_items": _exchange,
}


def summarize(ctx: SkillContext, action: str, args: dict[str, Any], order: Record | None) -> str:
    """The details of `action(**args)`; `order` is the order it changes (None for modify_user_address)."""
    if order is None:
        return ctx.t("Change your default address to: {address}.", address=address_text(args))
    return _ORDER_WRITES[action](ctx, args, order)
