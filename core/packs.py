"""Locale packs: locales/packs/<lang>.yaml.

A pack says how the bot sounds in one market:

- persona: the bot's name, avatar and presentation, checked at load against the pack's persona rules
  (the ar pack forbids a female name, avatar or presentation);
- register: keigo (ja: です/ます form, a keigo lexicon, see core.keigo), polite or formal;
- disclaimers: the health-product notice, and the words that mark a health product;
- never_use: words the bot never says, each with what to say instead (or none: flagged only);
- llm: the rules added to the LLM's system prompt, the stricter instruction for a regenerated answer,
  and whether LLM answers stream as they come (`streamed`) or are checked whole first (`checked`);
- switch: how a speaker of this language asks for a language ("English please", "日本語で").

Packs are validated when loaded: a bad pack stops the hub at start with a message naming the file
and the field. Every pattern is compiled at load, so checking a reply costs a few regex passes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.keigo import Finding, KeigoChecker, LexiconEntry

__all__ = ["Finding", "Pack", "PackError", "PackSet", "SwitchMatcher", "normalize_phrase"]

# Placeholders a catalog translation or a template may use without the caller passing them.
PERSONA_FIELDS = frozenset({"bot_name"})


class PackError(ValueError):
    """A pack that cannot be used; the message names the file and what is wrong."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonaSpec(_Spec):
    bot_name: str = Field(min_length=1)
    avatar: str = Field(min_length=1)  # an avatar id the channels know ("robot") or an image URL
    avatar_kind: Literal["robot", "abstract", "neutral", "male", "female"]
    presentation: Literal["robot", "neutral", "male", "female"]
    tagline: str = ""


class PersonaRules(_Spec):
    forbid_presentation: tuple[str, ...] = ()
    forbid_avatar_kinds: tuple[str, ...] = ()
    forbid_names: tuple[str, ...] = ()  # e.g. female-coded names, for a market where that matters


class TermSpec(_Spec):
    term: str = Field(min_length=1)
    instead: str | None = None  # None: flagged, not replaced
    why: str = ""


class LexiconSpec(_Spec):
    casual: str = Field(min_length=1)  # a regular expression
    keigo: str


class KeigoSpec(_Spec):
    lexicon: tuple[LexiconSpec, ...]
    allowed_endings: tuple[str, ...] = ()
    preferred: tuple[str, ...] = ()  # the keigo vocabulary the LLM is told to use


class DisclaimerSpec(_Spec):
    health: str = Field(min_length=1)


class LlmSpec(_Spec):
    delivery: Literal["streamed", "checked"] = "streamed"
    rules: tuple[str, ...] = ()
    regenerate: str = Field(min_length=1)  # {findings}: what was wrong with the first answer


class SwitchSpec(_Spec):
    frames: tuple[str, ...]  # "in {name}", "用{name}", "{name}で", "ب{name}"
    names: dict[str, tuple[str, ...]]  # locale -> what this language calls it


class PackSpec(_Spec):
    locale: str
    direction: Literal["ltr", "rtl"] = "ltr"
    # `register` in the YAML; renamed here because BaseModel has a `register` attribute
    register_: Literal["keigo", "polite", "formal", "neutral"] = Field("polite", alias="register")
    persona: PersonaSpec
    persona_rules: PersonaRules = PersonaRules()
    disclaimers: DisclaimerSpec
    health_keywords: tuple[str, ...] = ()
    never_use: tuple[TermSpec, ...] = ()
    keigo: KeigoSpec | None = None
    llm: LlmSpec
    switch: SwitchSpec


_LATIN = re.compile(r"[A-Za-z]")


def _term_pattern(term: str) -> str:
    """Latin words match as whole words (so "cure" is not found in "secure"); other scripts anywhere."""
    escaped = re.escape(term)
    return rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])" if _LATIN.search(term) else escaped


def _match_case(found: str, instead: str) -> str:
    return instead[:1].upper() + instead[1:] if found[:1].isupper() and instead else instead


def placeholders(text: str) -> set[str]:
    """The {names} a str.format text uses."""
    return {name for _, name, _, _ in Formatter().parse(text) if name is not None}


