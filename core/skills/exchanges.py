"""Exchanging items of a delivered order for other variants of the same product (intent exchange_request).

policy.md: only a delivered order; every item to exchange is collected first (the exchange happens once);
the price difference is paid or refunded with a method the shopper picks; nothing is written before a yes.
The steps are those of an item swap (core.skills.swaps); no money moves until the items are back.
"""

from __future__ import annotations

from core.message import Reply
from core.skills import flow
from core.skills.base import SkillContext
from core.skills.choices import pick_order, status_text
from core.skills.orders import signed_in_account
from core.skills.swaps import swap_items

INTENT = "exchange_request"


async def exchange_request(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    account = signed_in_account(ctx, INTENT, t("Delivered items can be exchanged for another size, colour or "
                                               "version of the same product. To start, please send me the email "
                                               "address of your account."))
    if account.user is None:
        return account.replies
    user = account.user
    asked = flow.resume(ctx, INTENT)
    data = asked.data if asked else {}
    picked = pick_order(
        ctx, INTENT, user, lambda o: o["status"] == "delivered",
        ctx.understanding.entity("order_id") or data.get("order_id"),
        t("Which order would you like to exchange items from?"),
        lambda oid: t("Exchange from {order_id}", order_id=oid),
        t("Only delivered orders can be exchanged, and I don't see a delivered order on your account."))
    if picked.order is None:
        return picked.replies or []
    order = picked.order
    if order["status"] != "delivered":
        return [Reply(text=t("Order {order_id} is {status}, so it can't be exchanged: only delivered orders can.",
                             order_id=order["order_id"], status=status_text(t, order["status"])))]
    step = asked.step.removeprefix("swap:") if asked and asked.step.startswith("swap:") else None
    return swap_items(ctx, INTENT, user, order, data if step else None, step)
