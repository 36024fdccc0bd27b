"""Running one of the LLM's tool calls (core.tools) for a turn, for the signed-in shopper only.

- Reads run at once; the result goes back to the model as JSON.
- Writes never run here: the details are listed and kept pending until the shopper says yes (core.confirm).
- The model acts only for the signed-in shopper (`store_user_id` in the session, core.skills.orders): a user id
  found by email or by name and zip signs that user in for the conversation; any other user, and their orders,
  are refused (one shopper per conversation).
- Refusals (the store's, bad arguments, another shopper, unknown tool) become the tool result, never an error
  of the turn.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from core.commerce.base import CommerceError
from core.commerce.logistics import ADVICE_TEXT, Tracking, alert_text
from core.commerce.products import facts_for
from core.commerce.promotions import CartLine, best_plan, money, next_tier_offers
from core.confirm import ask_to_confirm
from core.llm import ToolCall
from core.message import Reply
from core.skills.base import SkillContext
from core.skills.compensation import compensate, compensation_text
from core.skills.orders import STORE_USER, signed_in_user
from core.skills.payments import CAUSES, diagnose
from core.skills.promotions import (
    ITEMS_SUGGESTED,
    PENDING,
    catalog,
    describe_rules,
    explain_plan,
    first_pending,
    promotion_rules,
    suggest,
)
from core.skills.returns import route_item
from core.skills.sizing import FOOT, HEIGHT, WEIGHT, advise, size_charts
from core.skills.tracking import parcels
from core.tools import ToolError, ToolKind, parse_arguments, tool_named
from core.write_summaries import summarize

log = logging.getLogger("kefu.tools")

Args = dict[str, Any]
ONE_SHOPPER = "only the authenticated shopper can be helped in this conversation (one shopper per conversation)"


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    content: str  # the tool message for the model: JSON, or a line starting with "Error: "
    replies: list[Reply] | None = None  # the turn ends with these (the confirmation question of a write)
    handoff: bool = False  # the turn ends with a hand-over to a human
    health: bool = False  # facts of a health product: the answer must carry the health disclaimer


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def run_call(ctx: SkillContext, call: ToolCall) -> ToolOutcome:
    """Run (or, for a write, ask to confirm) one tool call; every refusal is the tool result."""
    try:
        tool = tool_named(call.name)
        args = parse_arguments(tool, call.arguments)
        if tool.kind == ToolKind.WRITE:
            return ask_for_write(ctx, tool.name, args)
        if tool.kind == ToolKind.HANDOFF:
            return ToolOutcome(to_json({"transferred": True}), handoff=True)
        result = READERS[tool.name](ctx, args)
        return ToolOutcome(to_json(result), health=tool.name == "get_product_facts" and bool(result.get("health")))
    except (ToolError, CommerceError) as exc:
        log.info("tool %s refused: %s", call.name, exc)
        return ToolOutcome(str(exc))
    except Exception:  # a bug in a skill must not end the turn: the model hears the tool failed
        log.exception("tool %s failed", call.name)
        return ToolOutcome(f"Error: {call.name} failed unexpectedly; do not retry it")


# -- who the model acts for ------------------------------------------------------------------------------------


def current_user(ctx: SkillContext) -> str:
    user_id = signed_in_user(ctx)
    if user_id is None:
        raise ToolError("Error: the shopper is not authenticated yet: find their user id by email, or by first "
                        "name, last name and zip code, first")
    return user_id


def sign_in(ctx: SkillContext, user_id: str) -> str:
    """A user found by email or name and zip becomes the conversation's shopper, unless another one already is."""
    current = signed_in_user(ctx)
    if current is not None and current != user_id:
        raise ToolError(f"Error: that is another user: {ONE_SHOPPER}")
    ctx.session.slots[STORE_USER] = user_id
    return user_id


