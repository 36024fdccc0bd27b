"""Custom Rasa NLU components for kefu (loaded by nlu/config.yml).

This module runs inside the Rasa environment (.nlu-venv, Python 3.10); the hub
never imports it.  The scripts put `nlu/` on PYTHONPATH so that Rasa finds it
both when training and when serving a model.

KefuTokenizer
    JiebaTokenizer for one model that serves zh-CN, en, ja and ar.  Jieba cuts
    Chinese (and Japanese kanji) into words and keeps Latin/digit runs whole,
    but it yields kana and Arabic letters one character at a time.  This
    tokenizer glues such runs back together: a katakana run (キャンセル), a
    hiragana run (したいです) and an Arabic word (الطلب) become one token each,
    and whitespace tokens are dropped.  Chinese text is tokenized exactly as by
    JiebaTokenizer.  Each token's lemma (what the featurizers read) is NFKC-
    normalized and lower-cased; Arabic lemmas also unify alef/ta-marbuta/ya
    spellings and drop diacritics and the article (الطلب -> طلب).

EntityNormalizer
    Runs after RegexEntityExtractor and EntitySynonymMapper and turns entity
    values into the forms the hub's skills use:
      order_id    "W 2611340", "# w2611340"   -> "#W2611340"
      phone_tail  "1234"                       -> "1234"
      height_cm   "175cm", "1米75", "一米七五", 5'10"  -> 175 / 175 / 175 / 178 (int, cm)
      weight_kg   "130斤", "65kg", "一百四十斤", "160 lbs" -> 65 / 65 / 70 / 72.5 (kg)
      size        "xl" -> "XL"; shoe sizes stay numbers as written
      email       lower-cased
    The span (start/end) still points at the text as written.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.nlu.constants import ENTITIES
from rasa.shared.nlu.training_data.message import Message

logger = logging.getLogger(__name__)

_HIRAGANA, _KATAKANA, _ARABIC = "hira", "kata", "arab"


def _script(ch: str) -> Optional[str]:
    """The script class of a character whose runs are glued into one token."""
    o = ord(ch)
    if 0x3041 <= o <= 0x309F:
        return _HIRAGANA
    if 0x30A0 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
        return _KATAKANA
    if (
        0x0600 <= o <= 0x06FF
        or 0x0750 <= o <= 0x077F
        or 0x08A0 <= o <= 0x08FF
        or 0xFB50 <= o <= 0xFDFF
        or 0xFE70 <= o <= 0xFEFF
    ) and unicodedata.category(ch)[0] in "LM":  # letters and marks only: ، ؛ ؟ stay punctuation
        return _ARABIC
    return None


def _run_script(text: str) -> Optional[str]:
    scripts = {_script(c) for c in text}
    return scripts.pop() if len(scripts) == 1 else None


# Arabic spelling variants that shoppers mix freely: hamza forms of alef, ta
# marbuta / ha, alef maksura / ya; diacritics and tatweel dropped; the article
# (and its fused prepositions) stripped so that الطلب / طلب / والطلب share features.
_AR_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ة": "ه", "ى": "ي"})
_AR_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_AR_ARTICLE = re.compile("^(?:وال|بال|فال|كال|لل|ال)(?=..)")


def lemma(text: str) -> str:
    """The form the featurizers see (Token.lemma); the token text stays as written."""
    t = unicodedata.normalize("NFKC", text).lower()
    if any(_script(c) == _ARABIC for c in t):
        t = _AR_MARKS.sub("", t)
        t = _AR_ARTICLE.sub("", t).translate(_AR_LETTERS)
    return t


def _same_length_nfkc(text: str) -> str:
    """NFKC per character where it maps to one character (fullwidth ＡＢＣ１２３,
    halfwidth ｶﾅ), so that offsets into the original text stay valid."""
    out = []
    for ch in text:
        n = unicodedata.normalize("NFKC", ch)
        out.append(n if len(n) == 1 else ch)
    return "".join(out)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True
)
class KefuTokenizer(JiebaTokenizer):
    """Jieba for Chinese; whole words for kana runs and Arabic (see module doc)."""

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        return None  # one model for zh, en, ja, ar

    # Rasa reads these signatures to route graph inputs: keep them explicit.
    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "KefuTokenizer":
        _warm_up_jieba()
        return super().create(config, model_storage, resource, execution_context)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "KefuTokenizer":
        _warm_up_jieba()
        return super().load(config, model_storage, resource, execution_context, **kwargs)

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        import jieba

        text = message.get(attribute)
        tokens: List[Token] = []
        prev_script: Optional[str] = None
        for _, start, end in jieba.tokenize(_same_length_nfkc(text)):
            word = text[start:end]
            if not word.strip():
                prev_script = None
                continue
            script = _run_script(word)
            if (
                script is not None
                and script == prev_script
                and tokens
                and tokens[-1].end == start
            ):
                last = tokens[-1]
                merged = last.text + word
                tokens[-1] = Token(merged, last.start, lemma=lemma(merged))
            else:
                tokens.append(Token(word, start, lemma=lemma(word)))
            prev_script = script
        return self._apply_token_pattern(tokens)


_JIEBA_READY = False


def _warm_up_jieba() -> None:
    """Load jieba's dictionary now, not on the first parse (about 1 s)."""
    global _JIEBA_READY
    if _JIEBA_READY:
        return
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    _JIEBA_READY = True


