"""The NLU training data and its held-out split keep the rules of issue 4 (read as files: no Rasa needed).

Only counts and set sizes are compared here: a failing check names intents, not held-out texts.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from core.commerce.products import ProductKnowledge
from core.config import PROJECT_ROOT
from scripts.eval_nlu import read_examples

NLU = PROJECT_ROOT / "nlu"
LANGS = ("zh", "en", "ja", "ar")


def load_business_names() -> ModuleType:
    """nlu/kefu_business_names.py, which the Rasa gate also uses (nlu/ is not a package of the hub)."""
    spec = importlib.util.spec_from_file_location("kefu_business_names", NLU / "kefu_business_names.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


business_names = load_business_names()
# Catalog names left out of the product lookup: it matches inside words (use_word_boundaries: false), and
# these would name a product in 手机号 (phone number), 分钟 (minutes), ペットボトル (PET bottle) and the like.
TOO_SHORT_FOR_THE_LOOKUP = {"手机", "电脑", "钟", "防晒", "化妆品", "ボトル", "جوال", "قميص", "أثقال"}


def texts(path: Path) -> set[str]:
    """The texts the model sees (markup off, as eval_nlu reads them), case and runs of spaces folded."""
    return {" ".join(text.casefold().split()) for _, text, _ in read_examples(path)}


def per_intent(path: Path) -> Counter[str]:
    return Counter(intent for intent, _, _ in read_examples(path))


def intents() -> list[str]:
    return list(yaml.safe_load((NLU / "domain.yml").read_text(encoding="utf-8"))["intents"])


@pytest.mark.parametrize("lang", LANGS)
def test_no_training_example_is_a_held_out_one(lang: str) -> None:
    assert len(texts(NLU / "data" / lang / "nlu.yml") & texts(NLU / "tests" / lang / "nlu.yml")) == 0


@pytest.mark.parametrize("lang", LANGS)
def test_every_intent_has_its_training_examples_and_a_fifth_held_out(lang: str) -> None:
    train, held_out = per_intent(NLU / "data" / lang / "nlu.yml"), per_intent(NLU / "tests" / lang / "nlu.yml")
    least = 40 if lang == "zh" else 20
    assert {i for i in intents() if train[i] < least} == set()

    def share_held_out(intent: str) -> float:
        kept, trained = held_out[intent], train[intent]
        return kept / (kept + trained) if kept + trained else 0.0

    assert {i for i in intents() if share_held_out(i) < 0.2} == set()


def entity_blocks() -> list[dict]:
    return yaml.safe_load((NLU / "data" / "entities.yml").read_text(encoding="utf-8"))["nlu"]


def listed(kind: str, name: str) -> list[str]:
    """The lines of one regex or lookup in entities.yml."""
    return [line[2:].strip() for b in entity_blocks() if b.get(kind) == name
            for line in b["examples"].splitlines() if line.startswith("- ")]


def test_the_product_lookup_knows_the_catalog_and_maps_it_to_the_catalog_name() -> None:
    blocks = entity_blocks()
    lookup = {name.casefold() for name in listed("lookup", "product")}
    synonym_of = {line[2:].strip().casefold(): b["synonym"] for b in blocks if "synonym" in b
                  for line in b["examples"].splitlines() if line.startswith("- ")}
    missing, mapped_wrong = [], []
    for product in ProductKnowledge.load().products.values():
        for name in (product.name, *(n for names in product.names.values() for n in names), *product.aliases):
            if name in TOO_SHORT_FOR_THE_LOOKUP:
                continue
            if name.casefold() not in lookup:
                missing.append(name)
            elif name.casefold() != product.name.casefold() and synonym_of.get(name.casefold()) != product.name:
                mapped_wrong.append(name)
    assert missing == [] and mapped_wrong == []


@pytest.mark.parametrize("lang", LANGS)
def test_no_in_scope_training_text_names_another_business(lang: str) -> None:
    """nlu/kefu_scope.py ranks out_of_scope first for a text that names another business or a service the
    shop does not sell; a name that also occurs in our own requests (طلبات is "orders") must not be listed."""
    names = [re.compile(p, re.IGNORECASE) for p in listed("regex", "other_business")]
    names.append(re.compile("|".join(map(re.escape, listed("lookup", "other_business"))), re.IGNORECASE))
    naming = Counter(intent for intent, text, _ in read_examples(NLU / "data" / lang / "nlu.yml")
                     if business_names.names_another_business(text, names))
    assert naming["out_of_scope"] >= 30 and set(naming) == {"out_of_scope"}
