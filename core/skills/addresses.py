"""A new address: for a pending order (modify_pending_order_address) or as the shopper's default
(modify_user_address).

The shopper may give the whole address in one message ("100 Main St, Apt 2, Austin, TX 78701, USA"); what
can't be read from it is asked field by field (a small slot-filling flow kept in the session, core.skills.flow).
Then the old and the new address are listed and the write waits for a yes (core.confirm).
"""

from __future__ import annotations

import re
from typing import Any

from core.confirm import ask_to_confirm, read_answer, register_done_text
from core.locale import N_
from core.message import Reply
from core.skills import flow
from core.skills.base import SkillContext
from core.skills.choices import sentences

FIELDS = ("address1", "address2", "city", "state", "zip", "country")
QUESTIONS = {
    "address1": N_("What is the street address (house number and street)?"),
    "address2": N_("Is there an apartment, suite or floor? Send it, or \"none\"."),
    "city": N_("Which city?"),
    "state": N_("Which state (e.g. NY)?"),
    "zip": N_("What is the ZIP code (5 digits)?"),
    "country": N_("Which country?"),
}
DEFAULT_COUNTRY = "USA"
_ZIP = re.compile(r"(?<!\d)(\d{5})(?:-\d{4})?(?!\d)")
_NONE = re.compile(r"none|no|nope|n/?a|-|无|没有|没|不用|なし|ありません|لا يوجد|لا", re.I)
_COUNTRIES = re.compile(r"usa|us|u\.s\.a?\.?|united states(?: of america)?|america|美国|アメリカ|أمريكا", re.I)
_SPLIT = re.compile(r"[,，、;；\n]")
# Where a new address starts in a request: "... to 100 Main St, ...", "地址改成 ...", "住所を...に".
_LEAD = re.compile(r".*(?:\bto\b|\bis\b|改成|改为|改到|换成|变成|：|:|→)\s*", re.I | re.S)
_ORDER_ID = re.compile(r"#?\s*[Ww]\s*(?:\d\s?){6}\d")


def parse_address(text: str) -> dict[str, str] | None:
    """A whole US-style address in one line, or None: "line 1, [line 2,] city, state zip[, country]"."""
    parts = [p.strip() for p in _SPLIT.split(text) if p.strip()]
    country = DEFAULT_COUNTRY
    if parts and _COUNTRIES.fullmatch(parts[-1]):
        parts.pop()
    if len(parts) < 3:
        return None
    zip_match = _ZIP.search(parts[-1])
    if zip_match is None:
        return None
    state = _ZIP.sub("", parts.pop()).strip()
    if not state:
        state = parts.pop()
    if len(parts) < 2 or not state:
        return None
    city = parts.pop()
    return {"address1": parts[0], "address2": ", ".join(parts[1:]), "city": city, "state": state,
            "zip": zip_match.group(1), "country": country}


def address_in(text: str) -> dict[str, str] | None:
    """The address a request carries, if it carries a whole one ("change the address of #W1 to ...")."""
    text = _ORDER_ID.sub("", text)
    return parse_address(_LEAD.sub("", text, count=1)) or parse_address(text)


def address_text(address: dict[str, Any]) -> str:
    """One line, the way the post office reads it (the same in every locale)."""
    state_zip = f"{address.get('state', '')} {address.get('zip', '')}".strip()
    parts = [address.get("address1"), address.get("address2"), address.get("city"), state_zip, address.get("country")]
    return ", ".join(str(p) for p in parts if p)


def change_address(ctx: SkillContext, intent: str, target: dict[str, Any], current: dict[str, Any],
                   step: str | None) -> list[Reply]:
    """Collect the new address for `target` ({"order_id": ...} or {"user_id": ...}), then ask to confirm.

    `step` is the field asked last turn (None on the first turn of the change)."""
    t = ctx.t
    address: dict[str, str] = dict(target.get("address") or {})
    if step is None:
        address = address_in(ctx.text) or {}
    else:
        if read_answer(ctx.text) is False and step != "address2":
            return [Reply(text=t("All right, I haven't changed anything."))]
        answer = ctx.text.strip()
        whole = parse_address(answer)
        if whole is not None:
            address = whole
        elif step == "address2" and _NONE.fullmatch(answer):
            address["address2"] = ""
        elif step == "zip" and not _ZIP.fullmatch(answer):
            return ask_field(ctx, intent, target, address, step, again=True)
        elif step == "country" and _COUNTRIES.fullmatch(answer):
            address["country"] = DEFAULT_COUNTRY
        else:
            address[step] = answer
    missing = next((f for f in FIELDS if f not in address), None)
    if missing is not None:
        if step is None and not address:
            lead = t("Sure. I'll ask for the new address one part at a time (or send it all in one line).")
            return [Reply(text=lead), *ask_field(ctx, intent, target, address, missing)]
        return ask_field(ctx, intent, target, address, missing)
    args = {k: v for k, v in target.items() if k != "address"} | {f: address[f] for f in FIELDS}
    if "order_id" in target:
        summary = t("Change the shipping address of order {order_id} from {old} to {new}.",
                    order_id=target["order_id"], old=address_text(current), new=address_text(address))
        return [ask_to_confirm(ctx, "modify_pending_order_address", args, summary)]
    summary = t("Change your default address from {old} to {new}.", old=address_text(current),
                new=address_text(address))
    return [ask_to_confirm(ctx, "modify_user_address", args, summary)]


def ask_field(ctx: SkillContext, intent: str, target: dict[str, Any], address: dict[str, str], field: str,
              *, again: bool = False) -> list[Reply]:
    # What marks an answer, whatever intent the words may look like to the NLU ("لا يوجد" reads as thanks):
    # a digit (house numbers, postcodes), "none" for the second line, a name of the country.
    answers = {"address2": rf"\d|^\s*(?:{_NONE.pattern})\s*$", "country": rf"^\s*(?:{_COUNTRIES.pattern})\s*$"}
    flow.ask(ctx, intent, f"address:{field}", {**target, "address": address}, answers=answers.get(field, r"\d"))
    question = ctx.t(QUESTIONS[field])
    if again:
        question = sentences(ctx.t, [ctx.t("Sorry, I didn't get that."), question])
    return [Reply(text=question)]


def order_address_changed(ctx: SkillContext, args: dict[str, Any], order: dict[str, Any]) -> list[Reply]:
    return [Reply(text=ctx.t("Done: order {order_id} will be shipped to {address}.", order_id=order["order_id"],
                             address=address_text(order["address"])))]


def user_address_changed(ctx: SkillContext, args: dict[str, Any], user: dict[str, Any]) -> list[Reply]:
    return [Reply(text=ctx.t("Done: your default address is now {address}.",
                             address=address_text(user["address"])))]


register_done_text("modify_pending_order_address", order_address_changed)
register_done_text("modify_user_address", user_address_changed)
