"""Parcel tracking: the events of a tracking id, and the problems a shopper should hear about.

No carrier is connected yet, so `DemoLogistics` stands in. For a demo store order it derives plausible
tracking events (picked up, sorted, in transit, out for delivery, delivered) from a hash of the tracking id,
so every hub process and every run sees the same parcel, and reports a stable share of the shipped parcels
(status `processed`) as having a problem: delayed by the weather, stuck in transit, an address the courier
cannot match, a failed delivery, or on its way back. The order status skill shows the events and what to do
about a problem; the logistics alert push (core.push.jobs) tells the shopper first, with `alert_text`.

A real provider implements `LogisticsProvider` from a carrier's tracking API or webhooks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from core.locale import N_, Translator

DAY = 86400.0


class Problem(StrEnum):
    WEATHER_DELAY = "weather_delay"  # late because of the weather on the way
    STALLED = "stalled"  # stuck in transit: no scan for days
    ADDRESS_PROBLEM = "address_problem"  # the courier cannot match the delivery address
    FAILED_DELIVERY = "failed_delivery"  # the courier could not deliver
    RETURNING = "returning"  # on its way back to the shop


class Weather(StrEnum):
    RAINSTORM = "rainstorm"
    SNOWSTORM = "snowstorm"
    TYPHOON = "typhoon"


WEATHER_TEXT = {
    Weather.RAINSTORM: N_("rainstorms"),
    Weather.SNOWSTORM: N_("snowstorms"),
    Weather.TYPHOON: N_("a typhoon"),
}

# What to do about each problem, for the shopper who asks (the order status skill).
ADVICE_TEXT = {
    Problem.WEATHER_DELAY: N_("Nothing to do on your side: the parcel continues as soon as the weather allows."),
    Problem.STALLED: N_("We have asked the courier to trace it; if it has not moved within 2 days, we will "
                        "send a replacement or refund you."),
    Problem.ADDRESS_PROBLEM: N_("Please check the delivery address: if it is wrong or incomplete, send me the "
                                "correct one and a colleague will pass it to the courier."),
    Problem.FAILED_DELIVERY: N_("The courier will try again on the next working day; you can also collect it at "
                                "the local depot."),
    Problem.RETURNING: N_("Once it is back with us, we will reship it or refund you, as you prefer."),
}


class Step(StrEnum):
    """What a tracking event says; the text is translated when shown (`TrackingEvent.text`)."""

    PICKED_UP = "picked_up"
    SORTED = "sorted"
    IN_TRANSIT = "in_transit"
    ARRIVED = "arrived"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    WEATHER_HOLD = "weather_hold"
    ADDRESS_QUERY = "address_query"
    DELIVERY_FAILED = "delivery_failed"
    RETURNING = "returning"


STEP_TEXT = {
    Step.PICKED_UP: N_("Picked up by the courier"),
    Step.SORTED: N_("Sorted and dispatched from the sorting centre"),
    Step.IN_TRANSIT: N_("In transit to the destination hub"),
    Step.ARRIVED: N_("Arrived at the destination hub"),
    Step.OUT_FOR_DELIVERY: N_("Out for delivery"),
    Step.DELIVERED: N_("Delivered"),
    Step.WEATHER_HOLD: N_("Held at the hub because of {weather}"),
    Step.ADDRESS_QUERY: N_("The courier could not match the delivery address"),
    Step.DELIVERY_FAILED: N_("Delivery attempt failed: no one was available to receive it"),
    Step.RETURNING: N_("On its way back to the sender"),
}


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    at: float  # epoch seconds
    place: str
    step: Step
    weather: Weather | None = None  # for WEATHER_HOLD

    def text(self, t: Translator) -> str:
        """The event's description in the shopper's language."""
        if self.weather is not None:
            return t(STEP_TEXT[self.step], weather=t(WEATHER_TEXT[self.weather]))
        return t(STEP_TEXT[self.step])


@dataclass(frozen=True, slots=True)
class Anomaly:
    order_id: str
    tracking_id: str
    problem: Problem
    days: int = 0  # weather: about this many days late; stalled: no scan for this many days
    weather: Weather | None = None


@dataclass(frozen=True, slots=True)
class Tracking:
    tracking_id: str
    events: tuple[TrackingEvent, ...]  # oldest first
    anomaly: Anomaly | None = None

    @property
    def latest(self) -> TrackingEvent | None:
        return self.events[-1] if self.events else None


class LogisticsProvider(Protocol):
    name: str

    def track(self, tracking_id: str, order: dict[str, Any], now: float) -> Tracking:
        """The parcel's events up to `now` and its current problem, if any (`order`: the store record)."""
        ...

    def anomalies(self, orders: Iterable[dict[str, Any]]) -> list[Anomaly]:
        """The problems among these orders' shipped parcels (store records, as CommerceBackend returns them)."""
        ...


def tracking_ids(order: dict[str, Any]) -> list[str]:
    return [str(tid) for f in order.get("fulfillments") or () for tid in f.get("tracking_id") or ()]


def alert_text(t: Translator, anomaly: Anomaly) -> str:
    """One clause for a proactive alert: "your parcel is delayed by rainstorms, about 2 days late"."""
    if anomaly.problem == Problem.WEATHER_DELAY and anomaly.weather is not None:
        return t("your parcel is delayed by {weather}, about {days} days late",
                 weather=t(WEATHER_TEXT[anomaly.weather]), days=anomaly.days)
    if anomaly.problem == Problem.STALLED:
        return t("your parcel has been stuck in transit for {days} days", days=anomaly.days)
    if anomaly.problem == Problem.ADDRESS_PROBLEM:
        return t("the courier could not match your delivery address")
    if anomaly.problem == Problem.FAILED_DELIVERY:
        return t("the courier could not deliver your parcel")
    return t("your parcel is being sent back to us")