# --- entity normalization ---------------------------------------------------

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
              "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def _cn_number(s: str) -> Optional[int]:
    """Small Chinese numerals: 九十 -> 90, 一百四十 -> 140, 一百零五 -> 105."""
    if not s:
        return None
    total, cur = 0, 0
    for ch in s:
        if ch in _CN_DIGITS:
            cur = _CN_DIGITS[ch]
        elif ch == "十":
            total += (cur or 1) * 10
            cur = 0
        elif ch == "百":
            total += (cur or 1) * 100
            cur = 0
        else:
            return None
    return total + cur


def _num(s: str) -> Optional[float]:
    s = unicodedata.normalize("NFKC", s)
    m = re.search(r"\d+(?:\.\d+)?", s)
    if m:
        return float(m.group())
    m = re.search(r"[零〇一二两三四五六七八九十百]+", s)
    if m:
        n = _cn_number(m.group())
        return float(n) if n is not None else None
    return None


def _tidy(x: float) -> Any:
    x = round(x * 2) / 2  # kg to the half, cm to the half
    return int(x) if x == int(x) else x


def normalize_height_cm(raw: str) -> Optional[Any]:
    s = unicodedata.normalize("NFKC", raw).strip().lower()
    m = re.match(r"^([4-7])\s*(?:'|ft|feet|foot)\s*(\d{1,2})?", s)
    if m:  # 5'10", 6 foot
        inches = int(m.group(1)) * 12 + int(m.group(2) or 0)
        return round(inches * 2.54)
    m = re.match(r"^1\s*[米.]\s*(\d{1,2})", s)
    if m:  # 1米75, 1.8m
        frac = m.group(1)
        return 100 + int(frac.ljust(2, "0"))
    m = re.match(r"^一米([一二三四五六七八九])([一二三四五六七八九]?)", s)
    if m:  # 一米七五, 一米八
        return 100 + _CN_DIGITS[m.group(1)] * 10 + (_CN_DIGITS.get(m.group(2), 0))
    n = _num(s)
    if n is None:
        return None
    if "m" in s and "cm" not in s and n < 3:
        n *= 100
    return _tidy(n)


def normalize_weight_kg(raw: str) -> Optional[Any]:
    s = unicodedata.normalize("NFKC", raw).strip().lower()
    n = _num(s)
    if n is None:
        return None
    if "公斤" in s or "千克" in s:
        pass
    elif "斤" in s:  # 1 斤 = 0.5 kg
        n /= 2
    elif re.search(r"lbs?|pounds?", s):
        n *= 0.45359237
    return _tidy(n)


def normalize_order_id(raw: str) -> Optional[str]:
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", raw))
    return f"#W{digits}" if len(digits) == 7 else None


def normalize_size(raw: str) -> str:
    s = unicodedata.normalize("NFKC", raw).strip()
    return s.upper() if re.fullmatch(r"[a-zA-Z0-9]+", s) else s


_NORMALIZERS = {
    "order_id": normalize_order_id,
    "phone_tail": lambda raw: re.sub(r"\D", "", unicodedata.normalize("NFKC", raw)),
    "height_cm": normalize_height_cm,
    "weight_kg": normalize_weight_kg,
    "size": normalize_size,
    "email": lambda raw: raw.strip().lower(),
}


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False
)
class EntityNormalizer(GraphComponent):
    """Normalizes entity values; drops duplicate and contained spans."""

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "EntityNormalizer":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            entities = message.get(ENTITIES) or []
            if entities:
                message.set(ENTITIES, self._normalize(entities), add_to_output=True)
        return messages

    @staticmethod
    def _normalize(entities: List[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
        out: List[Dict[Text, Any]] = []
        # longest span first, so that "蓝牙耳机" wins over the "耳机" inside it
        for ent in sorted(entities, key=lambda e: (e["start"] - e["end"], e["start"])):
            if any(
                o["entity"] == ent["entity"]
                and o["start"] <= ent["start"]
                and ent["end"] <= o["end"]
                for o in out
            ):
                continue
            fn = _NORMALIZERS.get(ent["entity"])
            if fn is not None:
                value = fn(str(ent["value"]))
                if value is None or value == "":
                    continue
                if value != ent["value"]:
                    ent = dict(ent)
                    ent["value"] = value
                    ent.setdefault("processors", []).append("EntityNormalizer")
            out.append(ent)
        out.sort(key=lambda e: e["start"])
        return out
