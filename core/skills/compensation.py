"""Compensation: an apology coupon, from the order's value and the shopper's tier, capped per shopper per day.

Rules: `shop.compensation` in bot_config.yaml (core.config.CompensationConfig). Other skills, and the LLM
as a tool, call `compensate(ctx, ...)`; `grant_compensation` is the same decision without a turn.

The daily cap lives in the conversation's session slots: turns of one customer are serialized across
channels and hub processes (the per-customer lock), so the read-check-write of the counter cannot race,
on the memory store as on Redis. Every grant and every refusal is appended to an audit log (JSON lines in
the demo store's data folder; opened with O_APPEND, one write per line, so processes never interleave).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import orjson

from core.commerce.base import CommerceBackend, CommerceError
from core.commerce.journal import now_iso
from core.config import CompensationConfig
from core.sessions import Session
from core.skills.base import SkillContext
from core.skills.orders import order_total, signed_in_user

log = logging.getLogger("kefu.compensation")

DAY_SLOT = "compensation_day"  # {"day": "2026-11-24", "count": 1, "total": "20"}
GUEST, REGULAR = "guest", "regular"
COUNT_CAP, AMOUNT_CAP = "daily_count_cap", "daily_amount_cap"


@dataclass(frozen=True, slots=True)
class Grant:
    granted: bool
    amount: Decimal  # 0 when refused
    currency: str
    coupon_code: str | None = None
    refused: str | None = None  # COUNT_CAP or AMOUNT_CAP


class AuditLog(Protocol):
    def record(self, entry: dict[str, Any]) -> None: ...


class JsonlAudit:
    """Append-only JSON lines: one line per decision, never rewritten."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, entry: dict[str, Any]) -> None:
        line = orjson.dumps({"at": now_iso(), **entry}) + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [orjson.loads(line) for line in self.path.read_bytes().splitlines() if line.strip()]


class LogAudit:
    """Where there is no data folder (an in-memory store): the audit goes to the log."""

    def record(self, entry: dict[str, Any]) -> None:
        log.info("compensation %s", orjson.dumps(entry).decode())


def audit_for(commerce: CommerceBackend, rules: CompensationConfig) -> AuditLog:
    data_dir = getattr(commerce, "data_dir", None)  # the demo store's folder; other backends may have none
    return JsonlAudit(Path(data_dir) / rules.audit_file) if data_dir else LogAudit()


def coupon_amount(rules: CompensationConfig, order_value: Decimal, tier: str) -> Decimal:
    """Base amount of the highest band reached, times the tier's multiplier, in whole units within min..max."""
    bands = sorted(rules.bands, key=lambda b: b.min_order_value)
    base = next((Decimal(str(b.amount)) for b in reversed(bands) if order_value >= Decimal(str(b.min_order_value))),
                Decimal(str(rules.min_amount)))
    amount = (base * Decimal(str(rules.tier_multipliers.get(tier, 1.0)))).quantize(Decimal(1), ROUND_HALF_UP)
    return max(Decimal(str(rules.min_amount)), min(Decimal(str(rules.max_amount)), amount))


def local_day(now: float, timezone: str) -> str:
    return datetime.fromtimestamp(now, ZoneInfo(timezone)).date().isoformat()


def grant_compensation(
    rules: CompensationConfig,
    session: Session,
    audit: AuditLog,
    *,
    order_value: Decimal,
    tier: str,
    reason: str,
    now: float,
    store_user_id: str | None = None,
    order_id: str | None = None,
) -> Grant:
    """Decide, count against today's cap (in the session), and audit one compensation."""
    day = local_day(now, rules.timezone)
    used = session.slots.get(DAY_SLOT) or {}
    if used.get("day") != day:
        used = {"day": day, "count": 0, "total": "0"}
    spent = Decimal(str(used["total"]))
    amount = coupon_amount(rules, order_value, tier)
    left = Decimal(str(rules.daily_amount_cap)) - spent
    refused = None
    if used["count"] >= rules.daily_count_cap:
        refused = COUNT_CAP
    elif left < Decimal(str(rules.min_amount)):
        refused = AMOUNT_CAP
    if refused is None:
        amount = min(amount, left)  # what is left of today's allowance
        grant = Grant(True, amount, rules.currency, "KF" + secrets.token_hex(4).upper())
        session.slots[DAY_SLOT] = {"day": day, "count": used["count"] + 1, "total": str(spent + amount)}
    else:
        grant = Grant(False, Decimal(0), rules.currency, refused=refused)
    audit.record({
        "customer_id": session.customer_id, "store_user_id": store_user_id, "order_id": order_id, "reason": reason,
        "order_value": str(order_value), "tier": tier,
        **{k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(grant).items()},
    })
    return grant


def compensate(ctx: SkillContext, *, reason: str, order_id: str | None = None, tier: str | None = None) -> Grant:
    """Compensate the shopper of this turn for `reason` (e.g. "late_delivery"), about `order_id` if any.

    `tier` defaults to regular for a signed-in shopper and guest otherwise; callers that know better (VIP,
    core.profiles) pass it. An order that is not the shopper's counts as no order.
    """
    user_id = signed_in_user(ctx)
    value = Decimal(0)
    if order_id and user_id:
        try:
            order = ctx.commerce.get_order_details(order_id)
        except CommerceError:
            order = None
        if order is not None and order.get("user_id") == user_id:
            value = order_total(order)
        else:
            order_id = None
    rules = ctx.shop.compensation
    return grant_compensation(rules, ctx.session, audit_for(ctx.commerce, rules), order_value=value,
                              tier=tier or (REGULAR if user_id else GUEST), reason=reason, now=ctx.now,
                              store_user_id=user_id, order_id=order_id)


def compensation_text(ctx: SkillContext, grant: Grant) -> str:
    t = ctx.t
    if grant.granted:
        return t("As an apology, here is a coupon worth {amount} for your next order: {code}.",
                 amount=t.money(grant.amount, grant.currency), code=grant.coupon_code)
    return t("I've passed your case on to our team, who will get back to you about compensation.")
