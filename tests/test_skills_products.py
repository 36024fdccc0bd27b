"""Product questions: `facts_for` (also the LLM's tool) finds the product and the kind of fact asked about; the
skill answers through the web chat API in zh-CN and en, and health products always carry the disclaimer."""

from __future__ import annotations

import orjson
import pytest
import yaml
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.commerce.products import BUNDLED, facts_for, knowledge
from core.config import PROJECT_ROOT
from tests.conftest import SHARED_DATA, say

DEMO_DB = orjson.loads((SHARED_DATA / "retail" / "db.json").read_bytes())
DEMO_PRODUCTS = {p["name"] for p in DEMO_DB["products"].values()}
ZH_DISCLAIMER = yaml.safe_load((PROJECT_ROOT / "locales" / "packs" / "zh-CN.yaml").read_text())["disclaimers"]["health"]
EN_DISCLAIMER = yaml.safe_load((PROJECT_ROOT / "locales" / "packs" / "en.yaml").read_text())["disclaimers"]["health"]


def test_the_knowledge_covers_every_demo_product_in_zh_and_en() -> None:
    kb = knowledge(BUNDLED)
    assert set(kb.products) >= DEMO_PRODUCTS
    for product in kb.products.values():
        assert product.facts, product.name
        assert product.names.get("zh-CN"), product.name
        assert all("zh-CN" in texts and "en" in texts for _kind, texts in product.facts), product.name
    own = [p for p in kb.products.values() if p.product_id]
    assert {p.name for p in own if p.health} == {"Vitamin C Tablets", "Fish Oil Softgels", "Collagen Drink"}


@pytest.mark.parametrize(("question", "locale", "product", "kinds"), [
    ("防晒霜的成分是什么", "zh-CN", "Sunscreen SPF50+", ["ingredients"]),
    ("what's in the fish oil?", "en", "Fish Oil Softgels", ["ingredients"]),
    ("how do I clean my yoga mat?", "en", "Yoga Mat", ["care"]),
    ("维生素C怎么吃", "zh-CN", "Vitamin C Tablets", ["usage"]),
    ("日焼け止めの使い方", "ja", "Sunscreen SPF50+", ["usage"]),
    ("tell me about the after-sun mask", "en", "After-Sun Repair Mask", ["ingredients", "usage"]),
    ("水杯的规格", "zh-CN", "Water Bottle", ["care"]),  # no specs written: what we know
])
def test_facts_for_finds_the_product_and_the_kind(question: str, locale: str, product: str, kinds: list[str]) -> None:
    facts = facts_for(question, locale)
    assert {f.product for f in facts} == {product}
    assert [f.kind for f in facts] == kinds
    assert all(f.locale == locale for f in facts)


def test_facts_for_falls_back_to_english_and_knows_health_products() -> None:
    [fact] = facts_for("مكونات زيت السمك", "ar")
    assert fact.locale == "ar" and fact.health and fact.product_id == "KF-FO-90"
    [yoga] = facts_for("how to clean the yoga mat", "ar")
    assert yoga.locale == "en" and not yoga.health  # no Arabic text written for it: English
    assert facts_for("what is the weather today?", "en") == []
    laptops = facts_for("笔记本电脑和平板电脑", "zh-CN")  # the longest name wins: not 笔记本 (notebook)
    assert [f.product for f in laptops] == ["Laptop", "Tablet"]


async def test_a_cosmetic_question_in_zh_without_the_health_disclaimer(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    body = await say(client, "p1", "防晒霜的成分是什么")
    assert body["route"] == "skill"
    text = body["replies"][0]["text"]
    assert text == "防晒霜：\n· 成分：氧化锌与二氧化钛物理防晒剂（SPF50+，PA++++）、甘油、生育酚；无香精。"
    follow = await say(client, "p1", "怎么用")  # the product asked about last
    assert follow["route"] == "skill"
    assert follow["replies"][0]["text"].startswith("防晒霜：\n· 用法：出门前15分钟足量涂抹")


async def test_health_products_always_carry_the_disclaimer(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    zh = (await say(client, "p2", "维生素C怎么吃"))["replies"][0]["text"]
    assert zh.startswith("维生素C片：\n· 用法：每日一片")
    assert zh.endswith(ZH_DISCLAIMER) and zh.count(ZH_DISCLAIMER) == 1
    en = (await say(client, "p3", "what's in the collagen drink?", locale="en"))["replies"][0]["text"]
    assert en.startswith("Collagen Drink:\n· Ingredients: 5,000 mg") and en.endswith(EN_DISCLAIMER)


async def test_store_options_and_asking_which_product_in_en(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    mat = (await say(client, "p4", "how do I clean my yoga mat?", locale="en"))["replies"][0]["text"]
    assert mat.startswith("Yoga Mat:\n· Care: Wipe with water")
    assert mat.endswith("\n· In our shop: thickness: 4mm, 6mm, 5mm; material: PVC, TPE, natural rubber; "
                        "color: blue, green, pink")
    ask = await say(client, "p5", "how to use it?", locale="en")
    assert ask["route"] == "skill"
    assert ask["replies"][0]["text"].startswith("Which product would you like to know about?")
