"""The reply deadline and exactly-once delivery on the Official Account / WeCom channel, end to end:
passive replies, acknowledgement plus the customer-service API when the turn is late, retries,
splitting, numbered options, token refresh and the API's refusals."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.wechat_common import parse_xml
from core.app import Hub
from tests.conftest import RedisServer, hub_client, make_config
from tests.support.fake_llm import FakeLlm
from tests.support.fake_wechat_api import FakeWeChatApi, Platform
from tests.support.tcp_proxy import CountingProxy

CUSTOM_SEND = "/cgi-bin/message/custom/send"
UNKNOWN = "xyzzy plugh"  # no intent: goes to the LLM


def text_xml(content: str, msg_id: str, user: str = "o-shopper") -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


@asynccontextmanager
async def hub_with(tmp_path: Path, api: FakeWeChatApi, llm: FakeLlm | None = None, redis_url: str = "",
                   **wechat: Any) -> AsyncIterator[tuple[TestClient, Hub]]:
    settings = {"enabled": True, "token": "tok", "app_id": "wx-app", "app_secret": "app-secret",
                "api_base_url": api.base_url, **wechat}
    sections: dict[str, Any] = {"channels": {"wechat": settings}}
    if llm is not None:
        sections["llm"] = {"base_url": llm.base_url, "api_key": "test-key", "max_retries": 0, "timeout_s": 5}
    if redis_url:
        sections["redis"] = {"url": redis_url, "timeout_s": 0.5}
    async with hub_client(make_config(tmp_path, **sections)) as pair:
        yield pair


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def post(client: TestClient, body: bytes, platform: Platform | None = None) -> tuple[int, str, float]:
    started = time.perf_counter()
    response = await client.post("/wechat/callback", params=(platform or Platform("tok")).plain_query(), data=body)
    return response.status, await response.text(), time.perf_counter() - started


async def test_a_quick_turn_is_answered_passively(tmp_path: Path) -> None:
    async with FakeWeChatApi() as api, hub_with(tmp_path, api) as (client, _hub):
        status, body, elapsed = await post(client, text_xml("你好", "101"))
        assert status == 200
        reply = parse_xml(body)
        assert reply["ToUserName"] == "o-shopper" and reply["FromUserName"] == "gh_shop"
        assert "您好" in reply["Content"]
        assert elapsed < 0.5
        assert api.requests == []  # no API call at all


async def test_buttons_become_numbered_options_and_a_reply_of_2_picks_option_2(tmp_path: Path) -> None:
    async with FakeWeChatApi() as api, hub_with(tmp_path, api) as (client, hub):
        _, body, _ = await post(client, text_xml("你好", "201"))
        assert parse_xml(body)["Content"].endswith("1. 我的订单到哪了？\n2. 转人工客服")
        _, body, _ = await post(client, text_xml("2", "202"))
        assert "人工" in parse_xml(body)["Content"]
        session = await hub.store.load("wechat:o-shopper")
        assert session.history[-2].text == "转人工", "option 2's payload is what the shopper said"


async def test_a_stalled_llm_gets_an_acknowledgement_then_one_customer_service_message(tmp_path: Path) -> None:
    async with FakeLlm() as llm, FakeWeChatApi() as api, hub_with(tmp_path, api, llm) as (client, _hub):
        llm.stall(1.0)  # then 503: the engine's honest apology is the answer
        body = text_xml(UNKNOWN, "301")
        first = asyncio.create_task(post(client, body))
        await asyncio.sleep(0.1)
        retries = await asyncio.gather(*(post(client, body) for _ in range(3)))  # WeChat's retries, while pending
        status, text, elapsed = await first
        assert (status, text) == (200, "success") and elapsed < 0.9, "acknowledged at the deadline (0.4 s)"
        assert all(r[:2] == (200, "success") and r[2] < 0.3 for r in retries), retries
        assert api.sent == []  # not yet
        await until(lambda: len(api.sent) == 1)
        (sent,) = api.sent
        assert (sent.api, sent.touser, sent.msgtype) == ("custom", "o-shopper", "text")
        assert "抱歉" in sent.text
        assert (await post(client, body))[:2] == (200, "success")  # a late retry too
        await asyncio.sleep(0.2)
        assert len(api.sent) == 1 and len(api.calls(CUSTOM_SEND)) == 1


async def test_four_concurrent_deliveries_get_one_passive_reply(tmp_path: Path) -> None:
    async with FakeWeChatApi() as api, hub_with(tmp_path, api) as (client, _hub):
        results = await asyncio.gather(*(post(client, text_xml("你好", "401")) for _ in range(4)))
        assert all(status == 200 for status, _, _ in results)
        replies = [text for _, text, _ in results if text != "success"]
        assert len(replies) == 1 and "您好" in parse_xml(replies[0])["Content"]
        await asyncio.sleep(0.1)
        assert api.sent == []


async def test_a_long_answer_is_split_at_sentences_passive_part_first_then_the_api(tmp_path: Path) -> None:
    sentences = [f"第{i}条：会员积分可以在结算时抵扣现金，每一百积分抵一元，积分有效期为十二个月。" for i in range(120)]
    long_answer = "".join(sentences)
    assert len(long_answer.encode()) > 4 * 2048
    async with FakeLlm() as llm, FakeWeChatApi() as api, hub_with(tmp_path, api, llm,
                                                                  reply_deadline_s=3.0) as (client, _hub):
        llm.script(long_answer)
        status, body, _ = await post(client, text_xml(UNKNOWN, "501"))
        assert status == 200
        first = parse_xml(body)["Content"]
        await until(lambda: len(api.sent) >= 1)
        await asyncio.sleep(0.2)
        parts = [first] + [s.text for s in api.sent]
        assert all(2048 - 130 < len(p.encode()) <= 2048 for p in parts[:-1]), "packed full, under the limit"
        assert all(p.endswith("。") for p in parts), "every part ends a sentence"
        assert "".join(parts) == long_answer, "nothing lost, nothing repeated, in order"


async def test_an_expired_token_is_refreshed_once_and_the_send_goes_through(tmp_path: Path) -> None:
    async with FakeLlm() as llm, FakeWeChatApi() as api, hub_with(tmp_path, api, llm,
                                                                  reply_deadline_s=0.2) as (client, _hub):
        llm.stall(0.3)
        await post(client, text_xml(UNKNOWN, "601"))
        await until(lambda: len(api.sent) == 1)
        api.expire_tokens()
        llm.stall(0.3)
        await post(client, text_xml(UNKNOWN, "602"))
        await until(lambda: len(api.sent) == 2)
        assert len(api.calls("/cgi-bin/stable_token")) == 2
        sends = api.calls(CUSTOM_SEND)
        assert len(sends) == 3 and sends[1].query["access_token"] != sends[2].query["access_token"]


@pytest.mark.parametrize(("errcode", "explained"), [(45015, "48-hour"), (45047, "quota")])
async def test_api_refusals_are_logged_clearly_and_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, errcode: int, explained: str
) -> None:
    caplog.set_level(logging.WARNING, "kefu.wechat")
    async with FakeLlm() as llm, FakeWeChatApi() as api, hub_with(tmp_path, api, llm,
                                                                  reply_deadline_s=0.2) as (client, _hub):
        api.fail(CUSTOM_SEND, errcode)
        llm.stall(0.3)
        await post(client, text_xml(UNKNOWN, "701"))
        await until(lambda: len(api.calls(CUSTOM_SEND)) == 1)
        await asyncio.sleep(0.3)
        assert len(api.calls(CUSTOM_SEND)) == 1 and api.sent == []
    line = next(r.getMessage() for r in caplog.records if "not delivered" in r.getMessage())
    assert explained in line and str(errcode) in line and "o-shop…" in line
    assert UNKNOWN not in caplog.text and "o-shopper" not in line


async def test_wecom_late_replies_go_through_message_send_with_the_agent_id(tmp_path: Path) -> None:
    key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
    platform = Platform("tok", key, "ww-corp")
    wecom = {"kind": "wecom", "app_id": "ww-corp", "encoding_aes_key": key, "agent_id": "1000002",
             "app_secret": "corp-secret", "reply_deadline_s": 0.2}
    async with FakeLlm() as llm, FakeWeChatApi(apps={"ww-corp": "corp-secret"}) as api, \
            hub_with(tmp_path, api, llm, **wecom) as (client, _hub):
        llm.stall(0.3)
        query, body = platform.xml_envelope(text_xml(UNKNOWN, "801", user="zhangsan").decode())
        response = await client.post(f"/wechat/callback?{query}", data=body)
        assert await response.text() == "success"
        await until(lambda: len(api.sent) == 1)
        (sent,) = api.sent
        assert (sent.api, sent.touser, sent.body["agentid"]) == ("wecom", "zhangsan", 1000002)
        assert len(api.calls("/cgi-bin/gettoken")) == 1


async def test_a_turn_that_could_not_be_saved_gets_503_and_the_retry_is_answered_once(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    async with CountingProxy(private_redis.port) as line, FakeWeChatApi() as api, \
            hub_with(tmp_path, api, redis_url=f"redis://127.0.0.1:{line.port}/0") as (client, _hub):
        assert (await post(client, text_xml("你好", "901")))[0] == 200  # connections and scripts are ready
        line.cut_after(1)  # the turn opens (claims the MsgId), then the line drops before it is saved
        status, _, _ = await post(client, text_xml("谢谢", "902"))
        assert status == 503, "nothing reached the shopper: WeChat must retry"
        line.restore()
        status, body, _ = await post(client, text_xml("谢谢", "902"))
        assert status == 200 and parse_xml(body)["Content"], "the claim was released: the retry is answered"
        status, body, _ = await post(client, text_xml("谢谢", "902"))
        assert (status, body) == (200, "success")
        assert api.sent == []


async def test_reply_text_cannot_break_out_of_the_passive_xml(tmp_path: Path) -> None:
    nasty = "价格是]]><MsgType>image</MsgType><Content>0元"
    async with FakeLlm() as llm, FakeWeChatApi() as api, hub_with(tmp_path, api, llm,
                                                                  reply_deadline_s=2.0) as (client, _hub):
        llm.script(nasty)
        _, body, _ = await post(client, text_xml(UNKNOWN, "1001"))
        reply = parse_xml(body)
        assert reply["MsgType"] == "text" and reply["Content"] == nasty


async def test_after_a_refusal_the_remaining_parts_are_not_attempted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    long_answer = "退货需在签收后七天内申请，商品需保持完好。" * 300  # one passive part, several more by API
    async with FakeLlm() as llm, FakeWeChatApi() as api, hub_with(tmp_path, api, llm,
                                                                  reply_deadline_s=3.0) as (client, _hub):
        llm.script(long_answer)
        api.fail(CUSTOM_SEND, 45047)
        status, body, _ = await post(client, text_xml(UNKNOWN, "1101"))
        assert status == 200 and parse_xml(body)["Content"]
        await until(lambda: len(api.calls(CUSTOM_SEND)) == 1)
        await asyncio.sleep(0.3)
        assert len(api.calls(CUSTOM_SEND)) == 1 and api.sent == []
    assert "45047" in caplog.text
