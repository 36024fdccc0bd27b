"""Locale-aware formatting with babel: money, numbers, percentages, dates and times.

One `Formats` per locale, built once (babel's locale data is parsed on first use and cached);
the catalogs, the templates and the skills all format through it, so a price or a deadline
reads the same way wherever the bot says it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, format_time
from babel.numbers import format_currency, format_decimal, format_percent

Number = int | float | Decimal


def babel_locale(locale: str) -> Locale:
    """"zh-CN" -> babel's zh_CN; an unknown tag formats as English rather than failing a turn."""
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


class Formats:
    """Formatting for one locale."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self.babel = babel_locale(locale)
        # "{1} {0}" (zh, ja), "{1}, {0}" (en), "{1}، {0}" (ar): how this locale joins a date and a time.
        self._date_time = str(self.babel.datetime_formats["short"])

    def money(self, amount: Number, currency: str) -> str:
        return format_currency(amount, currency, locale=self.babel)

    def number(self, value: Number) -> str:
        return format_decimal(value, locale=self.babel)

    def percent(self, fraction: Number) -> str:
        """0.2 -> "20%" in the locale's own way."""
        return format_percent(fraction, locale=self.babel)

    def date(self, value: dt.date) -> str:
        """A calendar day, spelled out: "March 5, 2026", "2026年3月5日", "5 مارس 2026"."""
        return format_date(value, "long", locale=self.babel)

    def time(self, value: dt.time | dt.datetime) -> str:
        return format_time(value, "short", locale=self.babel)

    def datetime(self, value: dt.datetime) -> str:
        """A short deadline: weekday, day and time ("Thu, Mar 5, 6:30 PM", "3月5日(木) 18:30")."""
        day = format_skeleton("MMMEd", value, locale=self.babel)
        return self._date_time.replace("{1}", day).replace("{0}", self.time(value))
