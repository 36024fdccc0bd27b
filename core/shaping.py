"""Step 9 of the turn: a reply made to sound right with its locale pack (core.packs).

- words never to use are replaced (or only flagged, when the pack gives no replacement);
- ja replies are polished to です/ます form with the keigo lexicon (core.keigo);
- the health-product disclaimer is added once when the reply or the question concerns a health
  product (any pack's `health_keywords`: a question in English on a Japanese chat still counts).

LLM answers go through the same pack: streamed answers through `StreamPolisher` (words are replaced
before a delta leaves the hub), checked answers whole (`LlmCheck`, used by the engine's llm path:
polish, else regenerate once, else a safe catalog sentence).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.message import Reply
from core.packs import Finding, Pack, PackSet

__all__ = ["LlmCheck", "Shaper", "StreamPolisher"]

_LATIN_WORD_CHAR = re.compile(r"[A-Za-z0-9]")


def _trie(words: Iterable[str]) -> str:
    """One regular expression for a set of words, as a trie: a text position tries one branch per
    character instead of every word (a flat alternation of 50 keywords cost 8 us per check)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # a word ends here

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        inner = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{inner})?" if "" in node else inner  # greedy: the longest word first, then shorter ones

    return emit(root)


class KeywordSearch:
    """Whether a text holds any of some keywords: Latin ones as whole words ("vitamin" not in "vitamins"
    unless listed), others anywhere, case-insensitively.

    Two patterns over the casefolded text: one case-insensitive pattern with its look-behind cost 20 us
    on a 150-character reply, these two 3 us (every reply of every turn is checked).
    """

    def __init__(self, words: Iterable[str]) -> None:
        folded = {w.casefold() for w in words}
        latin = {w for w in folded if re.search(r"[a-z]", w)}
        self._latin = re.compile(rf"(?<![a-z]){_trie(latin)}(?![a-z])") if latin else None
        self._other = re.compile(_trie(folded - latin)) if folded - latin else None

    def __bool__(self) -> bool:
        return self._latin is not None or self._other is not None

    def search(self, text: str) -> bool:
        folded = text.casefold()
        return bool((self._other is not None and self._other.search(folded))
                    or (self._latin is not None and self._latin.search(folded)))


class Shaper:
    """Built once from the configured packs; `shape_text` and `needs_disclaimer` are pure and cheap."""

    def __init__(self, packs: PackSet) -> None:
        self.packs = packs
        self._health = KeywordSearch(packs.health_keywords)

    def concerns_health(self, *texts: str) -> bool:
        return bool(self._health) and any(self._health.search(t) for t in texts if t)

    @staticmethod
    def shape_text(pack: Pack, text: str) -> str:
        """Never-use words replaced and, in ja, casual words and plain endings polished."""
        return pack.polish(text) if text else text

    def needs_disclaimer(self, pack: Pack, reply_text: str, question: str) -> bool:
        return pack.health_disclaimer not in reply_text and self.concerns_health(reply_text, question)

    @staticmethod
    def with_disclaimer(pack: Pack, text: str) -> str:
        return f"{text}\n\n{pack.health_disclaimer}" if text else pack.health_disclaimer

    def shape(self, pack: Pack, replies: list[Reply], question: str) -> list[Reply]:
        """A turn's replies with the pack applied (in place); LLM streams are shaped as they are produced."""
        for reply in replies:
            if reply.text:
                reply.text = self.shape_text(pack, reply.text)
        if any(r.stream is not None for r in replies):
            return replies
        last = next((r for r in reversed(replies) if r.text), None)
        if last is not None and self.needs_disclaimer(pack, "\n".join(r.text for r in replies), question):
            last.text = self.with_disclaimer(pack, last.text)
        return replies


@dataclass(slots=True)
class StreamPolisher:
    """Never-use words replaced in a stream of deltas, without waiting for the whole answer.

    It holds back the last `max_term_chars - 1` characters (a term may be cut between two deltas)
    and never cuts inside a Latin word, so whole-word matching sees what it would in the full text.
    """

    pack: Pack
    _held: str = ""
    text: str = field(default="")  # everything emitted so far

    def feed(self, delta: str) -> str:
        buffer = self._held + delta
        keep = max(self.pack.max_term_chars - 1, 0)
        if keep == 0:
            return self._emit(buffer, "")
        cut = max(len(buffer) - keep, 0)
        while 0 < cut < len(buffer) and _LATIN_WORD_CHAR.match(buffer[cut - 1]) and _LATIN_WORD_CHAR.match(buffer[cut]):
            cut -= 1
        for start, end in self.pack.term_spans(buffer):  # a term that a cut would split goes out whole, later
            if start < cut < end:
                cut = start
        return self._emit(buffer[:cut], buffer[cut:])

    def flush(self) -> str:
        return self._emit(self._held, "")

    def _emit(self, ready: str, held: str) -> str:
        self._held = held
        out = self.pack.replace_terms(ready) if ready else ""
        self.text += out
        return out


@dataclass(frozen=True, slots=True)
class LlmCheck:
    """The outcome of checking a whole LLM answer with its pack."""

    text: str
    findings: tuple[Finding, ...]  # what the first answer had (empty: clean as it came)
    action: str  # "clean", "polished", "regenerate" (still flagged after polish)

    @classmethod
    def of(cls, pack: Pack, answer: str) -> LlmCheck:
        findings = tuple(pack.check(answer))
        if not findings:
            return cls(answer, (), "clean")
        polished = pack.polish(answer)
        if not pack.check(polished):
            return cls(polished, findings, "polished")
        return cls(polished, findings, "regenerate")
