"""Engine behaviour channels rely on: numbered options, platform events, verified-phone linking."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.app import Hub, build_hub
from core.message import (
    Attachment,
    AttachmentKind,
    Capabilities,
    ChannelUser,
    Chat,
    ChatKind,
    EventKind,
    Location,
    Message,
    Reply,
    TurnResult,
)
from tests.conftest import REDIS_URL, make_config

TEXT_ONLY = Capabilities(buttons=False, images=False, cards=False)


@pytest.fixture(params=["memory", "redis"])
async def hub(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> AsyncIterator[Hub]:
    redis = {"url": REDIS_URL} if request.param == "redis" else {}
    built = await build_hub(make_config(tmp_path, redis=redis), store_prefix=redis_prefix)
    yield built
    await built.store.close()


async def turn(hub: Hub, message: Message, caps: Capabilities = TEXT_ONLY) -> tuple[TurnResult, list[Reply]]:
    sent: list[Reply] = []

    async def send(reply: Reply) -> None:
        sent.append(reply)

    return await hub.engine.handle(message, send, caps), sent


def from_user(channel: str, user_id: str, text: str = "", **fields: object) -> Message:
    return Message(ChannelUser(channel, user_id), Chat(ChatKind.DIRECT, user_id), text, **fields)  # type: ignore[arg-type]


async def test_buttons_become_numbered_options_and_a_number_picks_one(hub: Hub) -> None:
    _, sent = await turn(hub, from_user("wechat", "o-1", "你好"))
    assert sent[0].buttons == ()
    assert sent[0].text.endswith("\n1. 我的订单到哪了？\n2. 转人工客服")
    result, sent = await turn(hub, from_user("wechat", "o-1", " 2 "))
    assert result.route == "handoff", "option 2's payload is 转人工"
    session = await hub.store.load("wechat:o-1")
    assert session.history[-2].text == "转人工", "the transcript shows what the shopper chose"


async def test_a_number_without_options_is_just_text(hub: Hub) -> None:
    result, _ = await turn(hub, from_user("wechat", "o-2", "2"))
    assert result.route == "fallback"


async def test_subscribe_gets_a_welcome_and_unsubscribe_nothing(hub: Hub) -> None:
    result, sent = await turn(hub, from_user("wechat", "o-3", event=EventKind.SUBSCRIBE))
    assert result.route == "event" and "您好" in sent[0].text
    result, sent = await turn(hub, from_user("wechat", "o-3", event=EventKind.UNSUBSCRIBE))
    assert result.route == "event" and sent == []


async def test_locations_are_kept_for_nearby_offers_only_with_consent(hub: Hub) -> None:
    assert hub.pushes is not None
    book = hub.pushes.book  # core.push: the only place a shopper's location is kept
    report = from_user("wechat", "o-4", event=EventKind.LOCATION, location=Location(23.137466, 113.352425))
    _, sent = await turn(hub, report)
    assert sent == [], "a background location report is not answered"
    shared = from_user("tg", "55", location=Location(31.2304, 121.4737, "People's Square"))
    _, sent = await turn(hub, shared)
    assert "免费小样" in sent[0].text and "1." in sent[0].text  # asked first, with numbered options
    assert await book.locations(time.time()) == []  # neither location kept without a yes
    _, sent = await turn(hub, from_user("tg", "55", "1"))
    assert "30" in sent[0].text
    assert [(loc.customer_id, loc.lat) for loc in await book.locations(time.time())] == [("tg:55", 31.2304)]
    assert "location" not in (await hub.store.load("tg:55")).slots


async def test_media_without_text_gets_a_clear_answer(hub: Hub) -> None:
    photo = Attachment(AttachmentKind.IMAGE, media_id="m-1")
    _, sent = await turn(hub, from_user("tg", "56", attachments=(photo,)))
    assert sent[0].text == "我目前只能看懂文字消息，请直接输入您的问题。"


async def test_a_verified_phone_joins_two_channels_into_one_conversation(hub: Hub) -> None:
    await turn(hub, from_user("miniprogram", "o-mp", "我的订单到哪了", verified_phone="13800138000"))
    result, _ = await turn(hub, from_user("tg", "77", "谢谢", verified_phone="+86 138 0013 8000"))
    assert result.customer_id == "miniprogram:o-mp"
    history = [h.text for h in (await hub.store.load("miniprogram:o-mp")).history if h.role == "shopper"]
    assert history == ["我的订单到哪了", "谢谢"]
