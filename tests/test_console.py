"""The agent console over HTTP and WebSocket: who gets in (nobody without a valid agent token), and what
agents see and do: the queue, a conversation with profile, history and suggestions, claim, reply, release,
resolve."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.config import ConfigError
from tests.conftest import REDIS_URL, hub_client, make_config, say

ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789ab"
AGENTS = {"tokens": {"alice": ALICE, "bob": BOB, "carol": ""}}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["memory", "redis"])
async def console(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> AsyncIterator[
        tuple[TestClient, Hub]]:
    redis = {"url": REDIS_URL} if request.param == "redis" else {}
    async with hub_client(make_config(tmp_path, redis=redis, agents=AGENTS), prefix=redis_prefix) as pair:
        yield pair


async def escalate(client: TestClient, user: str, text: str = "转人工", **extra: Any) -> str:
    assert (await say(client, user, text, **extra))["route"] == "handoff"
    queue = await (await client.get("/console/api/queue", headers=auth(ALICE))).json()
    return next(t["id"] for t in queue["queue"] if t["customer_id"] == f"web:{user}")


# -- access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/console/", "/console/api/queue", "/console/api/me", "/console/static/console.js",
                                  "/console/api/tickets/abc"])
async def test_nothing_is_served_without_a_valid_token(console: tuple[TestClient, Hub], path: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    client, _ = console
    with caplog.at_level(logging.WARNING, logger="kefu.console"):
        anonymous = await client.get(path)
        wrong = await client.get(path, headers=auth("x" * 24))
        empty_agent = await client.get(path, headers=auth(""))  # carol's empty token signs nobody in
    assert anonymous.status == 401 and wrong.status == 403 and empty_agent.status == 401
    for response in (anonymous, wrong):
        body = await response.text()
        assert "console.js" not in body and "queue" not in body.lower()
    lines = [r.getMessage() for r in caplog.records]
    assert any("401" in line and path in line for line in lines) and any("403" in line for line in lines)
    assert not any(ALICE in line or "x" * 24 in line for line in lines), "tokens never reach the logs"


async def test_actions_and_the_socket_need_a_token_too(console: tuple[TestClient, Hub]) -> None:
    client, _ = console
    ticket = await escalate(client, "ann")
    for action in ("claim", "release", "resolve", "reply"):
        response = await client.post(f"/console/api/tickets/{ticket}/{action}", json={"text": "hi", "reason": "x"})
        assert response.status == 401
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/console/ws")
    assert refused.value.status == 401
    with pytest.raises(WSServerHandshakeError) as forged:
        await client.ws_connect("/console/ws", headers=auth(ALICE) | {"Origin": "https://evil.example"})
    assert forged.value.status == 403, "a cross-site page cannot use an agent's cookie"


async def test_signing_in_sets_a_cookie_that_opens_the_console(console: tuple[TestClient, Hub]) -> None:
    client, _ = console
    page = await client.get("/console/")
    assert page.status == 401 and 'name="token"' in await page.text(), "the 401 is the sign-in form"
    bad = await client.post("/console/login", data={"token": "nope"}, allow_redirects=False)
    assert bad.status == 403
    good = await client.post("/console/login", data={"token": ALICE}, allow_redirects=False)
    assert good.status == 303 and good.headers["Location"] == "/console/"
    cookie = good.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    page = await client.get("/console/")
    assert page.status == 200 and "console.js" in await page.text()
    me = await (await client.get("/console/api/me")).json()
    assert me["agent"] == "alice" and "invoice" in me["intents"]
    ws = await client.ws_connect("/console/ws")
    assert (await ws.receive_json())["type"] == "hello"
    await ws.close()
    cross = await client.post("/console/api/tickets/x/claim", headers={"Origin": "https://evil.example"})
    assert cross.status == 403
    await client.post("/console/logout", allow_redirects=False)
    client.session.cookie_jar.clear()
    assert (await client.get("/console/api/me")).status == 401


def test_agent_tokens_are_checked_when_the_config_is_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too short"):
        make_config(tmp_path, agents={"tokens": {"alice": "short"}})
    with pytest.raises(ConfigError, match="share a token"):
        make_config(tmp_path, agents={"tokens": {"alice": ALICE, "bob": ALICE}})
    with pytest.raises(ConfigError, match="agent id"):
        make_config(tmp_path, agents={"tokens": {"a b": ALICE}})
    assert make_config(tmp_path, agents=AGENTS).agents.tokens == {"alice": ALICE, "bob": BOB}


# -- working a hand-over ----------------------------------------------------------------------------


async def test_an_agent_claims_replies_and_resolves(console: tuple[TestClient, Hub]) -> None:
    client, _ = console
    ws = await client.ws_connect("/console/ws", headers=auth(BOB))
    assert (await ws.receive_json())["type"] == "hello"
    await say(client, "james_li_5688", "有优惠券吗")  # a price question before the hand-over
    ticket = await escalate(client, "james_li_5688", "你们服务太差了，我要投诉！")
    assert (await ws.receive_json()) == {"type": "queue", "ticket": ticket, "state": "queued"}

    await say(client, "james_li_5688", "人呢？")
    live = await asyncio.wait_for(ws.receive_json(), 2)
    assert live["type"] == "message" and live["ticket"] == ticket and live["text"] == "人呢？"
    assert live["kind"] == "shopper" and live["channel"] == "web"

    view = await (await client.get(f"/console/api/tickets/{ticket}", headers=auth(ALICE))).json()
    assert view["state"] == "queued" and view["ticket"]["reason"] == "complaint"
    profile = view["ticket"]["profile"]
    assert profile["store_user_id"] == "james_li_5688" and profile["tier"] == "regular"
    assert "price-sensitive" in profile["tags"]
    assert [o["order_id"] for o in profile["orders"]][:1] == ["#W3638028"]
    assert [e["text"] for e in view["transcript"] if e["role"] == "shopper"][-2:] == [
        "你们服务太差了，我要投诉！", "人呢？"]
    assert view["suggestions"][0].startswith("您好，我是客服 alice") and len(view["suggestions"]) >= 3

    claims = await asyncio.gather(client.post(f"/console/api/tickets/{ticket}/claim", headers=auth(ALICE)),
                                  client.post(f"/console/api/tickets/{ticket}/claim", headers=auth(BOB)))
    assert sorted(r.status for r in claims) == [200, 409], "one claim wins"
    holder, other = (ALICE, BOB) if claims[0].status == 200 else (BOB, ALICE)
    refused = await client.post(f"/console/api/tickets/{ticket}/reply", headers=auth(other), json={"text": "hi"})
    assert refused.status == 409
    sent = await client.post(f"/console/api/tickets/{ticket}/reply", headers=auth(holder),
                             json={"text": "您好，马上为您处理"})
    assert sent.status == 200
    assert (await say(client, "james_li_5688", "好的"))["route"] == "held"
    bad_label = await client.post(f"/console/api/tickets/{ticket}/resolve", headers=auth(holder),
                                  json={"reason": "ok", "label": "not_an_intent"})
    assert bad_label.status == 400
    done = await client.post(f"/console/api/tickets/{ticket}/resolve", headers=auth(holder),
                             json={"reason": "coupon reissued", "label": "promotion_query"})
    assert done.status == 200 and (await done.json())["state"] == "resolved"
    again = await client.post(f"/console/api/tickets/{ticket}/release", headers=auth(holder))
    assert again.status == 409
    assert (await client.get("/console/api/tickets/nope", headers=auth(ALICE))).status == 404

    # A later hand-over shows this one in the shopper's ticket history.
    second = await escalate(client, "james_li_5688")
    view = await (await client.get(f"/console/api/tickets/{second}", headers=auth(ALICE))).json()
    assert [(h["id"], h["state"], h["resolution"]) for h in view["history"]] == [
        (ticket, "resolved", "coupon reissued")]
    kinds = [e["kind"] for e in (await (await client.get(f"/console/api/tickets/{ticket}",
                                                             headers=auth(ALICE))).json())["events"]]
    assert kinds[0] == "opened" and "claimed" in kinds and "agent" in kinds and kinds[-1] == "resolved"
    await ws.close()


async def test_suggestions_speak_the_shoppers_language(console: tuple[TestClient, Hub]) -> None:
    client, _ = console
    ticket = await escalate(client, "yuki", "オペレーターと話したい", locale="ja")
    view = await (await client.get(f"/console/api/tickets/{ticket}", headers=auth(ALICE))).json()
    assert view["ticket"]["locale"] == "ja"
    assert any("ございます" in s for s in view["suggestions"])
    assert view["ticket"]["profile"]["tier"] == "guest"


async def test_the_queue_lists_waiting_and_held_tickets(console: tuple[TestClient, Hub]) -> None:
    client, _ = console
    first = await escalate(client, "ann")
    second = await escalate(client, "bob", "垃圾，我要投诉！！")
    queue = await (await client.get("/console/api/queue", headers=auth(ALICE))).json()
    assert [t["id"] for t in queue["queue"]] == [second, first], "the upset shopper first"
    assert queue["held"] == []
    await client.post(f"/console/api/tickets/{first}/claim", headers=auth(ALICE))
    queue = await (await client.get("/console/api/queue", headers=auth(ALICE))).json()
    assert [t["id"] for t in queue["queue"]] == [second]
    assert [(t["id"], t["agent_id"]) for t in queue["held"]] == [(first, "alice")]
    bad = await client.post(f"/console/api/tickets/{first}/reply", headers=auth(ALICE), data=b"{oops")
    assert bad.status == 400
