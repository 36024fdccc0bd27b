"""The whole turn pipeline through POST /webchat/api/messages, on the embedded store and on Redis."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from core.app import Hub
from tests.conftest import say


async def test_greeting_in_the_default_locale_and_in_english(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    zh = await say(client, "ann", "你好")
    assert zh["route"] == "skill"
    assert "您好" in zh["replies"][0]["text"]
    assert [b["payload"] for b in zh["replies"][0]["buttons"]] == ["我的订单到哪了？", "转人工"]

    en = await say(client, "bob", "hello", locale="en-US")
    assert en["replies"][0]["text"].startswith("Hello! I'm the kefu demo shop assistant")


async def test_unknown_locale_falls_back_to_the_shop_default(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    body = await say(client, "ann", "hello", locale="xx-YY")
    assert "您好" in body["replies"][0]["text"]


async def test_signed_in_shopper_gets_their_orders(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    listing = await say(client, "james_li_5688", "我的订单到哪了")
    text = listing["replies"][0]["text"]
    assert text.startswith("这是您最近的订单")
    assert len(listing["replies"][0]["buttons"]) == 3

    one = await say(client, "james_li_5688", "W 261 1340 到哪了", locale="en")
    assert one["replies"][0]["text"].startswith(
        "Order #W2611340: shipped. Items: Water Bottle, Office Chair. Total: $536.65. Tracking number: 357962501027."
        "\nLatest tracking of parcel 357962501027:\n· "  # the parcel's events: tests/test_skills_logistics.py
    )


async def test_another_shoppers_order_is_not_shown(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    body = await say(client, "james_li_5688", "order #W7678072", locale="en")  # noah_brown_6181's order
    assert body["replies"][0]["text"] == "I couldn't find order #W7678072 on your account."


async def test_anonymous_shopper_signs_in_with_email(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    ask = await say(client, "guest-1", "where is my order", locale="en")
    assert "email address" in ask["replies"][0]["text"]
    wrong = await say(client, "guest-1", "nobody@example.com")
    assert "couldn't find an account" in wrong["replies"][0]["text"]
    right = await say(client, "guest-1", "it's Noah.Brown7922@example.com")
    assert right["route"] == "skill"
    assert "#W7678072" in right["replies"][0]["text"]


async def test_offline_fallback_is_honest_and_queues_the_question(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    body = await say(client, "ann", "今天天气怎么样")
    assert body["route"] == "fallback"
    assert "暂时还答不上来" in body["replies"][0]["text"]
    assert body["replies"][0]["buttons"][0]["payload"] == "转人工"
    queued = await hub.store.list_unknown()
    assert queued[0]["text"] == "今天天气怎么样" and queued[0]["locale"] == "zh-CN"


async def test_bot_stays_silent_while_a_human_holds_the_conversation(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    handoff = await say(client, "ann", "转人工")
    assert handoff["route"] == "handoff"
    assert "人工客服" in handoff["replies"][0]["text"]
    held = await say(client, "ann", "你好？有人吗")
    assert held == {"replies": [], "route": "held"}
    session = await hub.store.load("web:ann")
    assert session.handoff.state == "queued"
    assert session.history[-1].text == "你好？有人吗", "the agent desk reads the shopper's words from the session"


async def test_platform_retry_is_acknowledged_not_answered_twice(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    first = await say(client, "ann", "你好", message_id="m-1")
    assert len(first["replies"]) == 1
    again = await say(client, "ann", "你好", message_id="m-1")
    assert again == {"replies": [], "route": "duplicate", "duplicate": True}
    session = await hub.store.load("web:ann")
    assert [h.role for h in session.history] == ["shopper", "bot"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'{"text": "hi"}', "'user_id'"),
        (b'{"user_id": "ann"}', "'text'"),
        (b'{"user_id": "ann", "text": 5}', "'text'"),
        (b'{"user_id": "a b", "text": "hi"}', "'user_id'"),
        (b'{"user_id": "ann", "text": "hi", "locale": "<script>"}', "'locale'"),
        (b'{"user_id": "ann", "text": "' + b"x" * 4097 + b'"}', "the limit is 4096"),
    ],
)
async def test_bad_input_gets_a_clear_4xx_and_stores_nothing(
    web_hub: tuple[TestClient, Hub], body: bytes, fragment: str
) -> None:
    client, hub = web_hub
    response = await client.post("/webchat/api/messages", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    error = (await response.json())["error"]
    assert fragment in error["message"]
    assert "Traceback" not in error["message"]
    assert (await hub.store.load("web:ann")).history == []


async def test_oversized_body_is_refused_with_json(web_hub: tuple[TestClient, Hub]) -> None:
    client, _ = web_hub
    response = await client.post("/webchat/api/messages", data=b"x" * 70_000)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "request_entity_too_large"


async def test_health_and_metrics(web_hub: tuple[TestClient, Hub]) -> None:
    client, hub = web_hub
    await say(client, "ann", "你好")
    health = await (await client.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["backends"]["sessions"] == {"kind": hub.store.name, "up": True}
    assert health["backends"]["llm"]["mode"] == "offline"

    metrics = await (await client.get("/metrics")).text()
    assert 'kefu_turns_total{channel="web",route="skill"} 1.0' in metrics
    for stage in ("open", "understand", "decide", "send", "save"):
        assert f'kefu_stage_seconds_count{{stage="{stage}"}} 1.0' in metrics
    assert 'kefu_backend_up{backend="sessions"} 1.0' in metrics
