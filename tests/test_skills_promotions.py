"""The promotion engine against worked examples (arithmetic by hand in the comments), and the
promotion_query skill through the web chat API in zh-CN and en."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.commerce.promotions import (
    BUNDLED,
    CartLine,
    FullReduction,
    PromotionRules,
    Step,
    best_plan,
    load_rules,
    next_tier_offers,
    parse_rules,
)
from tests.conftest import hub_client, make_config, say

D = Decimal

RULES: PromotionRules = parse_rules({
    "default_shop": "home",
    "shops": {
        "home": {"name": "Home", "full_reduction": {"tiers": [[199, 20], [299, 40], [499, 80]]},
                 "products": ["Lamp", "Kettle", "Notebook", "Chair", "Sticker", "LED Light Bulb"]},
        "digital": {"name": "Digital", "full_reduction": {"every": 300, "discount": 50, "max_discount": 100},
                    "products": ["Phone", "Mouse", "Earbuds"]},
        "books": {"name": "Books", "products": ["Novel"]},
    },
    "coupons": [
        {"id": "H30", "shop": "home", "threshold": 300, "discount": 30},
        {"id": "H25", "shop": "home", "threshold": 250, "discount": 25},
        {"id": "H10", "shop": "home", "threshold": 100, "discount": 10},
        {"id": "D20", "shop": "digital", "threshold": 200, "discount": 20},
        {"id": "P40", "platform": True, "threshold": 260, "discount": 40},
        {"id": "P15", "platform": True, "threshold": 150, "discount": 15},
    ],
    "gifts": [{"id": "pouch", "name": {"en": "travel pouch"}, "min_shops": 2, "min_total": 250}],
})


def cart(*lines: tuple[str, str]) -> list[CartLine]:
    return [CartLine(name, D(price)) for name, price in lines]


def ids(plan_coupons: tuple) -> list[str]:  # type: ignore[type-arg]
    return [c.id for c in plan_coupons]


def test_tiers_take_the_highest_reached_and_every_step_is_capped() -> None:
    tiers = FullReduction(tiers=(Step(D(199), D(20)), Step(D(299), D(40)), Step(D(499), D(80))))
    assert tiers.discount(D("198.99")) == 0  # below the first tier
    assert tiers.discount(D(199)) == 20  # a tier's threshold counts ("满199")
    assert tiers.discount(D(320)) == 40  # 320 >= 299, < 499
    assert tiers.discount(D(1000)) == 80  # tiers do not repeat
    every = FullReduction(every=Step(D(300), D(50)), max_off=D(100))
    assert every.discount(D(650)) == 100  # floor(650 / 300) = 2 steps x 50
    assert every.discount(D(950)) == 100  # 3 steps x 50 = 150, capped at 100
    assert every.next_step(D(250)) == Step(D(300), D(50))
    assert every.next_step(D(650)) is None  # already at the cap: nothing more to reach


def test_example_1_one_shop_tier_shop_coupon_and_platform_coupon() -> None:
    # Kettle 180 + Notebook 28.14 = 208.14 (home).
    # Full reduction: 208.14 >= 199 -> 20 off -> 188.14.
    # Home coupons against 188.14: H10 (100) yes; H25 (250) and H30 (300) no.
    # Platform against what is left: with H10 178.14 -> P15 (150) yes, P40 (260) no.
    # Best: 20 + 10 + 15 = 45 off; pay 208.14 - 45 = 163.14.
    plan = best_plan(RULES, cart(("Kettle", "180"), ("Notebook", "28.14")))
    assert plan.subtotal == D("208.14")
    assert plan.parts[0].reduction == 20
    assert ids(plan.coupons) == ["H10", "P15"]
    assert plan.total == D("163.14") and plan.saving == 45


def test_example_2_threshold_after_reduction_and_the_best_combination_is_not_greedy() -> None:
    # Lamp 310 (home). Full reduction: 310 >= 299 -> 40 off -> 270.
    # H30 needs 300 *after* the reduction: 270 < 300, so it does not apply (it would before the reduction).
    # H25 -> 245: P40 needs 260, no; P15 yes -> 230 (saving 40 + 25 + 15 = 80).
    # H10 -> 260: P40 yes -> 220 (saving 40 + 10 + 40 = 90).
    # none -> 270: P40 -> 230 (saving 80).
    # Best: H10 + P40, pay 220, though H25 is the bigger shop coupon.
    plan = best_plan(RULES, cart(("Lamp", "310")))
    assert ids(plan.coupons) == ["H10", "P40"]
    assert plan.total == D("220.00") and plan.saving == 90


def test_example_3_two_shop_coupons_of_one_shop_never_stack() -> None:
    # Chair 600 (home). Full reduction: 600 >= 499 -> 80 off -> 520.
    # H30, H25 and H10 all apply to 520, but only one of them may be used: H30 -> 490.
    # Platform: 490 >= 260 -> P40 -> 450. Saving 80 + 30 + 40 = 150 (not 80 + 65 + 40).
    plan = best_plan(RULES, cart(("Chair", "600")))
    assert ids(plan.coupons) == ["H30", "P40"]
    assert plan.total == D("450.00") and plan.saving == 150


def test_example_4_every_step_reduction_with_cap_and_stacked_coupons() -> None:
    # Phone 950 (digital): every 300 off 50 -> 3 x 50 = 150, capped at 100 -> 850.
    # D20 (200) applies -> 830; platform P40 (260) applies -> 790. Saving 100 + 20 + 40 = 160.
    plan = best_plan(RULES, cart(("Phone", "950")))
    assert plan.parts[0].reduction == 100
    assert ids(plan.coupons) == ["D20", "P40"]
    assert plan.total == D("790.00") and plan.saving == 160


def test_example_5_two_shops_each_with_its_rules_and_a_cross_shop_gift() -> None:
    # Chair 200 (home) + Mouse 120 (digital) = 320.
    # home: 200 >= 199 -> 20 off -> 180; H10 -> 170. digital: 120 < 300 -> 0 off; D20 needs 200 -> no.
    # After the shops: 170 + 120 = 290 -> P40 (260) -> 250. Saving 20 + 10 + 40 = 70; pay 250.
    # Gift: 2 shops and 250 >= 250 payable -> the travel pouch.
    plan = best_plan(RULES, cart(("Chair", "200"), ("Mouse", "120")))
    assert ids(plan.coupons) == ["H10", "P40"]
    assert plan.total == D("250.00") and plan.saving == 70
    assert [g.id for g in plan.gifts] == ["pouch"]
    # One shop only: no gift, whatever the amount (Chair 600 pays 450, see example 3).
    assert best_plan(RULES, cart(("Chair", "600"))).gifts == ()


def test_example_6_no_promotion_applies() -> None:
    # Novel 30 (books: no full reduction, no shop coupon); P15 needs 150 -> nothing; pay 30.
    plan = best_plan(RULES, cart(("Novel", "30")))
    assert plan.coupons == () and plan.saving == 0 and plan.total == D("30.00")
    assert best_plan(RULES, []).total == 0


def test_example_7_unknown_products_belong_to_the_default_shop() -> None:
    # Vase 199 is in no shop's list -> home: 199 >= 199 -> 20 off -> 179; H10 -> 169; P15 -> 154.
    plan = best_plan(RULES, cart(("Vase", "199")))
    assert plan.parts[0].shop == "home"
    assert plan.total == D("154.00")


def test_next_tier_suggests_the_lowest_priced_items_that_close_the_gap() -> None:
    catalog = [("Notebook", D("28.14")), ("Notebook", D("32.37")), ("LED Light Bulb", D("47.20")),
               ("Lamp", D("135.24")), ("Sticker", D("5.00")), ("Mouse", D("60.00")), ("Mouse", D("45.00")),
               ("Earbuds", D("99.00")), ("Phone", D("500.00"))]
    # Kettle 180 (home): the next tier is 199 (20 off), gap 19; Sticker 5 is too small to close it.
    [home] = next_tier_offers(RULES, cart(("Kettle", "180")), catalog)
    assert (home.shop, home.gap, home.threshold, home.extra_off) == ("home", D(19), D(199), D(20))
    assert home.items == (("Notebook", D("28.14")), ("LED Light Bulb", D("47.20")), ("Lamp", D("135.24")))
    # Earbuds 250 (digital): every 300 -> gap 50; Mouse 45 does not close it, the Mouse at 60 does.
    [digital] = next_tier_offers(RULES, cart(("Earbuds", "250")), catalog)
    assert digital.gap == 50 and digital.extra_off == 50
    assert digital.items == (("Mouse", D("60.00")), ("Earbuds", D("99.00")), ("Phone", D("500.00")))
    # Phone 650 (digital): already at the 100 cap, nothing to reach.
    assert next_tier_offers(RULES, cart(("Phone", "650")), catalog) == []


def test_the_bundled_rules_load() -> None:
    rules = load_rules(BUNDLED)
    assert rules.shop_of("Laptop") == "digital" and rules.shop_of("T-Shirt") == "outdoor"
    assert {c.id for c in rules.coupons if c.platform} == {"P40", "P15"}


# -- the skill through the engine ------------------------------------------------------------------------------


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Hub]]:
    async with hub_client(make_config(tmp_path)) as pair:
        yield pair


async def test_promotion_rules_for_a_guest_in_zh_and_en(web: tuple[TestClient, Hub]) -> None:
    client, _ = web
    zh = await say(client, "guest-p", "现在有什么优惠活动")
    assert zh["route"] == "skill"
    text = zh["replies"][0]["text"]
    assert "满" in text and "家居生活馆" in text and "P40" in text
    en = await say(client, "guest-q", "any coupons right now?", locale="en")
    text = en["replies"][0]["text"]
    assert "Home & Living" in text and "P40" in text and "stack" in text


async def test_promotion_for_a_signed_in_shoppers_pending_order(web: tuple[TestClient, Hub]) -> None:
    client, _ = web
    # yusuf_hernandez_6467's order awaiting shipment, #W2033238: Sunglasses 279.78 (Sports & Outdoor).
    # Tier 200 -> 25 off -> 254.78; O20 (200) -> 234.78; P15 needs 299 -> no. Pay 234.78, save 45.
    # Next tier: 400 (60 off), 120.22 more for 35 more off.
    en = await say(client, "yusuf_hernandez_6467", "which coupons can I use?", locale="en")
    text = en["replies"][0]["text"]
    assert en["route"] == "skill"
    assert "#W2033238" in text and "you pay $234.78 instead of $279.78, saving $45.00" in text
    assert "O20" in text and "Add $120.22 more from Sports & Outdoor" in text
    zh = await say(client, "yusuf_hernandez_6467", "我能用什么优惠券")
    assert "#W2033238" in zh["replies"][0]["text"] and "实付" in zh["replies"][0]["text"]
