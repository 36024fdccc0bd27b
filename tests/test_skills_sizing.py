"""Size advice: measures from words, chart edges, and the skill through the web chat API in zh-CN and en."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.skills.sizing import (
    BUNDLED,
    FOOT,
    HEIGHT,
    WEIGHT,
    advise,
    bare_measures,
    load_charts,
    parse_entity_height,
    parse_entity_weight,
    parse_foot_mm,
    parse_height_cm,
    parse_weight_kg,
)
from tests.conftest import say

CHARTS = load_charts(BUNDLED)
CLOTHES, SHOES = CHARTS["clothes"], CHARTS["shoes"]


@pytest.mark.parametrize(("text", "cm"), [
    ("身高175体重65", 175), ("我175cm", 175), ("1米8", 180), ("1米75", 175), ("1.68m", 168),
    ("I'm 5'10\"", 177.8), ("a 6 foot guy", 182.9), ("height 172", 172), ("身長160センチ", 160), ("65kg", None),
])
def test_heights_from_words(text: str, cm: float | None) -> None:
    assert parse_height_cm(text) == cm


@pytest.mark.parametrize(("text", "kg"), [
    ("体重65", 65), ("65公斤", 65), ("130斤", 65), ("160 lbs", 72.6), ("weight 70", 70), ("75kg", 75),
    ("175cm", None),
])
def test_weights_from_words(text: str, kg: float | None) -> None:
    assert parse_weight_kg(text) == kg


def test_nlu_entity_values_and_foot_lengths() -> None:
    assert parse_entity_height("180") == 180 and parse_entity_height("1米8") == 180
    assert parse_entity_weight("75") == 75 and parse_entity_weight("90斤") == 45
    assert parse_entity_height("12") is None  # not a height
    assert parse_foot_mm("脚长24.5cm") == 245 and parse_foot_mm("foot length 265 mm") == 265
    assert parse_foot_mm("脚长26") == 260 and parse_foot_mm("I'm 175cm") is None


def test_clothes_sizes_at_and_around_the_chart_edges() -> None:
    # M fits up to 172 cm and 65 kg; S up to 166 cm / 57 kg; L up to 178 cm / 74 kg; margin 2 cm / 2 kg.
    plain = advise(CLOTHES, {"height_cm": 170, "weight_kg": 60})
    assert plain.size.size == "M" and plain.between is None and not plain.outside
    at_limit = advise(CLOTHES, {"height_cm": 172, "weight_kg": 65})  # a limit still fits
    assert at_limit.size.size == "M" and at_limit.between is None
    just_over = advise(CLOTHES, {"height_cm": 173, "weight_kg": 66})  # 1 cm / 1 kg above M: L, or M snug
    assert just_over.size.size == "L" and [r.size for r in just_over.between or ()] == ["M", "L"]
    disagree = advise(CLOTHES, {"height_cm": 175, "weight_kg": 60})  # L by height, M by weight
    assert disagree.size.size == "L" and [r.size for r in disagree.between or ()] == ["M", "L"]
    assert advise(CLOTHES, {"height_cm": 150, "weight_kg": 42}).size.size == "XS"  # below the chart: smallest
    big = advise(CLOTHES, {"height_cm": 200, "weight_kg": 120})
    assert big.size.size == "XXL" and big.outside


def test_shoe_sizes_by_foot_length() -> None:
    # US 9 (EU 42) fits up to 265 mm, US 10 up to 274 mm; margin 3 mm.
    exact = advise(SHOES, {"foot_mm": 265})
    assert (exact.size.size, exact.size.eu, exact.between) == ("9", "42", None)
    half = advise(SHOES, {"foot_mm": 267})
    assert half.size.size == "10" and [r.size for r in half.between or ()] == ["9", "10"]
    assert advise(SHOES, {"foot_mm": 270}).between is None


async def test_size_advice_in_one_message_in_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    body = await say(client, "s1", "我身高175体重60公斤，T恤穿什么码")
    assert body["route"] == "skill"
    text = body["replies"][0]["text"]
    assert "建议您选L码" in text and "介于M和L之间" in text


async def test_size_advice_asks_for_what_is_missing_and_remembers_it_in_en(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    ask = await say(client, "s2", "what size should I get?", locale="en")
    assert "height and weight" in ask["replies"][0]["text"]
    height = await say(client, "s2", "I'm 180 cm")
    assert height["route"] == "skill"
    assert height["replies"][0]["text"] == "Thanks, I've noted your height (180 cm). What's your weight in kg?"
    weight = await say(client, "s2", "75 kg")
    text = weight["replies"][0]["text"]
    assert text.startswith("For 180 cm and 75 kg I suggest size XL.")
    assert "between L and XL" in text


async def test_shoe_size_in_en_and_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    en = await say(client, "s3", "which shoe size for a foot length of 26.5 cm?", locale="en")
    assert en["replies"][0]["text"] == "For a foot length of 265 mm I suggest size US 9 (EU 42)."
    zh = await say(client, "s4", "鞋码怎么选")
    assert "脚长" in zh["replies"][0]["text"]


def test_bare_numbers_answer_the_measures_asked_for() -> None:
    assert bare_measures("175", [HEIGHT, WEIGHT]) == {HEIGHT: 175}
    assert bare_measures("70", [WEIGHT]) == {WEIGHT: 70}, "the one still missing"
    assert bare_measures("175 70", [HEIGHT, WEIGHT]) == {HEIGHT: 175, WEIGHT: 70}
    assert bare_measures("165", [HEIGHT]) == {HEIGHT: 165}
    assert bare_measures("999", [HEIGHT]) == {}, "not a height"


def test_a_bare_foot_length_is_in_cm_or_mm() -> None:
    assert bare_measures("25.5", [FOOT]) == {FOOT: 255}
    assert bare_measures("260", [FOOT]) == {FOOT: 260}
    assert bare_measures("5", [FOOT]) == {}


@pytest.mark.parametrize("web_hub", ["memory"], indirect=True)
async def test_a_bare_foot_length_answers_the_shoe_question(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    asked = await say(client, "ann", "跑鞋穿多大码")
    assert "脚长" in asked["replies"][0]["text"]
    advised = await say(client, "ann", "25.5")
    assert advised["route"] == "skill" and "255" in advised["replies"][0]["text"], advised
    assert "weight_kg" not in (await hub.store.load("web:ann")).slots, "not taken for a weight"
