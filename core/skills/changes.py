"""Cancelling a pending order (intent order_cancel).

policy.md: only an order awaiting shipment (status exactly `pending`) can be cancelled, for one of two
reasons ('no longer needed', 'ordered by mistake'); the shopper confirms the order and the reason. The skill
collects both (buttons when the reason is not clear from the words), lists the order, its items and the
refund to the original payment method, and leaves the write to the confirmation (core.confirm): nothing
changes before the shopper says yes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

from core.commerce.base import CANCEL_REASONS
from core.confirm import ask_to_confirm, register_done_text
from core.locale import N_
from core.message import Button, Reply
from core.skills import flow
from core.skills.base import SkillContext
from core.skills.choices import items_text, pick_order, refund_lines, sentences, status_text
from core.skills.orders import signed_in_account

INTENT = "order_cancel"
NO_LONGER_NEEDED, BY_MISTAKE = CANCEL_REASONS
REASON_TEXT = {NO_LONGER_NEEDED: N_("No longer needed"), BY_MISTAKE: N_("Ordered by mistake")}
# The shopper's words for the two reasons the store accepts, in zh, en, ja and ar.
_REASON_WORDS = {
    NO_LONGER_NEEDED: re.compile(r"不需要|不再需要|不要了|不想要|用不上|用不到|不用了"
                                 r"|no longer need|don'?t need|not needed|don'?t want|changed my mind"
                                 r"|もう(?:必要|いら)|不要にな[りっ]"
                                 r"|لم أعد بحاجة|لا أحتاج", re.I),
    BY_MISTAKE: re.compile(r"买错|下错|拍错|点错|误购|误下|by mistake|mistaken|accident|wrong(?:ly)? order"
                           r"|間違|誤って|بالخطأ|عن طريق الخطأ", re.I),
}


def read_reason(text: str) -> str | None:
    """The store's reason the shopper's words give, or None when they give neither (or both)."""
    found = [reason for reason, words in _REASON_WORDS.items() if words.search(text)]
    return found[0] if len(found) == 1 else None


def pressed_reason(ctx: SkillContext) -> str | None:
    """The reason whose button label (in the shopper's language) is the whole message."""
    return flow.pressed(ctx, {ctx.t(REASON_TEXT[r]): r for r in CANCEL_REASONS})


def refunds_of(order: dict[str, Any]) -> dict[str, Decimal]:
    """What cancelling gives back, by method (SEMANTICS.md: a refund for every payment_history entry)."""
    refunds: dict[str, Decimal] = defaultdict(Decimal)
    for entry in order["payment_history"]:
        refunds[entry["payment_method_id"]] += Decimal(str(entry["amount"]))
    return dict(refunds)


async def order_cancel(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    account = signed_in_account(ctx, INTENT, t("To cancel an order I need to know who you are: please send me the "
                                               "email address of your account."))
    if account.user is None:
        return account.replies
    user = account.user
    asked = flow.resume(ctx, INTENT)
    data = asked.data if asked else {}
    picked = pick_order(
        ctx, INTENT, user, lambda o: o["status"] == "pending",
        ctx.understanding.entity("order_id") or data.get("order_id"),
        t("Which order would you like to cancel? Only orders awaiting shipment can be cancelled."),
        lambda oid: t("Cancel {order_id}", order_id=oid),
        t("I don't see an order awaiting shipment on your account: only those can be cancelled."))
    if picked.order is None:
        return picked.replies or []
    order = picked.order
    if order["status"] != "pending":
        return [Reply(text=refused(ctx, order))]
    reason = pressed_reason(ctx) or read_reason(ctx.text)
    if reason is None:
        return ask_reason(ctx, order["order_id"], again=asked is not None and asked.step == "reason")
    summary = "\n".join([
        t("Cancel order {order_id}, reason: {reason}.", order_id=order["order_id"], reason=t(REASON_TEXT[reason])),
        t("Items: {items}.", items=items_text(t, order["items"])),
        sentences(t, [t("Refund:"), *refund_lines(ctx, user, refunds_of(order))]),
    ])
    return [ask_to_confirm(ctx, "cancel_pending_order", {"order_id": order["order_id"], "reason": reason}, summary)]


def refused(ctx: SkillContext, order: dict[str, Any]) -> str:
    t = ctx.t
    text = t("Order {order_id} is {status}, so it can't be cancelled: only orders awaiting shipment can.",
             order_id=order["order_id"], status=status_text(t, order["status"]))
    if order["status"] == "delivered":
        text = sentences(t, [text, t("A delivered order can be returned or exchanged instead.")])
    return text


def ask_reason(ctx: SkillContext, order_id: str, *, again: bool) -> list[Reply]:
    t = ctx.t
    labels = [t(REASON_TEXT[r]) for r in CANCEL_REASONS]
    answers = "|".join(f"(?:{words.pattern})" for words in _REASON_WORDS.values())
    flow.ask(ctx, INTENT, "reason", {"order_id": order_id}, labels, answers)
    question = t("Why would you like to cancel order {order_id}?", order_id=order_id)
    if again:
        question = sentences(t, [t("I can cancel an order only for one of these two reasons:"), question])
    return [Reply(text=question, buttons=tuple(Button(label, label) for label in labels))]


def cancelled_text(ctx: SkillContext, args: dict[str, Any], order: dict[str, Any]) -> list[Reply]:
    """After the write: the order is cancelled, and where the money goes back, when."""
    user = ctx.commerce.get_user_details(order["user_id"])
    history = order["payment_history"]
    # The cancellation appended one refund per earlier entry: the second half of the history.
    refunds = refunds_of({"payment_history": history[len(history) // 2:]})
    lines = [ctx.t("Order {order_id} is cancelled.", order_id=order["order_id"])]
    lines += refund_lines(ctx, user, refunds)
    return [Reply(text=sentences(ctx.t, lines))]


register_done_text("cancel_pending_order", cancelled_text)