# Where the demo's parcels go through: the shop's warehouses and the carrier's hubs (the demo store ships
# within the USA).
_WAREHOUSES = ("Reno, NV", "Columbus, OH", "Allentown, PA", "Dallas, TX")
_HUBS = ("Memphis, TN", "Louisville, KY", "Indianapolis, IN", "Chicago, IL", "Atlanta, GA", "Kansas City, MO")
_PROBLEMS = tuple(Problem)
_WEATHERS = tuple(Weather)


class DemoLogistics:
    """Stable, plausible parcels for the demo store: everything follows from sha256 of the tracking id."""

    name = "demo"

    def __init__(self, anomaly_rate: float = 0.08) -> None:
        self.anomaly_rate = anomaly_rate

    @staticmethod
    def _digest(tracking_id: str) -> bytes:
        return hashlib.sha256(f"kefu-logistics:{tracking_id}".encode()).digest()

    def _anomaly(self, order: dict[str, Any], tracking_id: str, digest: bytes) -> Anomaly | None:
        if order.get("status") != "processed":
            return None
        if int.from_bytes(digest[:4], "big") / 2**32 >= self.anomaly_rate:
            return None
        problem = _PROBLEMS[digest[6] % len(_PROBLEMS)]
        if problem == Problem.WEATHER_DELAY:
            return Anomaly(order["order_id"], tracking_id, problem, 2 + digest[4] % 2, _WEATHERS[digest[7] % 3])
        if problem == Problem.STALLED:
            return Anomaly(order["order_id"], tracking_id, problem, 3 + digest[4] % 3)
        return Anomaly(order["order_id"], tracking_id, problem)

    def anomalies(self, orders: Iterable[dict[str, Any]]) -> list[Anomaly]:
        found: list[Anomaly] = []
        for order in orders:
            if order.get("status") != "processed":
                continue
            for tracking_id in tracking_ids(order):
                anomaly = self._anomaly(order, tracking_id, self._digest(tracking_id))
                if anomaly is not None:
                    found.append(anomaly)
        return found

    def track(self, tracking_id: str, order: dict[str, Any], now: float) -> Tracking:
        digest = self._digest(tracking_id)
        anomaly = self._anomaly(order, tracking_id, digest)
        address = order.get("address") or {}
        destination = ", ".join(p for p in (address.get("city"), address.get("state")) if p) or "—"
        origin, hub = _WAREHOUSES[digest[8] % len(_WAREHOUSES)], _HUBS[digest[9] % len(_HUBS)]
        delivered = order.get("status") in ("delivered", "return requested", "exchange requested")
        # Shipped 2-4 days ago (delivered parcels 6-9 days ago; a parcel with a problem early enough for the
        # problem to have happened), at a stable hour, counted from midnight UTC of today.
        if delivered:
            days_ago = 6 + digest[10] % 4
        elif anomaly is not None and anomaly.problem == Problem.STALLED:
            days_ago = anomaly.days
        else:
            days_ago = (3 if anomaly is not None else 2) + digest[10] % 2
        today = dt.datetime.fromtimestamp(now, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        shipped = today.timestamp() - DAY * days_ago
        shipped += 3600 * (8 + digest[11] % 10) + 60 * (digest[12] % 60)
        plan = [(0.0, origin, Step.PICKED_UP), (0.2, origin, Step.SORTED), (0.9, hub, Step.IN_TRANSIT),
                (1.6, destination, Step.ARRIVED), (2.1, destination, Step.OUT_FOR_DELIVERY),
                (2.5, destination, Step.DELIVERED)]
        if not delivered:
            plan = plan[:-1]
        events = [TrackingEvent(shipped + days * DAY, place, step) for days, place, step in plan]
        if anomaly is not None:
            events = self._troubled(events, anomaly, hub, destination)
        return Tracking(tracking_id, tuple(e for e in events if e.at <= now), anomaly)

    @staticmethod
    def _troubled(events: list[TrackingEvent], anomaly: Anomaly, hub: str, destination: str) -> list[TrackingEvent]:
        """The events of a parcel with `anomaly`: the journey stops where the problem happened."""
        at = {e.step: e.at for e in events}
        problem = anomaly.problem
        if problem == Problem.WEATHER_DELAY:
            kept = [e for e in events if e.step in (Step.PICKED_UP, Step.SORTED, Step.IN_TRANSIT)]
            return [*kept, TrackingEvent(at[Step.IN_TRANSIT] + 0.3 * DAY, hub, Step.WEATHER_HOLD, anomaly.weather)]
        if problem == Problem.STALLED:
            # No scan since it left the sorting centre, `days` days ago.
            return [e for e in events if e.step in (Step.PICKED_UP, Step.SORTED)]
        kept = [e for e in events if e.step in (Step.PICKED_UP, Step.SORTED, Step.IN_TRANSIT, Step.ARRIVED)]
        step = {Problem.ADDRESS_PROBLEM: Step.ADDRESS_QUERY, Problem.FAILED_DELIVERY: Step.DELIVERY_FAILED,
                Problem.RETURNING: Step.RETURNING}[problem]
        return [*kept, TrackingEvent(at[Step.ARRIVED] + 0.4 * DAY, destination, step)]
