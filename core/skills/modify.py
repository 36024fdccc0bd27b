"""Changing a pending order (intent order_modify): its shipping address, its payment method or its items; and
the shopper's default address.

policy.md: only the address, the payment method or the item options of an order awaiting shipment can be
changed; every change is listed and waits for an explicit yes (core.confirm). What the shopper wants to
change is read from their words, else asked with buttons; the address is collected by core.skills.addresses,
item swaps by core.skills.swaps.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from core.confirm import ask_to_confirm, register_done_text
from core.locale import N_
from core.message import Button, Reply
from core.skills import flow
from core.skills.addresses import change_address
from core.skills.base import SkillContext
from core.skills.choices import (
    choose_method_buttons,
    chosen_method,
    method_label,
    money,
    pick_order,
    refund_lines,
    refund_timing,
    sentences,
    status_text,
    user_method,
)
from core.skills.orders import signed_in_account
from core.skills.swaps import swap_items

INTENT = "order_modify"
ADDRESS, PAYMENT, ITEMS, DEFAULT_ADDRESS = "address", "payment", "items", "default_address"
WHAT_TEXT = {ADDRESS: N_("Shipping address"), PAYMENT: N_("Payment method"), ITEMS: N_("Items (size, colour ...)"),
             DEFAULT_ADDRESS: N_("My default address")}
# What the shopper's words ask to change (zh, en, ja, ar); the first that matches wins.
_WHAT_WORDS = (
    (DEFAULT_ADDRESS, re.compile(r"默认地址|常用地址|账户地址|default address|profile address|account address"
                                 r"|登録住所|既定の住所|العنوان الافتراضي", re.I)),
    (PAYMENT, re.compile(r"支付方式|付款方式|付款|支付|payment|pay (?:with|by)|paypal|gift card"
                         r"|credit card|礼品卡|信用卡|支払|決済|الدفع", re.I)),
    (ADDRESS, re.compile(r"地址|address|住所|お届け先|عنوان", re.I)),
    (ITEMS, re.compile(r"尺码|码数|颜色|款式|型号|规格|item|size|colou?r|variant|option|サイズ|色|مقاس|لون", re.I)),
)


def read_what(text: str) -> str | None:
    return next((what for what, words in _WHAT_WORDS if words.search(text)), None)


async def order_modify(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    account = signed_in_account(ctx, INTENT, t("To change an order I need to know who you are: please send me the "
                                               "email address of your account."))
    if account.user is None:
        return account.replies
    user = account.user
    asked = flow.resume(ctx, INTENT)
    data = asked.data if asked else {}
    step = asked.step if asked else None
    if step and step.startswith("address:"):
        target = data
        current = (ctx.commerce.get_order_details(target["order_id"])["address"] if "order_id" in target
                   else user["address"])
        return change_address(ctx, INTENT, target, current, step.removeprefix("address:"))
    what = data.get("what") or chosen_what(ctx) or read_what(ctx.text)
    if what == DEFAULT_ADDRESS:
        return change_address(ctx, INTENT, {"user_id": user["user_id"]}, user["address"], None)
    picked = pick_order(
        ctx, INTENT, user, lambda o: "pending" in o["status"],
        ctx.understanding.entity("order_id") or data.get("order_id"),
        t("Which order would you like to change? Only orders awaiting shipment can be changed."),
        lambda oid: t("Change {order_id}", order_id=oid),
        t("I don't see an order awaiting shipment on your account: only those can be changed."),
        {"what": what} if what else None)
    if picked.order is None:
        return picked.replies or []
    order = picked.order
    if "pending" not in order["status"]:
        return [Reply(text=t("Order {order_id} is {status}, so it can't be changed any more: only orders awaiting "
                             "shipment can.", order_id=order["order_id"], status=status_text(t, order["status"])))]
    if what is None:
        return ask_what(ctx, order["order_id"])
    if what == ADDRESS:
        return change_address(ctx, INTENT, {"order_id": order["order_id"]}, order["address"], None)
    if what == PAYMENT:
        return change_payment(ctx, user, order, data if step == "payment" else None)
    if order["status"] != "pending":
        return [Reply(text=t("The items of order {order_id} have already been changed once, so they can't be "
                             "changed again.", order_id=order["order_id"]))]
    return swap_items(ctx, INTENT, user, order, data if step and step.startswith("swap:") else None,
                      step.removeprefix("swap:") if step and step.startswith("swap:") else None)


def chosen_what(ctx: SkillContext) -> str | None:
    """The change whose button the shopper pressed."""
    return flow.pressed(ctx, {ctx.t(label): what for what, label in WHAT_TEXT.items()})


def ask_what(ctx: SkillContext, order_id: str) -> list[Reply]:
    labels = [ctx.t(WHAT_TEXT[w]) for w in (ADDRESS, PAYMENT, ITEMS)]
    flow.ask(ctx, INTENT, "what", {"order_id": order_id}, labels)
    return [Reply(text=ctx.t("What would you like to change in order {order_id}?", order_id=order_id),
                  buttons=tuple(Button(label, label) for label in labels))]


def change_payment(ctx: SkillContext, user: dict[str, Any], order: dict[str, Any],
                   data: dict[str, Any] | None) -> list[Reply]:
    """Pay a pending order with another of the shopper's methods (SEMANTICS.md: the order has exactly one
    payment; the new method differs; a gift card must cover the whole amount)."""
    t = ctx.t
    history = order["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        return [Reply(text=t("The payment method of order {order_id} has already been changed once, so it can't be "
                             "changed again.", order_id=order["order_id"]))]
    old_id, amount = history[0]["payment_method_id"], history[0]["amount"]
    methods = {mid: method_label(ctx, m) for mid, m in user["payment_methods"].items()
               if mid != old_id and not (m["source"] == "gift_card" and m.get("balance", 0) < amount)}
    if not methods:
        return [Reply(text=t("You have no other payment method that can pay {amount} for order {order_id}.",
                             amount=money(ctx, amount), order_id=order["order_id"]))]
    new_id = chosen_method(ctx, data) if data else None
    if new_id is None:
        question = t("Order {order_id} ({amount}) is paid with your {method}. Which payment method should pay for "
                     "it instead?", order_id=order["order_id"], amount=money(ctx, amount),
                     method=method_label(ctx, user_method(ctx, user, old_id)))
        return choose_method_buttons(ctx, INTENT, "payment", {"order_id": order["order_id"], "what": PAYMENT},
                                     methods, question)
    summary = t("Pay order {order_id} ({amount}) with your {new} instead of your {old}; the {old} is refunded "
                "{when}.", order_id=order["order_id"], amount=money(ctx, amount), new=methods[new_id],
                old=method_label(ctx, user_method(ctx, user, old_id)), when=refund_timing(ctx, old_id))
    return [ask_to_confirm(ctx, "modify_pending_order_payment",
                           {"order_id": order["order_id"], "payment_method_id": new_id}, summary)]


def payment_changed(ctx: SkillContext, args: dict[str, Any], order: dict[str, Any]) -> list[Reply]:
    """After the write: the new method pays, the old one gets its refund (the last entry of the history)."""
    user = ctx.commerce.get_user_details(order["user_id"])
    refund = order["payment_history"][-1]
    text = ctx.t("Done: order {order_id} is now paid with your {method}.", order_id=order["order_id"],
                 method=method_label(ctx, user_method(ctx, user, args["payment_method_id"])))
    back = refund_lines(ctx, user, {refund["payment_method_id"]: Decimal(str(refund["amount"]))})
    return [Reply(text=sentences(ctx.t, [text, *back]))]


register_done_text("modify_pending_order_payment", payment_changed)
