"""Swapping items for other variants of the same product: in a pending order (modify_pending_order_items) or
a delivered one (exchange_delivered_order_items).

policy.md: each item may become an available variant of the same product (never another product); either
write happens once per order, so every item to change is collected first ("anything else?"); the price
difference is paid or refunded with a payment method the shopper picks (a gift card must cover a positive
difference). One step per turn, with buttons: the item, its new variant, anything else, the method; then
the list and a yes (core.confirm).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.confirm import ask_to_confirm, register_done_text
from core.message import Button, Reply
from core.skills import flow
from core.skills.base import SkillContext
from core.skills.choices import choose_method_buttons, chosen_method, item_label, method_label, money
from core.skills.order_lookup import named_items

VARIANTS_OFFERED = 8
WRITES = {"order_modify": "modify_pending_order_items", "exchange_request": "exchange_delivered_order_items"}


def _picked(data: dict[str, Any]) -> list[list[str]]:
    return [list(p) for p in data.get("pairs", [])]


def _remaining(order: dict[str, Any], pairs: list[list[str]]) -> list[dict[str, Any]]:
    """The order's items not yet picked (an item listed twice can be picked twice)."""
    taken = [old for old, _ in pairs]
    left = []
    for item in order["items"]:
        if item["item_id"] in taken:
            taken.remove(item["item_id"])
        else:
            left.append(item)
    return left


def _answer(ctx: SkillContext, data: dict[str, Any]) -> str | None:
    """The id behind the option button the shopper pressed."""
    return flow.pressed(ctx, dict(data.get("options") or {}))


def swap_items(ctx: SkillContext, intent: str, user: dict[str, Any], order: dict[str, Any],
               data: dict[str, Any] | None, step: str | None) -> list[Reply]:
    """One step of collecting the swaps of `order` for the skill of `intent` (order_modify, exchange_request)."""
    t = ctx.t
    data = {"order_id": order["order_id"], "what": "items", "pairs": [], **(data or {})}
    pairs = _picked(data)
    if step == "variant":
        new_id = _answer(ctx, data)
        if new_id is not None:
            pairs.append([data["item"], new_id])
            data["pairs"] = pairs
            if _remaining(order, pairs):
                return ask_more(ctx, intent, data)
            step = "method"
        else:
            return ask_variant(ctx, intent, data, next(i for i in order["items"] if i["item_id"] == data["item"]))
    elif step == "more":
        step = None if flow.pressed(ctx, {t("Change another item"): True}) else "method"
    elif step == "item":
        item_id = _answer(ctx, data)
        if item_id is not None:
            item = next(i for i in order["items"] if i["item_id"] == item_id)
            return ask_variant(ctx, intent, {**data, "item": item_id}, item)
    if step == "method":
        return ask_method_or_confirm(ctx, intent, user, order, data)
    return ask_item(ctx, intent, order, data)


def ask_item(ctx: SkillContext, intent: str, order: dict[str, Any], data: dict[str, Any]) -> list[Reply]:
    t = ctx.t
    left = [i for i in _remaining(order, _picked(data)) if _variants(ctx, i)]
    if not left:
        return [Reply(text=t("The items of order {order_id} have no other variant available right now.",
                             order_id=order["order_id"]))]
    named = named_items(ctx, left)
    if len(named) == 1:  # the shopper said which ("exchange the wall clock"): straight to its variants
        return ask_variant(ctx, intent, {**data, "item": named[0]["item_id"]}, named[0])
    options = {item_label(t, i): i["item_id"] for i in left}
    flow.ask(ctx, intent, "swap:item", {**data, "options": options}, options)
    return [Reply(text=t("Which item of order {order_id} would you like to change?", order_id=order["order_id"]),
                  buttons=tuple(Button(label, label) for label in options))]


