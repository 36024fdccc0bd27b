"""Negative emotion in a shopper's words: a small lexicon with intensities, in zh-CN, en, ja and ar.

`read_emotion(text)` gives an intensity in [0, 1] and the words that carried it. It is a signal for
escalation and for the agent queue's priority, not sentiment analysis: only clearly negative words
count, and a negated one ("不差", "not bad", "ひどくない", "ليس سيئا") does not.

Negation is handled per script:
  zh   a negator (不, 没, 别 ...) in the few characters before the word ("不是很差", "不给差评");
  en   a negator among the three words before it, within the clause ("not bad", "wasn't that terrible");
  ja   Japanese negates after the word: i-adjectives change form ("ひどくない" never matches "ひどい"),
       nouns take ではない / じゃない, which is checked after the match ("最悪じゃない");
  ar   a negator (ليس, لا, غير, مش, مو, ما) among the two words before it.
Intensifiers (太, very, 本当に, جدا ...) and repeated "!" raise the intensity a little.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# fmt: off
# word -> intensity (0..1). Compounds rather than bare characters where a character is also neutral
# ("差" alone is in 差不多 and 出差; "坑" in 坑位).
_ZH = {
    "差评": 0.8, "投诉": 0.7, "垃圾": 0.9, "骗子": 0.9, "欺诈": 0.9, "骗人": 0.8, "太差": 0.7, "很差": 0.6,
    "真差": 0.6, "好差": 0.6, "差劲": 0.7, "质量差": 0.6, "服务差": 0.7, "态度差": 0.7, "生气": 0.6,
    "愤怒": 0.8, "气死": 0.9, "失望": 0.5, "恶心": 0.7, "无语": 0.4, "忍无可忍": 0.9, "糟糕": 0.6,
    "烂透": 0.8, "坑人": 0.7, "黑店": 0.9, "不满意": 0.5, "什么破": 0.7, "破玩意": 0.8, "太慢了": 0.5,
    "非常差": 0.7, "特别差": 0.7, "超差": 0.7, "极差": 0.8,
}
_EN = {
    "terrible": 0.8, "awful": 0.8, "horrible": 0.8, "worst": 0.8, "bad": 0.4, "scam": 0.9, "fraud": 0.9,
    "rubbish": 0.7, "garbage": 0.8, "useless": 0.6, "angry": 0.6, "furious": 0.9, "disappointed": 0.5,
    "disappointing": 0.5, "ridiculous": 0.6, "unacceptable": 0.7, "complaint": 0.6, "complain": 0.6,
    "hate": 0.7, "wtf": 0.8, "sucks": 0.6, "pathetic": 0.7, "disgusting": 0.8, "unhappy": 0.5,
    "annoyed": 0.5, "fed up": 0.7, "rip-off": 0.8, "ripoff": 0.8,
}
_JA = {
    "ふざけるな": 0.9, "ふざけんな": 0.9, "ひどい": 0.7, "酷い": 0.7, "最悪": 0.8, "最低": 0.8, "詐欺": 0.9,
    "腹が立": 0.7, "腹立たしい": 0.7, "怒って": 0.6, "がっかり": 0.5, "許せない": 0.8, "クレーム": 0.6,
    "苦情": 0.6, "ゴミ": 0.8, "不満": 0.5, "いい加減にして": 0.8, "遅すぎ": 0.5, "ありえない": 0.6,
    "あり得ない": 0.6, "悪い": 0.4,
}
_AR_WORDS = {  # folded (fold_arabic) before use, so write them in their usual spelling
    "سيء جدا": 0.8, "سيء": 0.5, "سيئة": 0.5, "فظيع": 0.8, "نصاب": 0.9, "احتيال": 0.9, "غاضب": 0.7, "زفت": 0.8,
    "أسوأ": 0.8, "مقرف": 0.7, "شكوى": 0.6, "محبط": 0.5, "لا يطاق": 0.8, "غير مقبول": 0.7,
}

_ZH_NEGATORS = ("不", "没", "沒", "别", "无", "無", "未", "并非")
_ZH_NOT_NEGATING = ("无比", "不要太")  # look like negators, intensify instead
_EN_NEGATORS = frozenset({"not", "no", "never", "hardly", "isn't", "wasn't", "aren't", "weren't", "don't",
                          "doesn't", "didn't", "isnt", "wasnt", "dont", "doesnt", "didnt", "nothing", "nor",
                          "ain't", "without"})
_JA_NEGATED_AFTER = re.compile(r"^(?:では|じゃ)?(?:ない|なかった|ありません|ございません|いない|いません)")
_AR_NEGATORS = frozenset({"ليس", "ليست", "لست", "لا", "غير", "مش", "مو", "لم"})

_INTENSIFIERS = re.compile(r"太|非常|特别|真的|超级|极其|本当に|とても|マジで|すごく|جدا|للغاية"
                           r"|\b(?:very|so|really|extremely|totally)\b", re.I)
# fmt: on

_AR_WORD = re.compile(r"[\u0600-\u06ff]+")
_EN_WORD = re.compile(r"[a-z]+(?:['’-][a-z]+)?")
_AR_DIACRITICS = re.compile(r"[\u0617-\u061a\u064b-\u0652\u0670\u0640]")
_AR_FOLD = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ئ": "ء", "ؤ": "ء", "ى": "ي", "ة": "ه"})
_CLAUSE_BREAK = re.compile(r"[,.;!?，。；！？、]")

INTENSIFIER_BOOST = 0.15
EXCLAMATION_BOOST = 0.1
EXTRA_WORD_BOOST = 0.1


@dataclass(frozen=True, slots=True)
class Emotion:
    intensity: float = 0.0  # 0: nothing negative; 1: as angry as the lexicon can tell
    words: tuple[str, ...] = ()

    @property
    def negative(self) -> bool:
        return self.intensity > 0


CALM = Emotion()


def fold_arabic(text: str) -> str:
    """One spelling for the hamza and alef variants, no diacritics or tatweel: سيئا and سيّء both contain سيء."""
    return _AR_DIACRITICS.sub("", text).translate(_AR_FOLD)


_AR = {fold_arabic(word): value for word, value in _AR_WORDS.items()}


def _alternation(words: dict[str, float]) -> re.Pattern[str]:
    # Longest first, so the alternation prefers "差评" to a shorter word at the same position.
    return re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))


_ZH_RE, _JA_RE, _AR_RE = _alternation(_ZH), _alternation(_JA), _alternation(_AR)
_EN_RE = re.compile(r"(?<![a-z])(?:" + _alternation(_EN).pattern + r")(?![a-z])")
Hit = tuple[str, float, int, int]  # word, intensity, start, end


def _matches(text: str, pattern: re.Pattern[str], lexicon: dict[str, float]) -> list[Hit]:
    return [(m.group(), lexicon[m.group()], m.start(), m.end()) for m in pattern.finditer(text)]


def _zh_negated(text: str, start: int) -> bool:
    clause = _CLAUSE_BREAK.split(text[max(0, start - 4):start])[-1]
    for word in _ZH_NOT_NEGATING:
        clause = clause.replace(word, "")
    return any(neg in clause for neg in _ZH_NEGATORS)


def _words_before(text: str, start: int, pattern: re.Pattern[str], n: int) -> list[str]:
    clause = _CLAUSE_BREAK.split(text[:start])[-1]
    return pattern.findall(clause)[-n:]


def _en_negated(lower: str, start: int) -> bool:
    return any(w in _EN_NEGATORS or w.endswith("n't") for w in _words_before(lower, start, _EN_WORD, 3))


def read_emotion(text: str) -> Emotion:
    if not text:
        return CALM
    lower = text.lower()
    hits: list[Hit] = [h for h in _matches(text, _ZH_RE, _ZH) if not _zh_negated(text, h[2])]
    hits += [h for h in _matches(lower, _EN_RE, _EN) if not _en_negated(lower, h[2])]
    hits += [h for h in _matches(text, _JA_RE, _JA) if not _JA_NEGATED_AFTER.match(text[h[3]:])]
    arabic = fold_arabic(text)
    hits += [h for h in _matches(arabic, _AR_RE, _AR)
             if not _AR_NEGATORS.intersection(_words_before(arabic, h[2], _AR_WORD, 2))]
    if not hits:
        return CALM
    intensity = max(h[1] for h in hits) + EXTRA_WORD_BOOST * (len(hits) - 1)
    if _INTENSIFIERS.search(text):
        intensity += INTENSIFIER_BOOST
    if text.count("!") + text.count("！") >= 2:
        intensity += EXCLAMATION_BOOST
    return Emotion(round(min(1.0, intensity), 2), tuple(sorted({h[0] for h in hits})))
