"""The only types adapters and core share.

An adapter turns a platform payload into a `Message`, hands it to the engine and
renders each `Reply` it gets back in the platform's own form. Nothing in here
knows any platform's wire format.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class ChatKind(StrEnum):
    DIRECT = "direct"
    GROUP = "group"


class EventKind(StrEnum):
    """Platform events that reach the engine (menu clicks arrive as text, by the adapter's menu map)."""

    SUBSCRIBE = "subscribe"  # followed the account / started the bot: welcome
    UNSUBSCRIBE = "unsubscribe"
    LOCATION = "location"  # a location report, kept for nearby-store offers; no reply
    # Shop events a channel reports (the web shop's pages): kept for recommendations; no reply.
    BROWSE = "browse"  # looked at a product
    FAVOURITE = "favourite"  # saved a product
    CART = "cart"  # put a product in the cart


class AttachmentKind(StrEnum):
    IMAGE = "image"
    VOICE = "voice"
    VIDEO = "video"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class ChannelUser:
    """A person as one channel knows them (not yet a customer: see core.identity)."""

    channel: str
    user_id: str
    display_name: str | None = None
    # Set only by an adapter whose channel has already authenticated the shopper
    # against the shop (e.g. the demo web chat, a signed-in web shop session).
    store_user_id: str | None = None

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class Chat:
    kind: ChatKind
    chat_id: str


@dataclass(frozen=True, slots=True)
class Attachment:
    kind: AttachmentKind
    url: str | None = None
    media_id: str | None = None
    mime_type: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not (self.url or self.media_id):
            raise ValueError("an attachment needs a url or a media id")


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float
    label: str | None = None

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise ValueError(f"location out of range: {self.lat}, {self.lon}")


@dataclass(slots=True)
class Message:
    """One inbound message from any channel."""

    user: ChannelUser
    chat: Chat
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    location: Location | None = None
    platform_message_id: str | None = None
    timestamp: float = field(default_factory=time.time)
    locale_hint: str | None = None
    event: EventKind | None = None
    # A phone number the platform itself verified (a shared Telegram contact, the mini-program's
    # phone API): it links this channel user to the customer who verified the same phone elsewhere.
    verified_phone: str | None = None
    product_id: str | None = None  # what a shop event (browse, favourite, cart) is about
    raw: Mapping[str, Any] | None = None

    @property
    def channel(self) -> str:
        return self.user.channel


@dataclass(frozen=True, slots=True)
class Button:
    """A quick reply: `title` is shown, `payload` comes back as the shopper's text."""

    title: str
    payload: str


@dataclass(frozen=True, slots=True)
class ProductCard:
    title: str
    product_id: str
    price: str | None = None
    image_url: str | None = None
    url: str | None = None
    description: str | None = None


class TextStream:
    """Reply text that arrives in pieces (LLM tokens).

    Iterate it once to relay the pieces; afterwards `text` holds the whole text,
    which is what the session records.
    """

    def __init__(self, chunks: AsyncIterator[str]) -> None:
        self._chunks = chunks
        self._parts: list[str] = []
        self.done = False

    def __aiter__(self) -> AsyncIterator[str]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[str]:
        if self.done:
            raise RuntimeError("a TextStream can be consumed only once")
        try:
            async for chunk in self._chunks:
                if chunk:
                    self._parts.append(chunk)
                    yield chunk
        finally:
            self.done = True

    async def collect(self) -> str:
        async for _ in self:
            pass
        return self.text

    @property
    def text(self) -> str:
        return "".join(self._parts)


@dataclass(slots=True)
class Reply:
    """One outbound reply; an adapter renders what its channel can show."""

    text: str = ""
    buttons: tuple[Button, ...] = ()
    image: Attachment | None = None
    card: ProductCard | None = None
    stream: TextStream | None = None

    @property
    def final_text(self) -> str:
        """The text as sent: the streamed text once the stream has been consumed."""
        if self.stream is not None:
            return self.text + self.stream.text
        return self.text


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel can show; the engine folds the rest into text."""

    buttons: bool = True
    images: bool = True
    cards: bool = True
    streaming: bool = False


@dataclass(slots=True)
class TurnResult:
    route: str  # skill, llm, fallback, handoff, held, duplicate
    customer_id: str | None = None
    intent: str | None = None
    replies: list[Reply] = field(default_factory=list)


class BadMessage(ValueError):
    """The message cannot be processed as sent (e.g. text over the limit); a 4xx for the platform.

    `polite_text` is what a channel may tell the shopper, in their language.
    """

    def __init__(self, reason: str, polite_text: str = "") -> None:
        super().__init__(reason)
        self.polite_text = polite_text or reason


class TurnUnavailable(Exception):
    """The turn could not run now (session store down, customer busy); nothing was saved. Retry later."""

    def __init__(self, reason: str, polite_text: str) -> None:
        super().__init__(reason)
        self.polite_text = polite_text


Send = Callable[[Reply], Awaitable[None]]


class TurnHandler(Protocol):
    """The engine as adapters see it."""

    async def handle(self, message: Message, send: Send, caps: Capabilities) -> TurnResult: ...
