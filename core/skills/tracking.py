"""A shipped order's parcel in words: its latest tracking events and, when something is wrong, what the
shopper can do about it (core.commerce.logistics gives the events and the problem)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from core.commerce.logistics import ADVICE_TEXT, Problem, Tracking, alert_text, tracking_ids
from core.message import Button
from core.skills.base import SkillContext

EVENTS_SHOWN = 3  # the latest ones, newest first


def parcels(ctx: SkillContext, order: dict[str, Any]) -> list[Tracking]:
    """The tracking of each parcel of a shipped order (none for other orders)."""
    if order.get("status") != "processed":
        return []
    return [ctx.logistics.track(tid, order, ctx.now) for tid in tracking_ids(order)]


def tracking_details(ctx: SkillContext, order: dict[str, Any]) -> tuple[str, tuple[Button, ...]]:
    """Lines to add under the order's description, and buttons for what to do about a problem."""
    t = ctx.t
    zone = ZoneInfo(ctx.shop.compensation.timezone)  # the shop's time zone (where its day starts)
    lines: list[str] = []
    buttons: list[Button] = []
    for tracking in parcels(ctx, order):
        if tracking.events:
            lines.append(t("Latest tracking of parcel {tracking}:", tracking=tracking.tracking_id))
            for event in reversed(tracking.events[-EVENTS_SHOWN:]):
                when = t.formats.datetime(dt.datetime.fromtimestamp(event.at, zone))
                lines.append(t("· {time}, {place}: {event}", time=when, place=event.place, event=event.text(t)))
        anomaly = tracking.anomaly
        if anomaly is not None:
            lines.append(t("Please note: {problem}. {advice}", problem=alert_text(t, anomaly),
                           advice=t(ADVICE_TEXT[anomaly.problem])))
            if anomaly.problem == Problem.ADDRESS_PROBLEM:
                buttons.append(Button(t("Correct the address"), t("human please")))
    return "\n".join(lines), tuple(buttons)
