"""Checks of replies against their locale: the pack's rules and the language's script."""

from __future__ import annotations

from typing import Any

from core.app import Hub
from core.packs import Pack

# a character of the locale's own script: each reply in that locale has at least one
SCRIPT = {"zh-CN": "[\u4e00-\u9fff]", "en": "[A-Za-z]", "ja": "[\u3040-\u30ff]", "ar": "[\u0600-\u06ff]"}


def pack_of(hub: Hub, locale: str) -> Pack:
    pack = hub.engine.catalogs.pack(locale)
    assert pack is not None
    return pack


def texts(body: dict[str, Any]) -> list[str]:
    return [r["text"] for r in body["replies"]] + [b["title"] for r in body["replies"] for b in r["buttons"]]


def assert_clean(hub: Hub, locale: str, body: dict[str, Any]) -> None:
    """Every reply passes the locale's pack: 0 keigo findings in ja, no words never to use anywhere."""
    pack = pack_of(hub, locale)
    for text in texts(body):
        assert pack.check(text) == [], f"{locale}: {text!r}: {pack.check(text)}"
