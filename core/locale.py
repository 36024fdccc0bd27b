"""Locale choice, message catalogs (babel), locale packs, templates and locale-aware formatting.

Catalogs: locales/<lang>/LC_MESSAGES/kefu.po, extracted from the code with pybabel (babel.cfg) and
compiled to kefu.mo by scripts/setup.sh. At start the hub reads each compiled catalog, or the .po
itself when the .mo is missing or older than it (so an edited .po is never shadowed by a stale .mo).
Fuzzy and empty translations are not used: the msgid (English) is said instead, and
tests/test_locale_catalogs.py fails on any of them.

A translation may use the persona's {bot_name} (from the locale pack) besides the msgid's own
placeholders; everything else about a market lives in its pack (core.packs) and templates
(core.templates), both loaded here with the catalogs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from core.formatting import Formats, babel_locale
from core.packs import PERSONA_FIELDS, Pack, PackSet, SwitchMatcher, placeholders
from core.shaping import Shaper
from core.templates import TemplateSet

log = logging.getLogger("kefu.locale")

DOMAIN = "kefu"
# What marks a bot string for pybabel (babel.cfg): t("..."), ctx.t("..."), N_("..."), catalogs.gettext(locale, "...").
EXTRACT_KEYWORDS: dict[str, tuple[int, ...] | None] = {"t": None, "N_": None, "gettext": (2,)}
PACKS_FOLDER = "packs"
TEMPLATES_FOLDER = "templates"


def normalize_locale(tag: str | None, supported: Iterable[str]) -> str | None:
    """Map a loose tag ("zh", "zh_cn", "en-US", "ja-JP") to a supported locale, or None."""
    if not tag:
        return None
    wanted = tag.strip().replace("_", "-").lower()
    options = {s.lower(): s for s in supported}
    if wanted in options:
        return options[wanted]
    language = wanted.split("-", 1)[0]
    if language in options:
        return options[language]
    # "zh" or "zh-hans" -> the first supported "zh-*"
    return next((s for low, s in options.items() if low.split("-", 1)[0] == language), None)


# ---------------------------------------------------------------- the text's language

# What says nothing about the language: links, emails, order numbers, /commands.
_NEUTRAL = re.compile(r"https?://\S+|\S+@\S+|#?\bW\s?\d[\d\s]*|/\w+")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
# Latin words alone say little (brand and product names: "Nike Air", "iPhone case"); English needs one of these.
_ENGLISH_WORDS = frozenset({
    "i", "you", "my", "me", "your", "we", "our", "the", "a", "an", "is", "are", "was", "were", "be", "do", "does",
    "did", "can", "could", "would", "will", "should", "what", "where", "when", "how", "why", "which", "who",
    "please", "hi", "hello", "hey", "thanks", "thank", "to", "for", "of", "in", "on", "at", "with", "and", "or",
    "not", "no", "yes", "it", "this", "that", "have", "has", "want", "need", "help", "i'm", "it's", "don't",
    "can't", "there",
})


def text_locales(text: str) -> tuple[str, ...]:
    """The languages the script of `text` points to, best first; () when it says nothing.

    A cheap heuristic, used only when neither the shopper nor the channel says: kana is Japanese,
    Arabic script Arabic, Han without kana Chinese (or Japanese written in kanji only), and at least
    two Latin words, one of them a common English word, English. One Latin word ("hello", "ok") or a
    product name ("Nike Air") is not enough: shoppers of every market type those.
    """
    if not text:
        return ()
    text = _NEUTRAL.sub(" ", text)
    if _KANA.search(text):
        return ("ja",)
    if len(_ARABIC.findall(text)) >= 2:
        return ("ar",)
    if _HAN.search(text):
        return ("zh-CN", "ja")
    words = _LATIN_WORD.findall(text)
    if len(words) >= 2 and any(w.lower() in _ENGLISH_WORDS for w in words):
        return ("en",)
    return ()


@dataclass(frozen=True, slots=True)
class LocaleChoice:
    locale: str
    source: str  # setting, switch, hint, text, session, default
    switched: bool = False  # this message asked for the language: answer with a confirmation

    @property
    def remember(self) -> bool:
        """Whether the session's locale should become this one."""
        return self.source in ("switch", "hint", "text")


def pick_locale(
    *,
    hint: str | None,
    session_locale: str | None,
    chosen: bool,
    text: str,
    supported: Iterable[str],
    default: str,
    switches: SwitchMatcher | None = None,
) -> LocaleChoice:
    """The locale of one turn.

    1. A switch request ("English please", "日本語で", "用中文", "بالعربية") sets the shopper's setting.
    2. The shopper's setting (a locale they chose before).
    3. The channel's hint (Telegram language_code, WeChat user language, the browser's language).
    4. The text's language (`text_locales`), keeping the session's locale when it is one of the
       candidates (kanji-only text in a Japanese conversation stays Japanese).
    5. The locale the conversation already had (an earlier hint or text), then the shop's default.
    """
    supported = tuple(supported)
    wanted = switches.match(text) if switches is not None else None
    if wanted is not None and wanted in supported:
        return LocaleChoice(wanted, "switch", switched=True)
    if chosen and session_locale in supported:
        return LocaleChoice(session_locale, "setting")
    hinted = normalize_locale(hint, supported)
    if hinted:
        return LocaleChoice(hinted, "hint")
    candidates = [c for c in text_locales(text) if c in supported]
    if candidates:
        keep = session_locale if session_locale in candidates else candidates[0]
        return LocaleChoice(keep, "text")
    if session_locale in supported:
        return LocaleChoice(session_locale, "session")
    return LocaleChoice(default, "default")


