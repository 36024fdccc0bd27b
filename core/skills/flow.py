"""A skill's open question across turns: what it asked, the answers it offered, what it has collected so far.

Changing an order takes several answers (which order, which reason, which item, which payment method, an
address field by field). The asking skill keeps them in `session.slots[FLOW]`; on the next turn the engine
sends the message back to that skill (`awaited_intent`) when it answers the question: one of the offered
choices, text matching the step's answer pattern, or anything the NLU did not confidently read as another
request (out of scope is no request: an address or a name often reads so). A confident other request drops
the question (the shopper moved on), and a question lapses after `FLOW_TTL_S`. Everything kept is plain
JSON, so sessions stay the same on memory and on Redis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from core.nlu import OUT_OF_SCOPE, NluResult
from core.sessions import Session
from core.skills.base import SkillContext

FLOW = "flow"
FLOW_TTL_S = 15 * 60

T = TypeVar("T")


@dataclass(slots=True)
class Flow:
    """The open question of `intent`: its `step` and what the skill collected (`data`, JSON values only)."""

    intent: str
    step: str
    data: dict[str, Any]


def ask(ctx: SkillContext, intent: str, step: str, data: dict[str, Any], choices: Iterable[str] = (),
        answers: str = "") -> None:
    """Keep the question open: `choices` are the button payloads offered, `answers` a regex of free-text answers."""
    ctx.session.slots[FLOW] = {"intent": intent, "step": step, "data": data, "choices": list(choices),
                               "answers": answers, "until": ctx.now + FLOW_TTL_S}


def resume(ctx: SkillContext, intent: str) -> Flow | None:
    """The open question of `intent`, if it is still open; it is closed by reading it (ask again to keep it).

    A message naming another order than the one the question is about starts over."""
    raw = ctx.session.slots.pop(FLOW, None)
    if not isinstance(raw, dict) or raw.get("intent") != intent or float(raw.get("until", 0)) < ctx.now:
        return None
    data = dict(raw.get("data") or {})
    named = ctx.understanding.entity("order_id")
    if named and data.get("order_id") not in (None, named):
        return None
    return Flow(intent, str(raw["step"]), data)


def close(ctx: SkillContext) -> None:
    ctx.session.slots.pop(FLOW, None)


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def pressed(ctx: SkillContext, options: Mapping[str, T]) -> T | None:
    """The value of the button whose label is the whole message (pressed, or typed in any case), or None."""
    return next((value for label, value in options.items() if _same(ctx.text, label)), None)


def awaited_intent(session: Session, understanding: NluResult, text: str, confident: bool) -> str | None:
    """The intent whose question this message answers, or None (and a question it moved away from is dropped).

    `session.updated_at` is the turn's time."""
    raw = session.slots.get(FLOW)
    if not isinstance(raw, dict):
        return None
    intent = str(raw.get("intent"))
    if float(raw.get("until", 0)) < session.updated_at:
        session.slots.pop(FLOW, None)
        return None
    if any(_same(text, choice) for choice in raw.get("choices", ())):
        return intent
    answers = raw.get("answers")
    if answers and re.search(answers, text, re.I):
        return intent
    # An answer to our question (a street, a name) often reads as not about the shop: that is no other request.
    if confident and understanding.intent not in (intent, OUT_OF_SCOPE):
        session.slots.pop(FLOW, None)
        return None
    return intent
