"""Tickets: each hand-over opens one, and it keeps the history of what happened to it.

The ticket holds what the agent console shows beside the transcript (why the shopper was handed over,
their profile when it happened, the priority) and how it ended (resolved with a reason and an intent
label, released to the bot, or timed out). Its events (every message and action while it was open)
are appended separately, so adding one is a single cheap write. Storage: core.agent_queue.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import orjson


class TicketState(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    RELEASED = "released"  # back to the bot by the agent
    RESOLVED = "resolved"
    EXPIRED = "expired"  # nobody claimed it in time, or the held conversation went quiet

    @property
    def open(self) -> bool:
        return self in (TicketState.QUEUED, TicketState.CLAIMED)


@dataclass(slots=True)
class TicketEvent:
    at: float
    kind: str  # opened, claimed, shopper, agent, notice, released, resolved, expired
    by: str  # "shopper", "bot" or the agent id
    text: str = ""
    channel: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes | str) -> TicketEvent:
        return cls(**orjson.loads(data))


@dataclass(slots=True)
class Ticket:
    id: str
    customer_id: str
    opened_at: float
    reason: str  # human_agent, complaint, emotion, low_confidence, vip, llm_transfer (the LLM agent asked)
    locale: str
    channel: str
    question: str  # the message that led to the hand-over
    # Messages the bot could not answer before handing over: what the learning loop labels.
    unanswered: list[str] = field(default_factory=list)
    priority: float = 0.0  # at opening; the queue adds waiting time (core.priority)
    emotion: float = 0.0
    tier: str = "regular"
    order_value: float = 0.0
    profile: dict[str, Any] = field(default_factory=dict)  # core.profiles.Profile.as_dict() at opening
    state: TicketState = TicketState.QUEUED
    agent_id: str | None = None
    claimed_at: float | None = None
    closed_at: float | None = None
    resolution: str | None = None  # the agent's reason, or why it expired
    label: str | None = None  # the intent the agent says the question was (learning loop)

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(8)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Ticket:
        raw = orjson.loads(data)
        return cls(**{**raw, "state": TicketState(raw.get("state", "queued"))})

    def summary(self) -> dict[str, Any]:
        """What the console lists (no profile)."""
        out = asdict(self)
        out.pop("profile")
        return out