def _variants(ctx: SkillContext, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The available other variants of the item's product, fewest changed options first."""
    product = ctx.commerce.get_product_details(item["product_id"])
    others = [v for v in product["variants"].values() if v["available"] and v["item_id"] != item["item_id"]]
    mine = item.get("options", {})
    return sorted(others, key=lambda v: sum(v["options"].get(k) != mine.get(k) for k in v["options"]))


def ask_variant(ctx: SkillContext, intent: str, data: dict[str, Any], item: dict[str, Any]) -> list[Reply]:
    t = ctx.t
    options = {t("{options} ({price})", options=t(", ").join(map(str, v["options"].values())),
                 price=money(ctx, v["price"])): v["item_id"] for v in _variants(ctx, item)[:VARIANTS_OFFERED]}
    flow.ask(ctx, intent, "swap:variant", {**data, "options": options}, options)
    return [Reply(text=t("{item} ({price}): which one would you like instead?", item=item_label(t, item),
                         price=money(ctx, item["price"])),
                  buttons=tuple(Button(label, label) for label in options))]


def ask_more(ctx: SkillContext, intent: str, data: dict[str, Any]) -> list[Reply]:
    t = ctx.t
    labels = [t("That's all"), t("Change another item")]
    flow.ask(ctx, intent, "swap:more", data, labels)
    return [Reply(text=t("This can be done only once for an order, so let's collect everything now: is there "
                         "another item to change?"), buttons=tuple(Button(label, label) for label in labels))]


def difference_of(ctx: SkillContext, order: dict[str, Any], pairs: list[list[str]]) -> Decimal:
    prices = {i["item_id"]: Decimal(str(i["price"])) for i in order["items"]}
    total = Decimal(0)
    for old, new in pairs:
        product_id = next(i["product_id"] for i in order["items"] if i["item_id"] == old)
        total += Decimal(str(ctx.commerce.get_product_details(product_id)["variants"][new]["price"])) - prices[old]
    return total


def ask_method_or_confirm(ctx: SkillContext, intent: str, user: dict[str, Any], order: dict[str, Any],
                          data: dict[str, Any]) -> list[Reply]:
    t = ctx.t
    pairs = _picked(data)
    difference = difference_of(ctx, order, pairs)
    methods = {mid: method_label(ctx, m) for mid, m in user["payment_methods"].items()
               if not (m["source"] == "gift_card" and Decimal(str(m.get("balance", 0))) < difference)}
    method_id = chosen_method(ctx, data) if "methods" in data else None
    if method_id is None:
        if difference > 0:
            question = t("The new items cost {amount} more. Which payment method should pay the difference?",
                         amount=money(ctx, difference))
        else:
            question = t("The new items cost {amount} less. Which payment method should get the difference back?",
                         amount=money(ctx, -difference))
        return choose_method_buttons(ctx, intent, "swap:method", data, methods, question)
    by_id = {i["item_id"]: i for i in order["items"]}
    lines = []
    for old, new in pairs:
        variant = ctx.commerce.get_product_details(by_id[old]["product_id"])["variants"][new]
        lines.append(t("{old} → {new}", old=item_label(t, by_id[old]),
                       new=item_label(t, {"name": by_id[old]["name"], "options": variant["options"]})))
    if difference > 0:
        money_line = t("You pay {amount} more with your {method}.", amount=money(ctx, difference),
                       method=methods[method_id])
    else:
        money_line = t("You get {amount} back to your {method}.", amount=money(ctx, -difference),
                       method=methods[method_id])
    write = WRITES[intent]
    head = (t("Change these items of order {order_id}:", order_id=order["order_id"])
            if write == "modify_pending_order_items"
            else t("Exchange these items of order {order_id}:", order_id=order["order_id"]))
    once = t("Please check this is everything: items can be changed only once per order.")
    summary = "\n".join([head, *lines, money_line, once])
    args = {"order_id": order["order_id"], "item_ids": [old for old, _ in pairs],
            "new_item_ids": [new for _, new in pairs], "payment_method_id": method_id}
    return [ask_to_confirm(ctx, write, args, summary)]


def items_changed(ctx: SkillContext, args: dict[str, Any], order: dict[str, Any]) -> list[Reply]:
    return [Reply(text=ctx.t("Done: the items of order {order_id} are changed; it ships with the new ones.",
                             order_id=order["order_id"]))]


def exchange_requested(ctx: SkillContext, args: dict[str, Any], order: dict[str, Any]) -> list[Reply]:
    return [Reply(text=ctx.t("Done: the exchange for order {order_id} is requested. You'll get an email on how to "
                             "send the items back; no new order is needed.", order_id=order["order_id"]))]


register_done_text("modify_pending_order_items", items_changed)
register_done_text("exchange_delivered_order_items", exchange_requested)
