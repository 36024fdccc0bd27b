"""The LLM's tools: the shop's operations and skills as OpenAI-format function tools.

The commerce tools carry exactly the names and arguments of `core.commerce.base.CommerceBackend` (the
benchmark's retail tools); the skill tools (promotion plan, size advice, payment-failure diagnosis, return
routing, compensation, parcel tracking, product facts) call the skills' own functions. `TOOLS` lists them
all; `parse_arguments` checks a call's JSON against the tool's schema. Running a call for a turn is
`core.tool_runs.run_call`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.commerce.base import CANCEL_REASONS, READ_OPERATIONS, WRITE_OPERATIONS

__all__ = ["TOOLS", "Tool", "ToolError", "ToolKind", "parse_arguments", "schemas", "tool_named"]

TRANSFER = "transfer_to_human_agents"
COMPENSATION_REASONS = ("late_delivery", "damaged_item", "wrong_item", "service_error")


class ToolError(Exception):
    """A call the tools refuse (bad arguments, another shopper's data, unknown tool); the message, which starts
    with "Error: " like the store's refusals, goes back to the model as the tool result."""


class ToolKind(StrEnum):
    READ = "read"  # runs at once; its result goes back to the model
    WRITE = "write"  # never run by the model: the shopper confirms it first (core.confirm)
    HANDOFF = "handoff"  # ends the turn with a hand-over to a human


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...]
    kind: ToolKind = ToolKind.READ

    def schema(self) -> dict[str, Any]:
        parameters = {"type": "object", "properties": self.properties, "required": list(self.required),
                      "additionalProperties": False}
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": parameters}}


def _s(description: str, enum: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "string", "description": description, **({"enum": list(enum)} if enum else {})}


def _n(description: str) -> dict[str, Any]:
    return {"type": "number", "description": description}


