"""What the order-changing skills share: finding the shopper's order to act on, naming items and payment
methods the way the shopper sees them, and what a refund's timing is (policy.md).

Every order comes from the signed-in shopper's own list: an order number that is not theirs is answered as
not found, so one conversation never touches another shopper's orders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.locale import Translator
from core.message import Button, Reply
from core.skills import flow
from core.skills.base import SkillContext
from core.skills.orders import STATUS_TEXT, item_name  # the shopper-facing order statuses

ORDERS_OFFERED = 3


@dataclass(frozen=True, slots=True)
class OrderPick:
    """The order the shopper means, or the replies that ask for it (exactly one of the two is set)."""

    order: dict[str, Any] | None = None
    replies: list[Reply] | None = None


def money(ctx: SkillContext, amount: float | Decimal) -> str:
    return ctx.t.money(Decimal(str(amount)), ctx.shop.currency)


def sentences(t: Translator, parts: Iterable[str]) -> str:
    """Sentences in a row: Chinese and Japanese write them without spaces."""
    return ("" if t.locale.startswith(("zh", "ja")) else " ").join(parts)


def status_text(t: Translator, status: str) -> str:
    return t(STATUS_TEXT.get(status, status))


def pick_order(
    ctx: SkillContext,
    intent: str,
    user: dict[str, Any],
    fits: Callable[[dict[str, Any]], bool],
    order_id: str | None,
    question: str,
    button: Callable[[str], str],
    none_fit: str,
    keep: dict[str, Any] | None = None,
) -> OrderPick:
    """The order `order_id` if it is the shopper's; without one, the shopper's latest orders that `fits` as
    buttons (`button(order_id)` is the payload and title), or `none_fit` when there are none. `keep` is what
    the skill collected already, kept with the question."""
    t = ctx.t
    if order_id:
        if order_id not in user["orders"]:
            return OrderPick(replies=[Reply(text=t("I couldn't find order {order_id} on your account.",
                                                   order_id=order_id))])
        ctx.session.slots["last_order_id"] = order_id
        return OrderPick(order=ctx.commerce.get_order_details(order_id))
    offered = [oid for oid in reversed(user["orders"]) if fits(ctx.commerce.get_order_details(oid))][:ORDERS_OFFERED]
    if not offered:
        return OrderPick(replies=[Reply(text=none_fit)])
    payloads = [button(oid) for oid in offered]
    flow.ask(ctx, intent, "order", dict(keep or {}), payloads)
    return OrderPick(replies=[Reply(text=question, buttons=tuple(Button(p, p) for p in payloads))])


def item_label(t: Translator, item: dict[str, Any]) -> str:
    """"Water Bottle (1000ml, glass, blue)": the name and the variant's options."""
    options = t(", ").join(str(v) for v in item.get("options", {}).values())
    name = item_name(t, item)
    return t("{name} ({options})", name=name, options=options) if options else name


def items_text(t: Translator, items: Iterable[dict[str, Any]]) -> str:
    return t(", ").join(item_label(t, item) for item in items)


def method_label(ctx: SkillContext, method: dict[str, Any]) -> str:
    """How a payment method is named to its owner: "gift card (balance $17.00)", "PayPal", "Visa card ending 1234"."""
    t = ctx.t
    source = method.get("source")
    if source == "gift_card":
        return t("gift card (balance {balance})", balance=money(ctx, method.get("balance", 0)))
    if source == "credit_card":
        return t("{brand} card ending {last_four}", brand=str(method.get("brand", "")).title(),
                 last_four=method.get("last_four", ""))
    if source == "paypal":
        return t("PayPal")
    return str(method.get("id", source))


def user_method(ctx: SkillContext, user: dict[str, Any], method_id: str) -> dict[str, Any]:
    """One of the user's payment methods (a method the user no longer has is named by its id)."""
    return dict(user["payment_methods"].get(method_id) or {"id": method_id, "source": method_id.split("_")[0]})


def is_gift_card(method_id: str) -> bool:
    return method_id.startswith("gift_card")


def refund_timing(ctx: SkillContext, method_id: str) -> str:
    """policy.md: a gift card is refunded at once, any other method within 5 to 7 business days."""
    if is_gift_card(method_id):
        return ctx.t("at once")
    return ctx.t("within 5 to 7 business days")


def refund_lines(ctx: SkillContext, user: dict[str, Any], refunds: dict[str, Decimal]) -> list[str]:
    """One line per refunded method: the amount, the method and when it arrives."""
    return [ctx.t("{amount} back to your {method}, {when}.", amount=money(ctx, amount),
                  method=method_label(ctx, user_method(ctx, user, method_id)), when=refund_timing(ctx, method_id))
            for method_id, amount in refunds.items()]


def choose_method_buttons(ctx: SkillContext, intent: str, step: str, data: dict[str, Any],
                          methods: dict[str, str], question: str) -> list[Reply]:
    """Ask which payment method (id -> label): the buttons' payloads come back to the skill in data["methods"]."""
    payloads = {label: method_id for method_id, label in methods.items()}
    flow.ask(ctx, intent, step, {**data, "methods": payloads}, payloads)
    return [Reply(text=question, buttons=tuple(Button(label, label) for label in payloads))]


def chosen_method(ctx: SkillContext, data: dict[str, Any]) -> str | None:
    """The payment method id whose button the shopper pressed (or whose label they typed)."""
    return flow.pressed(ctx, dict(data.get("methods") or {}))