# ---------------------------------------------------------------- catalogs


def _folder(locale: str) -> str:
    return locale.replace("-", "_")


def read_catalog(folder: Path, locale: str) -> Catalog | None:
    """The compiled catalog if it is at least as new as its .po, else the .po; None when neither exists."""
    base = folder / _folder(locale) / "LC_MESSAGES"
    po, mo = base / f"{DOMAIN}.po", base / f"{DOMAIN}.mo"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as handle:
            return read_mo(handle)
    if not po.exists():
        return None
    if mo.exists():
        log.warning("%s is older than %s: reading the .po (run scripts/setup.sh to compile it)", mo, po)
    with po.open("rb") as handle:
        return read_po(handle, locale=_folder(locale))


class Catalogs:
    """Translations, packs and templates of every configured locale, read once at start."""

    def __init__(
        self,
        messages: dict[str, dict[str, str]],
        default_locale: str,
        packs: PackSet | None = None,
        templates: TemplateSet | None = None,
    ) -> None:
        self._messages = messages
        self.default_locale = default_locale
        self.packs = packs if packs is not None else PackSet()
        self.templates = templates if templates is not None else TemplateSet()
        self.shaper = Shaper(self.packs)
        self._formats: dict[str, Formats] = {}
        self._persona: dict[str, dict[str, str]] = {
            locale: pack.persona_values for locale, pack in self.packs.packs.items()
        }
        # Translations that use {bot_name} and so are formatted even when the caller passes no values.
        self._persona_msgids: dict[str, frozenset[str]] = {
            locale: frozenset(m for m, text in table.items() if placeholders(text) & PERSONA_FIELDS)
            for locale, table in messages.items()
        }

    @classmethod
    def load(cls, locales_dir: Path, locales: Iterable[str], default_locale: str) -> Catalogs:
        locales = tuple(locales)
        messages: dict[str, dict[str, str]] = {}
        for locale in locales:
            catalog = read_catalog(locales_dir, locale)
            messages[locale] = {} if catalog is None else {
                str(m.id): str(m.string) for m in catalog if m.id and m.string and not m.fuzzy
            }
        packs = PackSet.load(locales_dir / PACKS_FOLDER, locales)
        templates = TemplateSet.load(locales_dir / TEMPLATES_FOLDER, locales, packs)
        return cls(messages, default_locale, packs, templates)

    def gettext(self, locale: str, msgid: str, **params: object) -> str:
        text = self._messages.get(locale, {}).get(msgid) or msgid
        if msgid in self._persona_msgids.get(locale, ()):
            return text.format(**{**self._persona[locale], **params})
        return text.format(**params) if params else text

    def missing(self, locale: str, msgids: Iterable[str]) -> list[str]:
        table = self._messages.get(locale, {})
        return [m for m in msgids if m not in table]

    def pack(self, locale: str) -> Pack | None:
        return self.packs.get(locale)

    def persona(self, locale: str) -> Mapping[str, str]:
        return self._persona.get(locale, {"bot_name": ""})

    def widget_persona(self, tag: str | None) -> dict[str, str]:
        """What a chat widget shows for a browser's locale tag: the pack's persona and text direction."""
        locale = normalize_locale(tag, self.packs.packs) or self.default_locale
        pack = self.packs.get(locale)
        if pack is None:
            return {"locale": locale, "bot_name": "", "avatar": "robot", "avatar_kind": "robot", "direction": "ltr"}
        persona = pack.spec.persona
        return {"locale": locale, "bot_name": persona.bot_name, "avatar": persona.avatar,
                "avatar_kind": persona.avatar_kind, "direction": pack.spec.direction}

    def formats(self, locale: str) -> Formats:
        formats = self._formats.get(locale)
        if formats is None:
            formats = self._formats[locale] = Formats(locale)
        return formats

    def babel_locale(self, locale: str) -> Locale:
        return self.formats(locale).babel if locale in self._formats else babel_locale(locale)

    def money(self, locale: str, amount: float | Decimal, currency: str) -> str:
        return self.formats(locale).money(amount, currency)

    def render_template(self, locale: str, template_id: str, currency: str, **values: Any) -> str:
        return self.templates.render(template_id, self.formats(locale), currency, self.persona(locale), values)


class Translator:
    """Catalogs bound to one turn's locale: `t("Hello {name}", name=...)`, `t.money(...)`, `t.template(...)`."""

    def __init__(self, catalogs: Catalogs, locale: str) -> None:
        self.catalogs = catalogs
        self.locale = locale

    def __call__(self, msgid: str, **params: object) -> str:
        return self.catalogs.gettext(self.locale, msgid, **params)

    @property
    def formats(self) -> Formats:
        return self.catalogs.formats(self.locale)

    @property
    def pack(self) -> Pack | None:
        return self.catalogs.pack(self.locale)

    def money(self, amount: float | Decimal, currency: str) -> str:
        return self.formats.money(amount, currency)

    def number(self, value: float | Decimal) -> str:
        return self.formats.number(value)

    def template(self, template_id: str, currency: str, **values: Any) -> str:
        """A promotion or reminder template (core.templates), rendered for this locale."""
        return self.catalogs.render_template(self.locale, template_id, currency, **values)


def N_(msgid: str) -> str:
    """Mark a string for extraction into the catalogs without translating it here."""
    return msgid