@dataclass(slots=True)
class Pack:
    spec: PackSpec
    source: Path | None = None
    keigo: KeigoChecker | None = None
    llm_rules: str = ""  # rendered once: appended to the LLM's system prompt
    _terms: re.Pattern[str] | None = None
    _instead: dict[str, TermSpec] = field(default_factory=dict)
    max_term_chars: int = 0

    @classmethod
    def build(cls, spec: PackSpec, source: Path | None = None) -> Pack:
        pack = cls(spec, source)
        if spec.never_use:
            pack._terms = re.compile("|".join(_term_pattern(t.term) for t in spec.never_use), re.IGNORECASE)
            pack._instead = {t.term.casefold(): t for t in spec.never_use}
            pack.max_term_chars = max(len(t.term) for t in spec.never_use)
        if spec.keigo is not None:
            lexicon = [LexiconEntry(e.casual, e.keigo) for e in spec.keigo.lexicon]
            pack.keigo = KeigoChecker(lexicon, spec.keigo.allowed_endings)
        pack.llm_rules = pack._render_rules()
        return pack

    @property
    def locale(self) -> str:
        return self.spec.locale

    @property
    def bot_name(self) -> str:
        return self.spec.persona.bot_name

    @property
    def persona_values(self) -> dict[str, str]:
        return {"bot_name": self.spec.persona.bot_name}

    @property
    def health_disclaimer(self) -> str:
        return self.spec.disclaimers.health

    @property
    def checked_delivery(self) -> bool:
        """LLM answers are checked whole before the shopper sees them (no token streaming)."""
        return self.spec.llm.delivery == "checked"

    def check(self, text: str) -> list[Finding]:
        """Everything this pack objects to in `text`; [] for a clean reply."""
        findings: list[Finding] = []
        if self._terms is not None and self._terms.search(text):
            for m in self._terms.finditer(text):
                spec = self._instead[m.group(0).casefold()]
                findings.append(Finding("never_use", m.group(0), spec.instead or ""))
        if self.keigo is not None:
            findings.extend(self.keigo.check(text))
        return findings

    def replace_terms(self, text: str) -> str:
        """Never-use words with a replacement, replaced (case kept for Latin words); flagged ones stay."""
        if self._terms is None:
            return text

        def swap(m: re.Match[str]) -> str:
            spec = self._instead[m.group(0).casefold()]
            return m.group(0) if spec.instead is None else _match_case(m.group(0), spec.instead)

        return self._terms.sub(swap, text)

    def term_spans(self, text: str) -> Iterable[tuple[int, int]]:
        return () if self._terms is None else (m.span() for m in self._terms.finditer(text))

    def polish(self, text: str) -> str:
        """What a rewrite can fix: replaceable never-use words, casual Japanese and plain endings."""
        text = self.replace_terms(text)
        return self.keigo.rewrite(text) if self.keigo is not None else text

    def regenerate_instruction(self, findings: Iterable[Finding]) -> str:
        listed = "; ".join(dict.fromkeys(str(f) for f in findings))
        return self.spec.llm.regenerate.format(findings=listed, **self.persona_values)

    def _render_rules(self) -> str:
        spec = self.spec
        values = {
            **self.persona_values,
            "never_use": ", ".join(t.term for t in spec.never_use),
            "keigo": "、".join(spec.keigo.preferred) if spec.keigo else "",
            "disclaimer": spec.disclaimers.health,
        }
        return "\n".join(f"- {rule.format(**values)}" for rule in spec.llm.rules)


_RULE_FIELDS = {"bot_name", "never_use", "keigo", "disclaimer"}
_ARABIC_MARKS = re.compile(r"[\u064b-\u065f\u0670\u0640]")  # harakat and tatweel
_ALEF = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ى": "ي"})


