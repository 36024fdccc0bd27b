"""The engine's hook into pushes, called on every turn before the message is understood.

- Keeps the shopper's contact (channel, chat, locale, signed-in store account, time of their last
  message: the WeChat 48-hour window counts from it). Direct chats only: offers never go to a group.
  Rewritten at most every `contact_refresh_s` per customer and channel, so most turns cost nothing.
- Opt-out ("退订", "stop", "配信停止", "إلغاء الاشتراك") and opt-in words, as the whole message: recorded
  at once, and confirmed. Opting out also withdraws the location consent.
- Location consent: a location the shopper shares is kept only after they say yes to nearby offers
  (two buttons, or their numbers on channels without buttons); the yes lasts `location.consent_days`,
  a location `location.keep_hours`. Locations a platform reports by itself (WeChat's LOCATION event,
  a Telegram live location) are kept silently while consent lasts, and dropped otherwise.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from core.locale import Translator
from core.message import Button, ChatKind, EventKind, Message, Reply
from core.metrics import Metrics
from core.push.book import Contact, PushBook
from core.push.config import PushesConfig
from core.sessions import Session
from core.skills.orders import STORE_USER

NEARBY_YES = "/nearby_yes"  # button payloads; a /command says nothing about the language
NEARBY_NO = "/nearby_no"
RECENT_CONTACTS = 50_000  # contacts remembered per process to skip rewriting an unchanged one
_EDGES = re.compile(r"^[\s/!！.。,，]+|[\s!！.。,，~～]+$")
_SPACES = re.compile(r"\s+")


def normalize_word(text: str) -> str:
    """"Stop!", "/stop", " STOP " -> "stop"; used to match whole-message keywords."""
    return _SPACES.sub(" ", _EDGES.sub("", text)).casefold()


class PushInbox:
    def __init__(self, config: PushesConfig, book: PushBook, metrics: Metrics) -> None:
        self.config = config
        self.book = book
        self.metrics = metrics
        self.opt_out_words = frozenset(normalize_word(w) for w in config.opt_out_words)
        self.opt_in_words = frozenset(normalize_word(w) for w in config.opt_in_words)
        self._written: OrderedDict[tuple[str, str], tuple[float, tuple[str, str, str, str | None]]] = OrderedDict()

    async def on_turn(self, customer_id: str, message: Message, text: str, t: Translator, session: Session,
                      now: float) -> list[Reply] | None:
        """Replies that answer the turn (a confirmation, the consent question), or None to go on."""
        if message.chat.kind == ChatKind.DIRECT:
            await self.touch(customer_id, message, t.locale, session, now)
        word = normalize_word(text) if len(text) <= 40 else ""
        if word and word in self.opt_out_words:
            return await self.opt_out(customer_id, t, now)
        if word and word in self.opt_in_words:
            await self.book.set_opt_out(customer_id, None)
            self.metrics.push_preferences.labels("opt_in").inc()
            return [Reply(text=t("You are subscribed again: I'll send you offers (at most {count} a day) and "
                                 "reminders about your orders.", count=self.config.marketing_per_day))]
        if text.strip() == NEARBY_YES:
            return await self.grant(customer_id, t, now)
        if text.strip() == NEARBY_NO:
            await self.book.take_held_location(customer_id, now)
            self.metrics.push_preferences.labels("location_declined").inc()
            return [Reply(text=t("All right, I haven't kept your location."))]
        if message.location is not None and message.chat.kind == ChatKind.DIRECT:
            return await self.location(customer_id, message, t, now)
        return None

    async def touch(self, customer_id: str, message: Message, locale: str, session: Session, now: float) -> None:
        store_user = session.slots.get(STORE_USER) or message.user.store_user_id
        signature = (message.user.user_id, message.chat.chat_id, locale, str(store_user) if store_user else None)
        key = (customer_id, message.channel)
        written = self._written.get(key)
        if written is not None and written[1] == signature and now - written[0] < self.config.contact_refresh_s:
            return
        await self.book.touch(customer_id, Contact(message.channel, signature[0], signature[1], now, locale,
                                                   signature[3]))
        self._written[key] = (now, signature)
        self._written.move_to_end(key)
        if len(self._written) > RECENT_CONTACTS:
            self._written.popitem(last=False)

    async def opt_out(self, customer_id: str, t: Translator, now: float) -> list[Reply]:
        await self.book.set_opt_out(customer_id, now)
        await self.book.set_consent(customer_id, 0)
        self.metrics.push_preferences.labels("opt_out").inc()
        return [Reply(text=t("You have unsubscribed: I won't send you offers or reminders any more, and I have "
                             "forgotten your location. You can still write to me at any time. To receive them "
                             "again, send \"subscribe\"."))]

    async def grant(self, customer_id: str, t: Translator, now: float) -> list[Reply]:
        days = self.config.location.consent_days
        until = now + days * 86400
        await self.book.set_consent(customer_id, until)
        held = await self.book.take_held_location(customer_id, now)
        if held is not None:
            await self.book.set_location(customer_id, held[0], held[1], now, self.location_until(now, until))
        self.metrics.push_preferences.labels("location_consent").inc()
        return [Reply(text=t("Thank you. For the next {days} days I'll use your location only to tell you about "
                             "free samples at stores near you. Send \"stop\" at any time to opt out.",
                             days=t.number(days)))]

    def location_until(self, now: float, consent_until: float) -> float:
        return min(consent_until, now + self.config.location.keep_hours * 3600)

    async def location(self, customer_id: str, message: Message, t: Translator, now: float) -> list[Reply] | None:
        assert message.location is not None
        lat, lon = message.location.lat, message.location.lon
        reported = message.event == EventKind.LOCATION  # by the platform, not shared in the chat
        if await self.book.is_opted_out(customer_id):
            return None if reported else [Reply(text=t(
                "Thank you. You have unsubscribed from our messages, so I haven't kept your location."))]
        consent = await self.book.consent_until(customer_id)
        if consent > now:
            await self.book.set_location(customer_id, lat, lon, now, self.location_until(now, consent))
            return None if reported else [Reply(text=t("Thanks, I've noted your location."))]
        if reported:
            return None
        await self.book.hold_location(customer_id, lat, lon, now + self.config.location.ask_ttl_s)
        return [Reply(
            text=t("Thanks for sharing your location. May I use it for the next {days} days to tell you about "
                   "free samples at stores near you?", days=t.number(self.config.location.consent_days)),
            buttons=(Button(t("Yes, please"), NEARBY_YES), Button(t("No, thanks"), NEARBY_NO)),
        )]
