"""The logistics check: which shipped parcels have a problem the shopper should hear about.

No carrier is connected yet, so `DemoLogistics` stands in: over the demo store's shipped orders (status
`processed`, with tracking ids) it reports a stable share of parcels as having a problem, chosen by a
hash of the tracking id, so every hub process and every run sees the same parcels. A real provider
implements the same protocol from a carrier's tracking API or webhooks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from core.locale import N_


class Problem(StrEnum):
    STALLED = "stalled"  # no scan for days
    FAILED_DELIVERY = "failed_delivery"  # the courier could not deliver
    RETURNING = "returning"  # on its way back to the shop


PROBLEM_TEXT = {
    Problem.STALLED: N_("your parcel has not moved for a few days"),
    Problem.FAILED_DELIVERY: N_("the courier could not deliver your parcel"),
    Problem.RETURNING: N_("your parcel is being sent back to us"),
}


@dataclass(frozen=True, slots=True)
class Anomaly:
    order_id: str
    tracking_id: str
    problem: Problem


class LogisticsProvider(Protocol):
    name: str

    def anomalies(self, orders: Iterable[dict[str, Any]]) -> list[Anomaly]:
        """The problems among these orders' parcels (store records, as CommerceBackend returns them)."""
        ...


class DemoLogistics:
    name = "demo"

    def __init__(self, anomaly_rate: float = 0.08) -> None:
        self.anomaly_rate = anomaly_rate

    def anomalies(self, orders: Iterable[dict[str, Any]]) -> list[Anomaly]:
        found: list[Anomaly] = []
        problems = list(Problem)
        for order in orders:
            if order.get("status") != "processed":
                continue
            for fulfillment in order.get("fulfillments") or ():
                for tracking_id in fulfillment.get("tracking_id") or ():
                    digest = hashlib.sha256(f"kefu-logistics:{tracking_id}".encode()).digest()
                    if int.from_bytes(digest[:4], "big") / 2**32 < self.anomaly_rate:
                        found.append(Anomaly(order["order_id"], str(tracking_id), problems[digest[4] % 3]))
        return found