def normalize_phrase(text: str) -> str:
    """A short message reduced for phrase lookup: case, width, spaces, punctuation and Arabic marks gone."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _ARABIC_MARKS.sub("", text).translate(_ALEF)
    return "".join(ch for ch in text if not (ch.isspace() or unicodedata.category(ch)[0] in "PS"))


class SwitchMatcher:
    """A whole message asking for a language ("English please", "日本語で", "用中文", "بالعربية")."""

    MAX_CHARS = 48  # longer messages are questions, not switch requests

    def __init__(self, phrases: Mapping[str, str]) -> None:
        self.phrases = dict(phrases)

    def match(self, text: str) -> str | None:
        if not text or len(text) > self.MAX_CHARS:
            return None
        return self.phrases.get(normalize_phrase(text))


def _fail(source: Path | str, message: str) -> PackError:
    return PackError(f"{source}: {message}")


def _check_persona(spec: PackSpec, source: Path | str) -> None:
    persona, rules = spec.persona, spec.persona_rules
    if persona.presentation in rules.forbid_presentation:
        raise _fail(source, f"persona.presentation {persona.presentation!r} is not allowed in this market "
                            f"(persona_rules.forbid_presentation)")
    if persona.avatar_kind in rules.forbid_avatar_kinds:
        raise _fail(source, f"persona.avatar_kind {persona.avatar_kind!r} is not allowed in this market "
                            f"(persona_rules.forbid_avatar_kinds)")
    name = normalize_phrase(persona.bot_name)
    words = {normalize_phrase(w) for w in re.split(r"[\s\-_·・]+", persona.bot_name) if w}
    for forbidden in rules.forbid_names:
        key = normalize_phrase(forbidden)
        if key and (key == name or key in words):
            raise _fail(source, f"persona.bot_name {persona.bot_name!r} is on persona_rules.forbid_names "
                                f"({forbidden!r})")


def _check_placeholders(spec: PackSpec, source: Path | str) -> None:
    """Before the pack is built: building formats the rules."""
    for rule in spec.llm.rules:
        unknown = placeholders(rule) - _RULE_FIELDS
        if unknown:
            raise _fail(source, f"llm.rules: unknown placeholder {{{sorted(unknown)[0]}}} in {rule!r}; "
                                f"known: {', '.join(sorted(_RULE_FIELDS))}")
    unknown = placeholders(spec.llm.regenerate) - {"findings"} - PERSONA_FIELDS
    if unknown:
        raise _fail(source, f"llm.regenerate: unknown placeholder {{{sorted(unknown)[0]}}}")


def _check_texts(pack: Pack, source: Path | str) -> None:
    spec = pack.spec
    for where, text in (("disclaimers.health", spec.disclaimers.health), ("persona.tagline", spec.persona.tagline)):
        findings = pack.check(text)
        if findings:
            raise _fail(source, f"{where} fails the pack's own checks: {'; '.join(map(str, findings))}")
    for frame in spec.switch.frames:
        if placeholders(frame) != {"name"}:
            raise _fail(source, f"switch.frames: {frame!r} must contain {{name}} and nothing else")


@dataclass(slots=True)
class PackSet:
    """The packs of every configured locale."""

    packs: dict[str, Pack] = field(default_factory=dict)
    switches: SwitchMatcher = field(default_factory=lambda: SwitchMatcher({}))

    @classmethod
    def load(cls, folder: Path, locales: Iterable[str]) -> PackSet:
        locales = tuple(locales)
        packs: dict[str, Pack] = {}
        for locale in locales:
            path = folder / f"{locale}.yaml"
            if not path.exists():
                raise _fail(path, f"missing: locale {locale} is configured (shop.locales) but has no pack")
            packs[locale] = load_pack(path)
            if packs[locale].locale != locale:
                raise _fail(path, f"locale: says {packs[locale].locale!r}, the file name says {locale!r}")
        return cls(packs, build_switches(packs.values(), locales, folder))

    def get(self, locale: str) -> Pack | None:
        return self.packs.get(locale)

    @property
    def health_keywords(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for p in self.packs.values() for k in p.spec.health_keywords))


def load_pack(path: Path) -> Pack:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise _fail(path, f"cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise _fail(path, "expected a mapping at the top level")
    try:
        spec = PackSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise _fail(path, f"invalid pack: {problems}") from None
    if spec.register_ == "keigo" and spec.keigo is None:
        raise _fail(path, "register: keigo needs a keigo section (lexicon)")
    for entry in spec.keigo.lexicon if spec.keigo else ():
        try:
            re.compile(entry.casual)
        except re.error as exc:
            raise _fail(path, f"keigo.lexicon: {entry.casual!r} is not a valid pattern: {exc}") from None
    _check_persona(spec, path)
    _check_placeholders(spec, path)
    pack = Pack.build(spec, path)
    _check_texts(pack, path)
    return pack


def build_switches(packs: Iterable[Pack], locales: Iterable[str], source: Path | str) -> SwitchMatcher:
    """Every (frame, name) pair of every pack, normalized; a phrase meaning two languages is an error."""
    supported = set(locales)
    phrases: dict[str, str] = {}
    for pack in packs:
        for target, names in pack.spec.switch.names.items():
            if target not in supported:
                continue
            for name in names:
                for frame in pack.spec.switch.frames:
                    key = normalize_phrase(frame.format(name=name))
                    if phrases.setdefault(key, target) != target:
                        raise _fail(source, f"switch phrase {frame.format(name=name)!r} ({pack.locale}) asks for "
                                            f"both {phrases[key]} and {target}")
    return SwitchMatcher(phrases)
