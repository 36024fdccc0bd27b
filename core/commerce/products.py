"""Product knowledge of our own: the names shoppers use for a product, and its facts (ingredients, usage,
specs, care) in their language, from core/data/products.yaml.

The demo store knows a product's name, variants and prices only; what shoppers ask beyond that ("what's in
the sunscreen?", "how do I descale the coffee maker?") is answered from here, by the product questions
skill and, through `facts_for`, by the LLM as a tool. The same names let a shopper find their orders by
what they bought ("where are my running shoes?", "我买的跑鞋到哪了") and name products for recommendations.
Health products (supplements) are marked: whoever shows their facts adds the locale's health disclaimer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from core.config import PROJECT_ROOT

BUNDLED = PROJECT_ROOT / "core" / "data" / "products.yaml"
FALLBACK_LOCALE = "en"
KINDS = ("ingredients", "usage", "specs", "care", "safety")

# Which facts a question asks for; none of these words: every fact of the product.
_ASKED_KINDS = {
    "ingredients": re.compile(r"成分|配料|含有|含什么|ingredient|contain|what'?s in|成分|原材料|مكونات|يحتوي", re.I),
    "usage": re.compile(r"怎么用|用法|使用方法|如何使用|怎么吃|用量|how (?:do i |to )?use|how often|dose|使い方|飲み方|"
                        r"طريقة الاستخدام|كيف أستخدم", re.I),
    "specs": re.compile(r"规格|参数|尺寸|容量|spec|dimension|capacity|スペック|仕様|مواصفات", re.I),
    "care": re.compile(r"清洗|保养|清洁|洗涤|clean|wash|care|descale|お手入れ|洗濯|تنظيف|عناية", re.I),
    "safety": re.compile(r"安全|注意|safe|safety|注意事項|安全|أمان", re.I),
}


@dataclass(frozen=True, slots=True)
class Fact:
    """One fact about one product, in one language (what `facts_for` returns)."""

    product: str  # the product's name in the store (English), or ours
    kind: str  # ingredients | usage | specs | care | safety
    text: str
    locale: str  # the language of `text` (the fallback, en, when the asked one has none)
    health: bool  # a health product: show it with the locale's health disclaimer
    product_id: str | None = None  # set for our own products (the demo store's are found by name)


@dataclass(frozen=True, slots=True)
class ProductInfo:
    name: str
    names: Mapping[str, tuple[str, ...]]  # locale -> what shoppers call it
    aliases: tuple[str, ...]  # other words for it, in any language (matched, never shown)
    facts: tuple[tuple[str, Mapping[str, str]], ...]  # (kind, locale -> text)
    health: bool = False
    product_id: str | None = None  # our own products only
    price: float | None = None

    def local_name(self, locale: str) -> str:
        """The first local name, else the store's name."""
        names = self.names.get(locale) or ()
        return names[0] if names else self.name

    def facts_in(self, locale: str, kinds: frozenset[str] | None = None) -> list[Fact]:
        chosen = [(kind, texts) for kind, texts in self.facts if kinds is None or kind in kinds]
        if kinds is not None and not chosen:  # nothing of the asked kind: everything we know
            chosen = list(self.facts)
        out = []
        for kind, texts in chosen:
            lang = locale if texts.get(locale) else FALLBACK_LOCALE
            out.append(Fact(self.name, kind, texts[lang], lang, self.health, self.product_id))
        return out


def arabic_definite_forms(name: str) -> tuple[str, ...]:
    """The forms with the article ال that shoppers write for an Arabic product name: on the last word
    (noun and noun: "مصباح مكتب", a desk lamp, as "مصباح المكتب") and on every word (noun and adjective:
    "حذاء رياضي" as "الحذاء الرياضي"); a one-word name takes it once. None for a name that has it already."""
    words = name.split()
    if not words or any(w.startswith("ال") for w in words):
        return ()
    last = [*words[:-1], "ال" + words[-1]]
    every = ["ال" + w for w in words]
    return tuple(dict.fromkeys((" ".join(last), " ".join(every))))


