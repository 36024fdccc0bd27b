"""What a skill gets and gives. Skills know the shop, never the channel or the LLM."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.commerce.base import CommerceBackend
from core.commerce.logistics import DemoLogistics, LogisticsProvider
from core.config import ShopConfig
from core.locale import Translator
from core.message import Message, Reply
from core.nlu import NluResult
from core.push.stores import Catalog
from core.sessions import Session


@dataclass(slots=True)
class SkillContext:
    message: Message
    text: str  # what the shopper meant: the message text, or the payload of the numbered option they picked
    session: Session
    understanding: NluResult
    t: Translator
    commerce: CommerceBackend
    shop: ShopConfig
    now: float
    logistics: LogisticsProvider = field(default_factory=DemoLogistics)  # parcel tracking (core.commerce.logistics)
    stores: Catalog | None = None  # the shop's stores and their free samples (core.push.stores)


SkillFn = Callable[[SkillContext], Awaitable[list[Reply]]]
