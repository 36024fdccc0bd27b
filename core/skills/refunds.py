"""Refund status (intent refund_status): what was refunded from the shopper's orders, to which payment
method, and when it arrives.

The answer comes from each order's payment_history (SEMANTICS.md: cancelling refunds every payment to its
method, changing the payment method refunds the old one) and from requested returns (refunded once the return
is processed). policy.md: a gift card refund is there at once, any other method takes 5 to 7 business days.
Only the signed-in shopper's orders are read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.message import Reply
from core.skills.base import SkillContext
from core.skills.choices import method_label, money, sentences, status_text, user_method
from core.skills.orders import items_total, signed_in_account

INTENT = "refund_status"
ORDERS_SHOWN = 5


def refund_lines(ctx: SkillContext, user: dict[str, Any], order: dict[str, Any]) -> list[str]:
    """What this order refunds: money already sent back, and a requested return's refund still to come."""
    t = ctx.t
    lines = []
    sent: dict[str, Decimal] = {}
    for entry in order["payment_history"]:
        if entry["transaction_type"] == "refund":
            sent[entry["payment_method_id"]] = sent.get(entry["payment_method_id"], Decimal(0)) + Decimal(
                str(entry["amount"]))
    for method_id, amount in sent.items():
        method = method_label(ctx, user_method(ctx, user, method_id))
        if method_id.startswith("gift_card"):
            lines.append(t("{amount} refunded to your {method}: it is already in its balance.",
                           amount=money(ctx, amount), method=method))
        else:
            lines.append(t("{amount} refunded to your {method}: it arrives within 5 to 7 business days of the "
                           "refund.", amount=money(ctx, amount), method=method))
    if order["status"] == "return requested":
        returned = [i for i in order["items"] if i["item_id"] in order.get("return_items", [])]
        method_id = order.get("return_payment_method_id", "")
        amount, method = money(ctx, items_total(returned)), method_label(ctx, user_method(ctx, user, method_id))
        if method_id.startswith("gift_card"):
            lines.append(t("{amount} will be refunded to your {method} as soon as the return is processed.",
                           amount=amount, method=method))
        else:
            lines.append(t("{amount} will be refunded to your {method} once the return is processed; it then "
                           "arrives within 5 to 7 business days.", amount=amount, method=method))
    return lines


async def refund_status(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    account = signed_in_account(ctx, INTENT, t("To check your refunds I need to know who you are: please send me the "
                                               "email address of your account."))
    if account.user is None:
        return account.replies
    user = account.user
    order_id = ctx.understanding.entity("order_id")
    if order_id and order_id not in user["orders"]:
        return [Reply(text=t("I couldn't find order {order_id} on your account.", order_id=order_id))]
    found = []
    for oid in [order_id] if order_id else list(reversed(user["orders"])):
        order = ctx.commerce.get_order_details(oid)
        lines = refund_lines(ctx, user, order)
        if lines:
            head = t("Order {order_id} ({status}):", order_id=oid, status=status_text(t, order["status"]))
            found.append(sentences(t, [head, *lines]))
    if not found:
        if order_id:
            return [Reply(text=t("Order {order_id} has no refund.", order_id=order_id))]
        return [Reply(text=t("I don't see any refund on your account."))]
    return [Reply(text="\n".join(found[:ORDERS_SHOWN]))]
