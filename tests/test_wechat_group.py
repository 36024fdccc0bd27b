"""WeChat groups end to end: a WeCom intelligent robot's encrypted JSON callbacks through the hub
(answer on @mention or keyword, address the asker, passive stream reply or response_url when late), and
proactive messages through the group robot webhook within its rate limit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.wechat_group import GroupRobot
from core.app import Hub
from tests.conftest import hub_client, make_config
from tests.support.fake_llm import FakeLlm
from tests.support.fake_wechat_api import FakeWeChatApi, Platform

KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
PLATFORM = Platform("gtok", KEY, "")  # an intelligent robot's receive id is ""


@asynccontextmanager
async def group_hub(tmp_path: Path, api: FakeWeChatApi, llm: FakeLlm | None = None,
                    **group: Any) -> AsyncIterator[tuple[TestClient, Hub]]:
    settings = {"enabled": True, "token": "gtok", "encoding_aes_key": KEY, "bot_names": ["客服", "Shop Bot"],
                "keywords": ["退货"], "robot_webhook_url": api.robot_url(), **group}
    sections: dict[str, Any] = {"channels": {"wechat_group": settings}}
    if llm is not None:
        sections["llm"] = {"base_url": llm.base_url, "api_key": "test-key", "max_retries": 0}
    async with hub_client(make_config(tmp_path, **sections)) as pair:
        yield pair


def robot_message(api: FakeWeChatApi, content: str, msgid: str, chattype: str = "group",
                  user: str = "lisi") -> dict[str, Any]:
    return {"msgid": msgid, "aibotid": "AIBOT", "chatid": "wrCHAT" if chattype == "group" else "",
            "chattype": chattype, "from": {"userid": user}, "response_url": api.response_url(),
            "msgtype": "text", "text": {"content": content}}


async def deliver(client: TestClient, message: dict[str, Any], **stamp: Any) -> tuple[int, str]:
    query, body = PLATFORM.json_envelope(json.dumps(message, ensure_ascii=False), **stamp)
    response = await client.post(f"/wechat/group/callback?{query}", data=body)
    return response.status, await response.text()


async def history(hub: Hub, user: str = "lisi") -> list[str]:
    return [h.text for h in (await hub.store.load(f"wechat_group:{user}")).history if h.role == "shopper"]


async def test_a_mention_is_answered_passively_and_addresses_the_asker(tmp_path: Path) -> None:
    async with FakeWeChatApi() as api, group_hub(tmp_path, api) as (client, hub):
        status, body = await deliver(client, robot_message(api, "@客服\u2005你好", "m1"))
        assert status == 200
        reply = PLATFORM.open_json_reply(body)
        assert reply["msgtype"] == "stream" and reply["stream"]["finish"] is True
        assert reply["stream"]["content"].startswith("@lisi ") and "您好" in reply["stream"]["content"]
        assert await history(hub) == ["你好"], "the mention is stripped before the engine"
        assert api.sent == []


async def test_group_messages_not_for_the_bot_are_acknowledged_without_a_turn(tmp_path: Path) -> None:
    async with FakeWeChatApi() as api, group_hub(tmp_path, api) as (client, hub):
        for i, text in enumerate(["大家好", "客服在吗", "@客服人员 你好", "email me@客服.com"]):
            assert await deliver(client, robot_message(api, text, f"n{i}")) == (200, "")
        assert await history(hub) == []


async def test_a_keyword_or_another_bot_name_also_addresses_the_bot(tmp_path: Path) -> None:
    async with FakeWeChatApi() as api, group_hub(tmp_path, api) as (client, hub):
        _, body = await deliver(client, robot_message(api, "我想退货怎么办", "k1"))
        assert PLATFORM.open_json_reply(body)["stream"]["content"].startswith("@lisi ")
        _, body = await deliver(client, robot_message(api, "@Shop Bot 你好", "k2", user="wangwu"))
        assert PLATFORM.open_json_reply(body)["stream"]["content"].startswith("@wangwu ")
        assert await history(hub) == ["我想退货怎么办"]
        assert await history(hub, "wangwu") == ["你好"]


async def test_a_one_to_one_chat_is_always_answered_without_addressing(tmp_path: Path) -> None:
    async with FakeWeChatApi() as api, group_hub(tmp_path, api) as (client, _hub):
        _, body = await deliver(client, robot_message(api, "你好", "s1", chattype="single"))
        content = PLATFORM.open_json_reply(body)["stream"]["content"]
        assert "您好" in content and not content.startswith("@")


async def test_entering_the_chat_gets_a_text_welcome(tmp_path: Path) -> None:
    async with FakeWeChatApi() as api, group_hub(tmp_path, api) as (client, _hub):
        event = {"msgid": "e1", "aibotid": "AIBOT", "chattype": "single", "from": {"userid": "lisi"},
                 "msgtype": "event", "event": {"eventtype": "enter_chat"}}
        _, body = await deliver(client, event)
        reply = PLATFORM.open_json_reply(body)
        assert reply["msgtype"] == "text" and "您好" in reply["text"]["content"]


async def test_a_late_answer_goes_once_to_the_response_url(tmp_path: Path) -> None:
    async with FakeLlm() as llm, FakeWeChatApi() as api, group_hub(tmp_path, api, llm) as (client, _hub):
        llm.stall(0.6)
        message = robot_message(api, "@客服 xyzzy plugh", "late-1")
        started = time.perf_counter()
        results = await asyncio.gather(*(deliver(client, message) for _ in range(4)))  # with WeCom's retries
        assert results == [(200, "")] * 4 and time.perf_counter() - started < 0.9
        for _ in range(250):
            if api.sent:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        (sent,) = api.sent
        assert sent.api == "aibot" and sent.msgtype == "markdown"
        assert sent.text.startswith("@lisi ") and "抱歉" in sent.text
        assert sent.touser in message["response_url"]


@pytest.mark.parametrize(("case", "status"), [("forged", 403), ("stale", 403), ("not json", 400),
                                              ("not encrypted for us", 403)])
async def test_hostile_group_callbacks_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, status: int
) -> None:
    async with FakeWeChatApi() as api, group_hub(tmp_path, api) as (client, hub):
        message = json.dumps(robot_message(api, "@客服 你好", "h1"))
        if case == "forged":
            query, body = Platform("not-gtok", KEY, "").json_envelope(message)
        elif case == "stale":
            query, body = PLATFORM.json_envelope(message, timestamp=int(time.time()) - 600)
        elif case == "not json":
            query, body = PLATFORM.json_envelope(message)
            body = b"<xml>" + body
        else:
            query, body = Platform("gtok", KEY, "wx-other").json_envelope(message)
        response = await client.post(f"/wechat/group/callback?{query}", data=body)
        assert response.status == status
        assert "refused" in caplog.text
        assert await history(hub) == [] and api.requests == []


async def test_url_verification(tmp_path: Path) -> None:
    async with FakeWeChatApi() as api, group_hub(tmp_path, api) as (client, _hub):
        echo = PLATFORM.encrypt("8827364522")
        response = await client.get("/wechat/group/callback", params={**PLATFORM.encrypted_query(echo),
                                                                      "echostr": echo})
        assert response.status == 200 and await response.text() == "8827364522"


# -- proactive messages through the group robot webhook ------------------------------------------


class FakeClock:
    """Time that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


