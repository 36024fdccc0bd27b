"""Two hub processes on one Redis, WeChat delivering every callback four times at once (as its retries
can): exactly one answer reaches the shopper, passively or through the customer-service API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import yaml

from adapters.wechat_common import parse_xml
from tests.conftest import SHARED_DATA, RedisServer, free_port
from tests.support.fake_llm import FakeLlm
from tests.support.fake_wechat_api import FakeWeChatApi, Platform
from tests.support.hubs import start_hub, wait_ready

PLATFORM = Platform("tok")


def text_xml(content: str, msg_id: str, user: str) -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


async def until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


@pytest.fixture
async def setup(tmp_path: Path, private_redis: RedisServer) -> AsyncIterator[tuple[FakeWeChatApi, FakeLlm, list[int]]]:
    async with FakeWeChatApi() as api, FakeLlm() as llm:
        config = {
            "redis": {"url": private_redis.url},
            "demo_store": {"source": str(SHARED_DATA / "retail" / "db.json"), "data_dir": str(tmp_path / "var")},
            "llm": {"base_url": llm.base_url, "api_key": "test-key", "max_retries": 0},
            "channels": {"wechat": {"enabled": True, "token": "tok", "app_id": "wx-app", "app_secret": "app-secret",
                                    "api_base_url": api.base_url}},
            "log_level": "WARNING",
        }
        path = tmp_path / "bot_config.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True))
        ports = [free_port(), free_port()]
        hubs = [start_hub(path, port) for port in ports]
        try:
            for port, hub in zip(ports, hubs, strict=True):
                wait_ready(port, hub)
            yield api, llm, ports
        finally:
            for hub in hubs:
                hub.terminate()
                hub.wait(10)


async def deliver(http: aiohttp.ClientSession, port: int, body: bytes) -> tuple[int, str, float]:
    started = time.perf_counter()
    async with http.post(f"http://127.0.0.1:{port}/wechat/callback", params=PLATFORM.plain_query(),
                         data=body) as response:
        return response.status, await response.text(), time.perf_counter() - started


async def test_four_deliveries_to_two_processes_get_exactly_one_answer(
    setup: tuple[FakeWeChatApi, FakeLlm, list[int]]
) -> None:
    api, llm, (a, b) = setup
    async with aiohttp.ClientSession() as http:
        # Quick turns: one passive reply per message, whichever process took it.
        for n in range(5):
            body = text_xml("你好", f"70{n}", user=f"o-fast-{n}")
            results = await asyncio.gather(*(deliver(http, port, body) for port in (a, b, a, b)))
            assert all(status == 200 for status, _, _ in results)
            answers = [text for _, text, _ in results if text != "success"]
            assert len(answers) == 1, results
            assert parse_xml(answers[0])["ToUserName"] == f"o-fast-{n}"

        # A stalled LLM: every delivery is acknowledged in time, one answer follows through the API.
        llm.stall(1.5)
        body = text_xml("xyzzy plugh", "799", user="o-slow")
        results = await asyncio.gather(*(deliver(http, port, body) for port in (a, b, a, b)))
        assert [r[:2] for r in results] == [(200, "success")] * 4
        assert max(r[2] for r in results) < 0.9
        await until(lambda: bool(api.sent), within=8)
        again = await asyncio.gather(*(deliver(http, port, body) for port in (a, b)))  # late retries
        assert [r[:2] for r in again] == [(200, "success")] * 2
        await asyncio.sleep(0.3)
    assert [(s.touser, s.msgtype) for s in api.sent] == [("o-slow", "text")]
    assert len(api.calls("/cgi-bin/message/custom/send")) == 1
    assert len(llm.requests) == 1, "one turn ran"
