"""Recommendations: operator rules before bought-together from the order history; the shopper's browse,
favourite and cart events through POST /webchat/api/events (kept in the session, bounded); product cards
through the web chat API in zh-CN and en."""

from __future__ import annotations

import itertools
from collections import Counter

import orjson
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.commerce.demo_store import DemoStore
from core.commerce.recommend import Source, recommender
from core.message import EventKind
from core.sessions import Session
from core.shop_events import KEPT, recent, record
from tests.conftest import SHARED_DATA, say

ORDERS = orjson.loads((SHARED_DATA / "retail" / "db.json").read_bytes())["orders"].values()
T_SHIRT = "9523456873"  # the demo store's T-Shirt


def test_bought_together_is_the_order_history() -> None:
    pairs: Counter[tuple[str, str]] = Counter()
    for order in ORDERS:
        for a, b in itertools.permutations(sorted({i["name"] for i in order["items"]}), 2):
            pairs[(a, b)] += 1
    top = max(n for (a, _b), n in pairs.items() if a == "Bluetooth Speaker")
    first = recommender().together["Bluetooth Speaker"][0]
    assert pairs[("Bluetooth Speaker", first)] == top == 13 and first == "Cycling Helmet"


def test_rules_come_first_and_nothing_is_suggested_twice() -> None:
    r = recommender()
    sun = r.suggest(["Sunscreen SPF50+"])
    assert [(s.name, s.source) for s in sun] == [("After-Sun Repair Mask", Source.RULE)]  # no order history of ours
    bike = r.suggest(["Bicycle"], limit=3)
    assert bike[0].name == "Cycling Helmet" and bike[0].source == Source.RULE
    assert [s.source for s in bike[1:]] == [Source.TOGETHER, Source.TOGETHER]
    assert len({s.name for s in bike}) == 3 and "Bicycle" not in {s.name for s in bike}
    assert "Cycling Helmet" not in {s.name for s in r.suggest(["Bicycle"], exclude=["Cycling Helmet"])}
    assert [s.source for s in r.suggest([])] == [Source.FEATURED] * 3
    assert [s.source for s in r.suggest(["Fish Oil Softgels"])] == [Source.FEATURED] * 3  # nothing else known


async def test_what_goes_with_a_product_in_zh(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    body = await say(client, "r1", "防晒霜搭配什么")
    assert body["route"] == "skill"
    intro, card = body["replies"]
    assert intro["text"] == "这些和防晒霜很搭："
    assert card["card"] == {"title": "晒后修复面膜", "product_id": "KF-ASM-01", "price": "US$18.50起",
                            "image_url": None, "url": None, "description": "晒后舒缓修护，和防晒搭配更安心"}


async def test_from_shop_events_and_from_the_last_order_in_en(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    for kind, product in (("browse", T_SHIRT), ("cart", "KF-SUN-50")):
        response = await client.post("/webchat/api/events", json={"user_id": "r2", "kind": kind, "product_id": product})
        assert response.status == 200 and (await response.json()) == {"route": "event"}
    body = await say(client, "r2", "what would you recommend?", locale="en")
    intro, *cards = body["replies"]
    assert intro["text"] == "Based on what you've been looking at (Sunscreen SPF50+, T-Shirt), you may like:"
    assert cards[0]["card"]["title"] == "After-Sun Repair Mask"
    assert cards[1]["card"]["description"] == "Often bought with T-Shirt"
    assert cards[1]["card"]["price"].startswith("from $")
    assert "Sunscreen SPF50+" not in {c["card"]["title"] for c in cards}  # already in the cart

    signed = await say(client, "james_li_5688", "recommend something", locale="en")
    assert signed["replies"][0]["text"] == ("Based on your last order (Indoor Security Camera, Jigsaw Puzzle), "
                                            "you may like:")
    assert len(signed["replies"]) == 4 and all(r["card"]["description"] for r in signed["replies"][1:])
    guest = await say(client, "r3", "any recommendations?", locale="en")
    assert guest["replies"][0]["text"] == "Some of our favourites:"


async def test_events_are_checked_and_kept_bounded(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    bad = [{"user_id": "r4", "kind": "like", "product_id": T_SHIRT}, {"user_id": "r4", "kind": "cart"},
           {"user_id": "r 4", "kind": "cart", "product_id": T_SHIRT},
           {"user_id": "r4", "kind": "cart", "product_id": 7}]
    for payload in bad:
        assert (await client.post("/webchat/api/events", json=payload)).status == 400
    products = [T_SHIRT, "KF-SUN-50", "KF-ASM-01", "KF-VC-100", "KF-FO-90", "KF-COL-10", "unknown-product"]
    for i in range(KEPT + 10):
        payload = {"user_id": "r4", "kind": ("browse", "favourite")[i % 2], "product_id": products[i % len(products)]}
        assert (await client.post("/webchat/api/events", json=payload)).status == 200
    body = await say(client, "r4", "有什么推荐")
    assert body["replies"][0]["text"].startswith("根据您最近浏览的商品（")
    assert len(body["replies"]) >= 2 and all(r["card"] for r in body["replies"][1:])


def test_the_session_keeps_the_latest_events_of_known_products() -> None:
    store = DemoStore(orjson.loads((SHARED_DATA / "retail" / "db.json").read_bytes()))
    session = Session(customer_id="c")
    assert not record(session, store, EventKind.BROWSE, "unknown-product", 1.0)
    for i in range(KEPT + 5):
        assert record(session, store, EventKind.BROWSE, f"KF-{i}" if i % 2 else T_SHIRT, float(i)) == (i % 2 == 0)
    assert record(session, store, EventKind.CART, "KF-SUN-50", 100.0)
    events = recent(session)
    assert [(e.kind, e.product) for e in events] == [(EventKind.CART, "Sunscreen SPF50+"),
                                                     (EventKind.BROWSE, "T-Shirt")]
    assert events[1].at == float(KEPT + 4)  # the latest browse of the T-shirt, kept once
    for i in range(KEPT + 5):
        record(session, store, (EventKind.BROWSE, EventKind.FAVOURITE, EventKind.CART)[i % 3], T_SHIRT, float(i))
    assert len(session.slots["shop_events"]) <= KEPT