async def test_the_robot_sends_at_most_20_a_minute_and_drops_nothing() -> None:
    clock = FakeClock()
    async with FakeWeChatApi(clock=clock) as api:
        robot = GroupRobot(api.robot_url(), per_minute=20, clock=clock, sleep=clock.sleep)
        sends = [robot.send_text(f"第{i}条通知", mention_user_ids=["lisi"]) if i % 2 else
                 robot.send_markdown(f"**第{i}条** 通知") for i in range(45)]
        assert all(await asyncio.gather(*sends))
        await robot.close()
    times = [s.at for s in api.sent]
    assert len(times) == 45, "queued, not dropped"
    assert all(sum(1 for t in times if start <= t < start + 60) <= 20 for start in times), "≤ 20 in any minute"
    assert clock.now - 1_000.0 >= 120, "45 messages need three windows"
    assert [s.text for s in api.sent] == [f"第{i}条通知" if i % 2 else f"**第{i}条** 通知" for i in range(45)]
    assert {s.msgtype for s in api.sent} == {"text", "markdown"}
    assert api.sent[1].body["text"]["mentioned_list"] == ["lisi"]


async def test_the_robot_waits_out_a_server_rate_limit_and_retries() -> None:
    clock = FakeClock()
    async with FakeWeChatApi(clock=clock) as api:
        robot = GroupRobot(api.robot_url(), per_minute=20, clock=clock, sleep=clock.sleep)
        api.fail("/cgi-bin/webhook/send", 45009, "api freq out of limit")
        assert await robot.send_text("限时优惠开始了")
        await robot.close()
    assert len(api.sent) == 1 and clock.now >= 1_060.0


async def test_a_long_robot_text_is_split_under_2048_bytes() -> None:
    async with FakeWeChatApi() as api:
        robot = GroupRobot(api.robot_url())
        assert await robot.send_text("今天全场满三百减五十。" * 300)
        await robot.close()
    assert len(api.sent) > 1 and all(len(s.text.encode()) <= 2048 for s in api.sent)