def own_user(ctx: SkillContext, user_id: str) -> str:
    if user_id != current_user(ctx):
        raise ToolError(f"Error: {user_id} is not the authenticated user: {ONE_SHOPPER}")
    return user_id


def own_order(ctx: SkillContext, order_id: str) -> dict[str, Any]:
    user_id = current_user(ctx)
    order = ctx.commerce.get_order_details(order_id)
    if order.get("user_id") != user_id:
        raise ToolError(f"Error: order {order_id} is not an order of the authenticated user: {ONE_SHOPPER}")
    return order


# -- reads -----------------------------------------------------------------------------------------------------


def _promotion_order(ctx: SkillContext, order_id: str | None) -> dict[str, Any] | None:
    if order_id:
        order = own_order(ctx, order_id)
        if order["status"] not in PENDING:
            raise ToolError(f"Error: order {order_id} is {order['status']}; promotions apply to orders awaiting "
                            "shipment")
        return order
    user_id = signed_in_user(ctx)
    return first_pending(ctx.commerce, reversed(ctx.commerce.get_user_details(user_id)["orders"] if user_id else []))


def promotion_plan(ctx: SkillContext, args: Args) -> Any:
    rules = promotion_rules(ctx.shop)
    order = _promotion_order(ctx, args.get("order_id"))
    if order is None:
        return {"promotions": describe_rules(ctx, rules)}
    cart = [CartLine(item["name"], money(item["price"])) for item in order["items"]]
    plan = best_plan(rules, cart)
    result = {"order_id": order["order_id"], "currency": ctx.shop.currency, "subtotal": str(plan.subtotal),
              "total": str(plan.total), "saving": str(plan.saving),
              "explanation": explain_plan(ctx, rules, plan, order["order_id"])}
    offers = next_tier_offers(rules, cart, catalog(ctx.commerce), ITEMS_SUGGESTED)
    if offers and offers[0].items:
        result["next_step"] = suggest(ctx, rules, offers[0])
    return result


_MEASURES = {HEIGHT: "height_cm", WEIGHT: "weight_kg", FOOT: "foot_length_mm"}


def size_advice(ctx: SkillContext, args: Args) -> Any:
    chart = size_charts(ctx.shop).get(args["kind"])
    if chart is None:
        raise ToolError(f"Error: there is no size chart for {args['kind']}")
    missing = [_MEASURES[m] for m in chart.measures if args.get(_MEASURES[m]) is None]
    if missing:
        raise ToolError(f"Error: {args['kind']} sizes need {', '.join(missing)}")
    advice = advise(chart, {m: float(args[_MEASURES[m]]) for m in chart.measures})
    result: dict[str, Any] = {"size": advice.size.size, "beyond_chart": advice.outside}
    if advice.size.eu:
        result["eu_size"] = advice.size.eu
    if advice.between is not None:
        result["between_sizes"] = [advice.between[0].size, advice.between[1].size]
        result["note"] = "between two sizes: the larger is suggested for comfort, the smaller fits closer"
    return result


def payment_diagnosis(ctx: SkillContext, args: Args) -> Any:
    t = ctx.t
    causes = diagnose(args["description"])
    if not causes:
        return {"causes": [], "known_causes": [c.id for c in CAUSES],
                "note": "no cause matched: ask the shopper for the message or error code they saw"}
    return {"causes": [{"cause": c.id, "explanation": t(c.explanation), "fix": t(c.fix)} for c in causes]}


def return_options(ctx: SkillContext, args: Args) -> Any:
    order = own_order(ctx, args["order_id"])
    if order["status"] != "delivered":
        raise ToolError(f"Error: order {order['order_id']} is {order['status']}; only delivered orders can be "
                        "returned")
    threshold = Decimal(str(ctx.shop.returns.keep_it_below))
    items = [{"item_id": i["item_id"], "name": i["name"], "price": i["price"],
              "route": str(route_item(Decimal(str(i["price"])), threshold))} for i in order["items"]]
    return {"order_id": order["order_id"], "keep_it_below": str(threshold), "currency": ctx.shop.currency,
            "items": items}


