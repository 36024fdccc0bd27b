"""Understanding: what the shopper wants (intent, confidence, entities).

`IntentRouter` is the seam: the keyword router here is the always-available
fallback; the Rasa client plugs in behind the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

INTENTS: tuple[str, ...] = (
    "greet", "thanks_bye", "human_agent", "order_status", "order_cancel", "order_modify",
    "return_request", "exchange_request", "refund_status", "payment_issue", "promotion_query",
    "size_advice", "product_recommend", "product_question", "store_nearby", "complaint", "invoice",
)
# Rasa's intent for text that is not about the shop (weather, jokes): no skill, and no request either
OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class IntentScore:
    intent: str
    confidence: float


@dataclass(frozen=True, slots=True)
class NluResult:
    intent: str | None
    confidence: float
    entities: tuple[Entity, ...] = ()
    ranking: tuple[IntentScore, ...] = ()
    source: str = ""

    def entity(self, name: str) -> str | None:
        return next((e.value for e in self.entities if e.name == name), None)


class IntentRouter(Protocol):
    name: str
    degraded: bool  # True while a fallback answers for the real router

    async def parse(self, text: str, locale: str) -> NluResult: ...

    async def ping(self) -> bool: ...
