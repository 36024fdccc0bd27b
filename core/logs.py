"""Logging set-up: personal data (phones, emails) is masked in every log line."""

from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_CN_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_INTL_PHONE = re.compile(r"\+\d[\d\s-]{6,}(\d{2})")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")
_BOT_TOKEN = re.compile(r"(?<!\d)\d{6,}:[A-Za-z0-9_-]{30,}")  # Telegram bot tokens, e.g. inside request URLs
_SECRET_PARAM = re.compile(r"((?:access_token|token|key|secret)=)[^&\s]+", re.I)


def mask(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _BOT_TOKEN.sub("<bot-token>", text)
    text = _SECRET_PARAM.sub(r"\1***", text)
    text = _EMAIL.sub(r"\1***\2", text)
    text = _CN_MOBILE.sub(r"\1****\2", text)
    return _INTL_PHONE.sub(r"+***\1", text)


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(level: str, turn_events: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request, URL included
    # A line per turn costs about a tenth of a turn's CPU: only for those who collect them.
    logging.getLogger("kefu.events").setLevel(logging.INFO if turn_events else logging.WARNING)