def compensation(ctx: SkillContext, args: Args) -> Any:
    own_order(ctx, args["order_id"])
    grant = compensate(ctx, reason=f"llm:{args['reason']}", order_id=args["order_id"])
    return {"granted": grant.granted, "amount": str(grant.amount), "currency": grant.currency,
            "coupon_code": grant.coupon_code, "tell_the_shopper": compensation_text(ctx, grant)}


def _parcel(ctx: SkillContext, tracking: Tracking) -> dict[str, Any]:
    t, zone = ctx.t, ZoneInfo(ctx.shop.compensation.timezone)
    events = [{"at": dt.datetime.fromtimestamp(e.at, zone).isoformat(timespec="minutes"), "place": e.place,
               "event": e.text(t)} for e in tracking.events]
    parcel: dict[str, Any] = {"tracking_id": tracking.tracking_id, "events": events}
    if tracking.anomaly is not None:
        parcel["problem"] = alert_text(t, tracking.anomaly)
        parcel["what_to_do"] = t(ADVICE_TEXT[tracking.anomaly.problem])
    return parcel


def order_parcels(ctx: SkillContext, args: Args) -> Any:
    order = own_order(ctx, args["order_id"])
    found = [_parcel(ctx, tracking) for tracking in parcels(ctx, order)]
    result: dict[str, Any] = {"order_id": order["order_id"], "status": order["status"], "parcels": found}
    if not found:
        result["note"] = "only shipped orders (status processed) have parcels in transit"
    return result


def product_facts(ctx: SkillContext, args: Args) -> Any:
    facts = facts_for(args["question"], ctx.t.locale)
    result: dict[str, Any] = {"facts": [{"product": f.product, "kind": f.kind, "text": f.text} for f in facts]}
    if not facts:
        result["note"] = "no product facts for this question: do not guess"
    pack = ctx.t.pack
    if any(f.health for f in facts):
        result["health"] = True
        if pack is not None:
            result["health_disclaimer"] = pack.health_disclaimer
    return result


READERS: dict[str, Callable[[SkillContext, Args], Any]] = {
    "find_user_id_by_email": lambda ctx, a: sign_in(ctx, ctx.commerce.find_user_id_by_email(a["email"])),
    "find_user_id_by_name_zip": lambda ctx, a: sign_in(
        ctx, ctx.commerce.find_user_id_by_name_zip(a["first_name"], a["last_name"], a["zip"])),
    "get_user_details": lambda ctx, a: ctx.commerce.get_user_details(own_user(ctx, a["user_id"])),
    "get_order_details": lambda ctx, a: own_order(ctx, a["order_id"]),
    "get_product_details": lambda ctx, a: ctx.commerce.get_product_details(a["product_id"]),
    "list_all_product_types": lambda ctx, a: ctx.commerce.list_all_product_types(),
    "get_best_promotion_plan": promotion_plan,
    "get_size_advice": size_advice,
    "diagnose_payment_failure": payment_diagnosis,
    "get_return_options": return_options,
    "offer_compensation": compensation,
    "track_order_parcels": order_parcels,
    "get_product_facts": product_facts,
}


# -- writes ----------------------------------------------------------------------------------------------------


def ask_for_write(ctx: SkillContext, action: str, args: Args) -> ToolOutcome:
    """Check the write is the shopper's own, list its details and keep it pending until their yes."""
    if action == "modify_user_address":
        own_user(ctx, args["user_id"])
        order = None
    else:
        order = own_order(ctx, args["order_id"])
    summary = summarize(ctx, action, args, order)
    reply = ask_to_confirm(ctx, action, args, summary)
    status = {"status": "not done yet: the shopper was shown these details and asked to answer yes or no",
              "details": summary}
    return ToolOutcome(to_json(status), replies=[reply])
