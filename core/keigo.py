"""Japanese register: replies in です/ます form with a keigo lexicon.

`KeigoChecker.check(text)` flags, in any Japanese reply (catalog text, a template, LLM output):

- plain-form sentence endings: a sentence that ends in a dictionary-form verb (する, ある), a plain
  past (した, だった), the copula だ, a plain negative or adjective (ない, いい), a te-form request
  (待って) or a casual particle (よ, ね, じゃん) instead of です/ます (or ください, ございます, ...);
  sentences that end in a noun (体言止め: "発送準備中", "商品：T-Shirt") are fine;
- casual words from the pack's lexicon (ちょっと, ごめん, わかりました, ありがとう without ございます ...).

`KeigoChecker.rewrite(text)` fixes what a lexicon can: casual words to their keigo form and the
common plain endings (だ -> です, だった -> でした, ある -> ございます, した -> いたしました ...).
What a rewrite cannot fix (a plain verb in the middle of a longer thought) is left for the caller:
the engine regenerates an LLM answer once with a stricter instruction (see core.shaping).

Patterns are compiled once, when the pack is loaded; a check is a couple of regex passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem a pack check found in a text (any locale, any check)."""

    kind: str  # plain_form, casual_word, never_use, persona
    excerpt: str  # the offending words (or the sentence's end)
    instead: str = ""  # what to say instead, when known

    def __str__(self) -> str:
        return f"{self.kind}: {self.excerpt}" + (f" -> {self.instead}" if self.instead else "")


@dataclass(frozen=True, slots=True)
class LexiconEntry:
    """A casual expression and its keigo form; `pattern` is a regular expression."""

    pattern: str
    keigo: str


_TERMINATORS = "。！？!?\n"
_SENTENCE = re.compile(rf"[^{_TERMINATORS}]+")
# What may follow the last word of a sentence: closing brackets, spaces, ellipses, emoji, tildes.
_TRAILING = re.compile(r"[\s\u3000」』）)】〕\]…‥・~〜～♪☆★\u2600-\u27bf\U0001f300-\U0001faff\ufe0f.,，、:：]+$")

_POLITE_END = re.compile(
    r"(?:ます|ました|ません|ませんでした|ましょう|ませ|まして|です|でした|でしょう|ございます|ございました"
    r"|ございません|ください|下さい|くださいませ)"
    r"(?:か|ね|よ|よね|が|けれども|けれど|けど|ので|から|し|のに)?$"
)
# After the polite endings are ruled out: hiragana that end a sentence only in plain or casual speech.
_PLAIN_END = re.compile(
    r"(?:[うくすつぬふむゆるぐぶ]|[いた]|だ|よ|ね|な|ぞ|ぜ|わ|さ|か|の|て|で|じゃん|っす|っ)$"
)

# Plain endings a rewrite can turn polite without knowing the verb: (pattern at a sentence end, polite form).
_ENDING_REWRITES: tuple[tuple[str, str], ...] = (
    (r"ではない|じゃない|じゃありません|じゃないです", "ではございません"),
    (r"だよね|だね", "ですね"),
    (r"だよ|だ", "です"),
    (r"だった", "でした"),
    (r"だろう", "でしょう"),
    (r"である", "でございます"),
    (r"(?<=[がはも])ない", "ございません"),
    (r"(?<=[がはも])ある", "ございます"),
    (r"ている", "ております"),
    (r"(?<=[^いまで])した", "いたしました"),  # not the polite ました / でした
    (r"(?<=[^い])する", "いたします"),
    (r"できる", "できます"),
    (r"なる", "なります"),
)


class KeigoChecker:
    def __init__(self, lexicon: Iterable[LexiconEntry], allowed_endings: Iterable[str] = ()) -> None:
        self.lexicon = tuple(lexicon)
        self._entries = tuple((re.compile(e.pattern), e.keigo) for e in self.lexicon)
        self._any_casual = re.compile("|".join(f"(?:{e.pattern})" for e in self.lexicon)) if self.lexicon else None
        self._allowed = tuple(allowed_endings)
        end = rf"(?=[{_TERMINATORS}]|[\s」』）)]*$)"
        self._endings = tuple((re.compile(f"(?:{pattern}){end}"), polite) for pattern, polite in _ENDING_REWRITES)

    def check(self, text: str) -> list[Finding]:
        findings: list[Finding] = []
        if self._any_casual is not None and self._any_casual.search(text):
            for pattern, keigo in self._entries:
                findings.extend(Finding("casual_word", m.group(0), keigo) for m in pattern.finditer(text))
        for match in _SENTENCE.finditer(text):
            sentence = _TRAILING.sub("", match.group(0))
            if not sentence or _POLITE_END.search(sentence) or sentence.endswith(self._allowed):
                continue
            if _PLAIN_END.search(sentence):
                findings.append(Finding("plain_form", sentence[-12:], "です/ます"))
        return findings

    def rewrite(self, text: str) -> str:
        """Casual words to keigo, and the plain endings a lexicon can fix; the rest is left as it is."""
        for pattern, keigo in self._entries:
            text = pattern.sub(keigo, text)
        for pattern, polite in self._endings:
            text = pattern.sub(polite, text)
        return text
