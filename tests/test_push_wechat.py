"""WeChat's 48-hour window, through the real Official Account adapter and a local WeChat API: inside the
window a push is a customer-service message; outside it, a template message if one is configured for the
push kind, else the shopper is skipped and counted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from core.app import Hub
from core.push.rules import Skip
from tests.conftest import hub_client, make_config
from tests.support.fake_wechat_api import FakeWeChatApi, Platform
from tests.test_push_rules import JINGAN, SAMPLES, Clock, local

OPENID = "o-near-jingan"
TEMPLATE = {"template_id": "TPL-SAMPLE", "page": "https://shop.example/samples",
            "data": {"first": "{text}", "keyword1": "{store}", "keyword2": "{code}", "remark": "{address}"}}


def xml(user: str, kind: str, body: str, msg_id: str) -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>{body}"
            f"<MsgId>{msg_id}</MsgId></xml>").encode()


@asynccontextmanager
async def wechat_hub(tmp_path: Path, api: FakeWeChatApi, clock: Clock,
                     templates: dict[str, Any]) -> AsyncIterator[tuple[TestClient, Hub]]:
    wechat = {"enabled": True, "token": "tok", "app_id": "wx-app", "app_secret": "app-secret",
              "api_base_url": api.base_url, "reply_deadline_s": 2}
    pushes = {"jobs": [{**SAMPLES, "repeat_after_days": 1}],
              "channels": {"wechat": {"window_hours": 48, "templates": templates}}}
    async with hub_client(make_config(tmp_path, channels={"wechat": wechat}, pushes=pushes), clock=clock) as served:
        yield served


async def say(client: TestClient, body: bytes) -> str:
    response = await client.post("/wechat/callback", params=Platform("tok").plain_query(), data=body)
    assert response.status == 200
    return await response.text()


async def opt_in(client: TestClient) -> None:
    location = (f"<Location_X>{JINGAN[0]}</Location_X><Location_Y>{JINGAN[1]}</Location_Y><Scale>15</Scale>"
                "<Label><![CDATA[静安]]></Label>")
    asked = await say(client, xml(OPENID, "location", location, "m1"))
    assert "1." in asked and "2." in asked  # no buttons on WeChat: numbered options
    assert "30" in await say(client, xml(OPENID, "text", "<Content><![CDATA[1]]></Content>", "m2"))


async def test_outside_the_window_a_template_message_goes_out(tmp_path: Path) -> None:
    clock = Clock(local("Asia/Shanghai", 2026, 5, 6, 11, 0))
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api, clock, {"sample_pickup": TEMPLATE}) as (client, hub):
        await opt_in(client)
        assert hub.pushes is not None
        inside = await hub.pushes.run("samples")
        assert inside.sent == 1
        [message] = api.sent_to(OPENID)
        assert message.api == "custom" and "静安嘉里中心店" in message.body["text"]["content"]

        clock.advance(49 * 3600)  # two days later, noon: the window closed an hour ago
        outside = await hub.pushes.run("samples")
        assert outside.sent == 1
        template = api.sent_to(OPENID)[-1]
        assert template.api == "template" and template.body["template_id"] == "TPL-SAMPLE"
        assert template.body["url"] == "https://shop.example/samples"
        data = {name: field["value"] for name, field in template.body["data"].items()}
        assert data["keyword1"] == "静安嘉里中心店" and len(data["keyword2"]) == 6
        assert "免费" in data["first"] and "Nanjing Road" in data["remark"]


async def test_outside_the_window_without_a_template_the_shopper_is_skipped(tmp_path: Path) -> None:
    clock = Clock(local("Asia/Shanghai", 2026, 5, 6, 11, 0))
    async with FakeWeChatApi() as api, wechat_hub(tmp_path, api, clock, {}) as (client, hub):
        await opt_in(client)
        clock.advance(49 * 3600)
        assert hub.pushes is not None
        report = await hub.pushes.run("samples")
        assert (report.candidates, report.sent, dict(report.skipped)) == (1, 0, {Skip.CHANNEL_WINDOW: 1})
        assert api.sent_to(OPENID) == []
