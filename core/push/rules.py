"""Why a recipient is not messaged: quiet hours, the daily marketing cap, channel windows, opt-out.

Local times are worked out once per time zone and run (`Clock`), not once per shopper: a run over
100,000 shoppers meets a handful of zones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo

from core.push.book import Contact
from core.push.config import PushesConfig, TemplateRoute


class Skip(StrEnum):
    NO_CHANNEL = "no_channel"  # no direct chat on a channel the hub can push to
    OPTED_OUT = "opted_out"
    ALREADY_SENT = "already_sent"  # this offer, reminder or alert went out before (within its repeat time)
    QUIET_HOURS = "quiet_hours"  # night time where the shopper is
    DAILY_CAP = "daily_cap"  # the shopper had today's marketing pushes
    CHANNEL_WINDOW = "channel_window"  # outside the platform's window, and no template message configured
    NO_STORE_NEARBY = "no_store_nearby"  # no open store with the sample within the radius
    NO_STOCK = "no_stock"  # the stores nearby have given out what they had
    SEND_FAILED = "send_failed"  # the channel refused or could not be reached


class Route(NamedTuple):
    """How one recipient is reached: their contact, and a template when outside the channel's window."""

    contact: Contact
    template: TemplateRoute | None = None


class Clock:
    """Local date and quiet-hours state per time zone, at one instant."""

    def __init__(self, config: PushesConfig, now: float) -> None:
        self.config = config
        self.now = now
        self._local: dict[str, tuple[str, bool]] = {}
        self._zones: dict[str, ZoneInfo] = {}

    def zone_of_locale(self, locale: str) -> str:
        return self.config.locale_timezones.get(locale, self.config.timezone)

    def _at(self, zone: str) -> tuple[str, bool]:
        known = self._local.get(zone)
        if known is None:
            info = self._zones.setdefault(zone, ZoneInfo(zone))
            local = dt.datetime.fromtimestamp(self.now, info)
            quiet = self.config.quiet_hours is not None and self.config.quiet_hours.contains(local.time())
            known = self._local[zone] = (local.date().isoformat(), quiet)
        return known

    def day(self, zone: str) -> str:
        """The shopper's local date: daily caps count per local day."""
        return self._at(zone)[0]

    def quiet(self, zone: str) -> bool:
        return self._at(zone)[1]


class Channels:
    """The channels the hub can push to, and each channel's window rule."""

    def __init__(self, config: PushesConfig, pushable: Collection[str], templated: Collection[str]) -> None:
        self.config = config
        self.pushable = frozenset(pushable)
        self.templated = frozenset(templated)
        # channel -> (window in seconds, templates by push kind), for the channels that have a window
        self._windows = {name: (rule.window_hours * 3600, rule.templates) for name, rule in config.channels.items()
                         if rule.window_hours is not None}

    def route(self, contacts: Iterable[Contact], kind: str, now: float) -> Route | Skip:
        """The most recently active contact the hub may message now, else why none."""
        reason = Skip.NO_CHANNEL
        if not isinstance(contacts, list) or len(contacts) > 1:
            contacts = sorted(contacts, key=lambda c: c.last_inbound, reverse=True)
        for contact in contacts:
            if contact.channel not in self.pushable:
                continue
            window = self._windows.get(contact.channel)
            if window is None or now - contact.last_inbound < window[0]:
                return Route(contact)
            template = window[1].get(kind)
            if template is not None and contact.channel in self.templated:
                return Route(contact, template)
            reason = Skip.CHANNEL_WINDOW
        return reason