def _ids(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


_ORDER = _s("The order id, such as '#W0000000' (with the '#').")
_PAYMENT = _s("A payment method id of the user, such as 'credit_card_0000000', 'paypal_0000000' or "
              "'gift_card_0000000'.")
_ITEMS = _ids("The item ids of the order's items, one entry per item (repeat an id for two of the same item).")
_NEW_ITEMS = _ids("The new item ids, in the same order as item_ids: each an available variant of the same product.")
_ADDRESS = {
    "address1": _s("The first line of the address, such as '123 Main St'."),
    "address2": _s("The second line of the address, such as 'Apt 1' or ''."),
    "city": _s("The city."),
    "state": _s("The state, such as 'CA'."),
    "country": _s("The country, such as 'USA'."),
    "zip": _s("The zip code, such as '12345'."),
}


def _write(name: str, description: str, properties: dict[str, dict[str, Any]]) -> Tool:
    note = " The shopper is shown the details and must answer yes before anything changes."
    return Tool(name, description + note, properties, tuple(properties), ToolKind.WRITE)


COMMERCE_TOOLS: tuple[Tool, ...] = (
    Tool("find_user_id_by_email", "Find a user id by email; this authenticates the shopper for the conversation.",
         {"email": _s("The email of the user, such as 'something@example.com'.")}, ("email",)),
    Tool("find_user_id_by_name_zip",
         "Find a user id by first name, last name and zip code; this authenticates the shopper for the "
         "conversation. Use it only when the shopper cannot be found by email.",
         {"first_name": _s("The first name, such as 'John'."), "last_name": _s("The last name, such as 'Doe'."),
          "zip": _s("The zip code, such as '12345'.")}, ("first_name", "last_name", "zip")),
    Tool("get_user_details", "Get the signed-in user's details: name, address, payment methods, orders.",
         {"user_id": _s("The user id, such as 'sara_doe_496'.")}, ("user_id",)),
    Tool("get_order_details", "Get the status and details of one of the signed-in user's orders.",
         {"order_id": _ORDER}, ("order_id",)),
    Tool("get_product_details", "Get a product's details: its variants (item ids), their options, availability "
         "and price. Product ids and item ids are different things.",
         {"product_id": _s("The product id, such as '6086499569'.")}, ("product_id",)),
    Tool("list_all_product_types", "List the names and product ids of all product types of the shop.", {}, ()),
    _write("cancel_pending_order", "Cancel a pending order. The refund goes to the original payment method: at "
           "once for a gift card, otherwise in 5 to 7 business days.",
           {"order_id": _ORDER, "reason": _s("Why the order is cancelled.", CANCEL_REASONS)}),
    _write("modify_pending_order_address", "Change the shipping address of a pending order.",
           {"order_id": _ORDER, **_ADDRESS}),
    _write("modify_pending_order_payment", "Pay a pending order with another payment method of the user.",
           {"order_id": _ORDER, "payment_method_id": _PAYMENT}),
    _write("modify_pending_order_items",
           "Change items of a pending order to other options of the same product. Possible only once per order: "
           "collect every item to change first.",
           {"order_id": _ORDER, "item_ids": _ITEMS, "new_item_ids": _NEW_ITEMS,
            "payment_method_id": _s("The payment method that pays or receives the price difference.")}),
    _write("return_delivered_order_items", "Return items of a delivered order. The refund goes to the original "
           "payment method or an existing gift card of the user.",
           {"order_id": _ORDER, "item_ids": _ITEMS,
            "payment_method_id": _s("The payment method that receives the refund.")}),
    _write("exchange_delivered_order_items",
           "Exchange items of a delivered order for other options of the same product. Possible only once per "
           "order: collect every item to exchange first.",
           {"order_id": _ORDER, "item_ids": _ITEMS, "new_item_ids": _NEW_ITEMS,
            "payment_method_id": _s("The payment method that pays or receives the price difference.")}),
    _write("modify_user_address", "Change the signed-in user's default address.",
           {"user_id": _s("The user id, such as 'sara_doe_496'."), **_ADDRESS}),
)

SKILL_TOOLS: tuple[Tool, ...] = (
    Tool("get_best_promotion_plan",
         "The best combination of the current promotions (full reductions, shop and platform coupons, gifts) for "
         "one of the signed-in user's orders awaiting shipment, and the cheapest items that reach the next "
         "discount step. Without an order (or not signed in): the current promotion rules.",
         {"order_id": _s("The order id; omit it for the latest order awaiting shipment.")}, ()),
    Tool("get_size_advice", "The size to choose from the shop's size charts: clothes from height and weight, "
         "shoes from foot length.",
         {"kind": _s("What the size is for.", ("clothes", "shoes")), "height_cm": _n("Height in cm (clothes)."),
          "weight_kg": _n("Weight in kg (clothes)."), "foot_length_mm": _n("Foot length in mm (shoes).")},
         ("kind",)),
    Tool("diagnose_payment_failure",
         "The likely causes of a failed payment (card limit, insufficient balance, network timeout, risk "
         "control, expired card, bank maintenance), each with an explanation and the fix.",
         {"description": _s("What the shopper saw, in their words, with any error code.")}, ("description",)),
    Tool("get_return_options",
         "How each item of a delivered order of the signed-in user would be returned: cheap items are refunded "
         "without being sent back ('keep_it'), others are shipped back with a free label ('ship_back').",
         {"order_id": _ORDER}, ("order_id",)),
    Tool("offer_compensation",
         "Give the signed-in shopper an apology coupon for a problem with one of their orders; the amount follows "
         "the shop's rules and a daily cap. Use it only for a real problem the shopper reported.",
         {"order_id": _ORDER, "reason": _s("The problem.", COMPENSATION_REASONS)}, ("order_id", "reason")),
    Tool("track_order_parcels",
         "The latest tracking events of the parcels of one of the signed-in user's shipped orders, and any problem "
         "with a parcel (weather delay, stuck in transit, address problem, failed delivery, returning) with what "
         "to do about it.", {"order_id": _ORDER}, ("order_id",)),
    Tool("get_product_facts",
         "Facts about products (ingredients, usage, specs, care, safety) from the shop's product knowledge, for "
         "the products the question names. Health products come with a disclaimer that must end the answer.",
         {"question": _s("The shopper's question, naming the product, in their words.")}, ("question",)),
    Tool(TRANSFER, "Transfer the shopper to a human agent, only when the request cannot be handled with the other "
         "tools. The conversation goes to the agents' queue and the turn ends.",
         {"summary": _s("A short summary of the shopper's problem for the agent.")}, ("summary",),
         ToolKind.HANDOFF),
)

TOOLS: tuple[Tool, ...] = COMMERCE_TOOLS + SKILL_TOOLS
_BY_NAME = {tool.name: tool for tool in TOOLS}
assert {t.name for t in COMMERCE_TOOLS} == set(READ_OPERATIONS) | set(WRITE_OPERATIONS)
assert all(t.kind == ToolKind.WRITE for t in COMMERCE_TOOLS if t.name in WRITE_OPERATIONS)


def schemas(tools: tuple[Tool, ...] = TOOLS) -> list[dict[str, Any]]:
    return [tool.schema() for tool in tools]


def tool_named(name: str) -> Tool:
    tool = _BY_NAME.get(name)
    if tool is None:
        raise ToolError(f"Error: unknown tool {name!r}; use only the tools listed")
    return tool


def parse_arguments(tool: Tool, raw: str) -> dict[str, Any]:
    """The call's arguments, checked against the tool's schema; ToolError says what is wrong."""
    try:
        args = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ToolError(f"Error: the arguments of {tool.name} are not valid JSON") from None
    if not isinstance(args, dict):
        raise ToolError(f"Error: the arguments of {tool.name} must be a JSON object")
    unknown = sorted(set(args) - set(tool.properties))
    if unknown:
        raise ToolError(f"Error: {tool.name} has no argument {', '.join(unknown)}")
    missing = [name for name in tool.required if args.get(name) is None]
    if missing:
        raise ToolError(f"Error: {tool.name} needs {', '.join(missing)}")
    for name, value in args.items():
        if value is not None:
            _check_value(tool.name, name, tool.properties[name], value)
    return {name: value for name, value in args.items() if value is not None}


def _check_value(tool: str, name: str, spec: dict[str, Any], value: Any) -> None:
    kind = spec["type"]
    if kind == "string" and not isinstance(value, str):
        raise ToolError(f"Error: {tool}: {name} must be a string")
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ToolError(f"Error: {tool}: {name} must be a number")
    if kind == "array" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ToolError(f"Error: {tool}: {name} must be a list of strings")
    if "enum" in spec and value not in spec["enum"]:
        raise ToolError(f"Error: {tool}: {name} must be one of {', '.join(spec['enum'])}")