class ProductKnowledge:
    def __init__(self, products: list[ProductInfo], option_names: Mapping[str, Mapping[str, str]],
                 not_product_words: Iterable[str] = ()) -> None:
        self.products = {p.name: p for p in products}
        self.option_names = option_names
        # Longest first, so 手机号码 is blanked whole; None when there are none.
        blanks = sorted(set(not_product_words), key=len, reverse=True)
        self._not_products = re.compile("|".join(map(re.escape, blanks)), re.I) if blanks else None
        words: dict[str, str] = {}  # casefolded word -> product name
        for product in products:
            arabic = (form for name in product.names.get("ar", ()) for form in arabic_definite_forms(name))
            for word in (product.name, *(w for names in product.names.values() for w in names), *product.aliases,
                         *arabic):
                words.setdefault(word.casefold(), product.name)
        self._words = words
        latin = sorted((w for w in words if re.search(r"[a-z]", w)), key=len, reverse=True)
        other = sorted((w for w in words if w not in set(latin)), key=len, reverse=True)
        parts = []
        if latin:  # whole words, plural allowed ("running shoes", "t-shirts", "laptops")
            parts.append(r"(?<![a-z])(?:" + "|".join(map(re.escape, latin)) + r")(?:e?s)?(?![a-z])")
        if other:
            parts.append("|".join(map(re.escape, other)))
        self._pattern = re.compile("|".join(f"(?:{p})" for p in parts), re.I)

    @classmethod
    def load(cls, path: Path = BUNDLED) -> ProductKnowledge:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        products = [_product(entry) for entry in data.get("products") or ()]
        return cls(products, {str(k): dict(v) for k, v in (data.get("option_names") or {}).items()},
                   [str(w) for w in data.get("not_product_words") or ()])

    def find(self, text: str) -> list[ProductInfo]:
        """The products named in `text`, in order of mention, each once (the longest name wins); a name inside one of
        the not-product words (手机号: a phone number) does not count."""
        if self._not_products is not None:
            text = self._not_products.sub(lambda m: " " * len(m.group(0)), text)
        found: list[ProductInfo] = []
        for match in self._pattern.finditer(text):
            word = match.group(0).casefold()
            name = self._words.get(word) or self._words.get(re.sub(r"e?s$", "", word)) or self._words.get(word[:-1])
            product = self.products.get(name or "")
            if product is not None and product not in found:
                found.append(product)
        return found

    def get(self, name: str) -> ProductInfo | None:
        return self.products.get(name)

    def local_name(self, name: str, locale: str) -> str:
        product = self.products.get(name)
        return product.local_name(locale) if product else name

    def option_name(self, option: str, locale: str) -> str:
        return (self.option_names.get(option) or {}).get(locale) or option

    def facts_for(self, text: str, locale: str) -> list[Fact]:
        kinds = frozenset(kind for kind, pattern in _ASKED_KINDS.items() if pattern.search(text)) or None
        return [fact for product in self.find(text) for fact in product.facts_in(locale, kinds)]


def _product(entry: Mapping[str, Any]) -> ProductInfo:
    names = {str(loc): tuple(str(n) for n in (v if isinstance(v, list) else [v]))
             for loc, v in (entry.get("names") or {}).items()}
    aliases = tuple(str(a) for a in entry.get("aliases") or ())
    facts = []
    for fact in entry.get("facts") or ():
        kind = str(fact["kind"])
        if kind not in KINDS:
            raise ValueError(f"{entry['name']}: unknown fact kind {kind!r}")
        texts = {str(k): str(v) for k, v in fact.items() if k != "kind"}
        if FALLBACK_LOCALE not in texts:
            raise ValueError(f"{entry['name']}: every fact needs an {FALLBACK_LOCALE} text")
        facts.append((kind, texts))
    price = entry.get("price")
    return ProductInfo(str(entry["name"]), names, aliases, tuple(facts), bool(entry.get("health")),
                       entry.get("product_id"), float(price) if price is not None else None)


@cache
def knowledge(path: Path = BUNDLED) -> ProductKnowledge:
    """The product knowledge in `path`, read once per process."""
    return ProductKnowledge.load(path)


def facts_for(text: str, locale: str) -> list[Fact]:
    """Product facts for a shopper's question: the products it names, and the facts of the kind it asks about.

    `text` is the question in any of the shop's languages ("防晒霜的成分是什么", "how do I clean the yoga
    mat?"); products are found by the names shoppers use, and when the question asks for a kind of fact
    (ingredients, usage, specs, care, safety) only facts of that kind are given, else all of them. `locale` is
    the language wanted ("zh-CN", "en", "ja", "ar"); a fact not written in it comes in English (`Fact.locale`
    says which). Facts with `health=True` must be shown with the locale's health disclaimer. Empty when the
    question names no product we know.
    """
    return knowledge().facts_for(text, locale)
