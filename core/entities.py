"""Entity extraction and normalization shared by every router."""

from __future__ import annotations

import re

from core.nlu import Entity

# Demo store order numbers: "#W" + 7 digits, also written "W2611340", "# W 2611340", "w 261 1340".
_ORDER_ID = re.compile(r"(?<![A-Za-z0-9])#?\s*[Ww]\s*((?:\d\s?){6}\d)(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE_TAIL = re.compile(
    r"(?:尾号|后四位|后4位|末四位|末尾|last\s*(?:4|four)(?:\s*digits)?|下4桁|下四桁)\D{0,6}(\d{4})(?!\d)", re.I
)


def normalize_order_id(raw: str) -> str | None:
    match = _ORDER_ID.search(raw)
    if match is None:
        return None
    return "#W" + re.sub(r"\s", "", match.group(1))


def extract_entities(text: str) -> tuple[Entity, ...]:
    found: list[Entity] = []
    order_id = normalize_order_id(text)
    if order_id:
        found.append(Entity("order_id", order_id))
    email = _EMAIL.search(text)
    if email:
        found.append(Entity("email", email.group(0).lower()))
    tail = _PHONE_TAIL.search(text)
    if tail:
        found.append(Entity("phone_tail", tail.group(1)))
    return tuple(found)
