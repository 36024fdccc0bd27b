"""Hand-overs through the whole hub: triggers, priority, silence while queued or held (also under concurrent
messages on two channels), agent actions, idle release, and a restart with Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.app import Hub
from core.message import ChannelUser
from core.sessions import HandoffState
from core.tickets import TicketState
from tests.conftest import REDIS_URL, hub_client, make_config, say
from tests.support.fake_telegram_api import FakeTelegram, Updates
from tests.test_telegram_webhook import telegram_hub


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def desk_hub(tmp_path: Path, prefix: str, store: str, clock: Clock | None = None,
                   **sections: Any) -> AsyncIterator[tuple[TestClient, Hub]]:
    """The whole hub (app started, so the desk's event pump and sweeper run) on memory or Redis."""
    redis = {"url": REDIS_URL} if store == "redis" else {}
    async with hub_client(make_config(tmp_path, redis=redis, **sections), prefix, clock or time.time) as served:
        yield served


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def ticket_of(hub: Hub, customer: str) -> Any:
    session = await hub.store.load(customer)
    assert session.handoff.ticket_id, f"{customer} has no hand-over"
    ticket = await hub.engine.desk.store.ticket(session.handoff.ticket_id)
    assert ticket is not None
    return ticket


# -- triggers ---------------------------------------------------------------------------------------


async def test_explicit_requests_and_complaints_hand_over(tmp_path: Path, redis_prefix: str, store: str) -> None:
    async with desk_hub(tmp_path, redis_prefix, store) as (client, hub):
        zh = await say(client, "ann", "转人工")
        assert zh["route"] == "handoff" and "人工客服" in zh["replies"][0]["text"]
        en = await say(client, "bob", "human please", locale="en")
        assert en["route"] == "handoff" and en["replies"][0]["text"].startswith("I'm passing you to a human")
        angry = await say(client, "cai", "我要投诉你们")
        assert angry["route"] == "handoff" and "抱歉" in angry["replies"][0]["text"]
        reasons = {c: (await ticket_of(hub, f"web:{c}")).reason for c in ("ann", "bob", "cai")}
        assert reasons == {"ann": "human_agent", "bob": "human_agent", "cai": "complaint"}


async def test_negative_emotion_hands_over_even_with_a_confident_intent(tmp_path: Path, redis_prefix: str,
                                                                      store: str) -> None:
    async with desk_hub(tmp_path, redis_prefix, store) as (client, hub):
        calm = await say(client, "dan", "my order was not bad, where is it?", locale="en")
        assert calm["route"] == "skill", "negated: not upset"
        upset = await say(client, "eve", "where is my order?? this is terrible!!", locale="en")
        assert upset["route"] == "handoff"
        assert upset["replies"][0]["text"].startswith("I'm sorry about this.")
        ticket = await ticket_of(hub, "web:eve")
        assert ticket.reason == "emotion" and ticket.emotion >= 0.8
        ja = await say(client, "fumi", "ふざけるな、いつ届くんですか", locale="ja")
        ar = await say(client, "gamal", "الخدمة سيئة جدا", locale="ar")
        assert ja["route"] == ar["route"] == "handoff"


async def test_low_confidence_twice_in_a_row_hands_over(tmp_path: Path, redis_prefix: str, store: str) -> None:
    async with desk_hub(tmp_path, redis_prefix, store) as (client, hub):
        first = await say(client, "hal", "今天天气怎么样")
        assert first["route"] == "fallback"
        second = await say(client, "hal", "你们老板是谁")
        assert second["route"] == "handoff"
        ticket = await ticket_of(hub, "web:hal")
        assert ticket.reason == "low_confidence"
        assert ticket.unanswered == ["今天天气怎么样"] and ticket.question == "你们老板是谁"
        # A confident answer in between starts the count again.
        await say(client, "ivy", "今天天气怎么样")
        await say(client, "ivy", "你好")
        assert (await say(client, "ivy", "你们老板是谁"))["route"] == "fallback"


async def test_vip_shoppers_get_a_person_as_soon_as_the_bot_is_unsure(tmp_path: Path, redis_prefix: str,
                                                                    store: str) -> None:
    sections = {"escalation": {"vip_users": ["james_li_5688"]}}
    async with desk_hub(tmp_path, redis_prefix, store, **sections) as (client, hub):
        vip = await say(client, "james_li_5688", "今天天气怎么样")
        assert vip["route"] == "handoff"
        ticket = await ticket_of(hub, "web:james_li_5688")
        assert ticket.reason == "vip" and ticket.tier == "vip"
        assert ticket.profile["name"] == "James Li" and ticket.profile["orders"]
        # By spend: fatima_muller_6713 spent about 20,000 in the demo store.
        rich = await say(client, "fatima_muller_6713", "what is the meaning of life", locale="en")
        assert rich["route"] == "handoff"
        assert (await ticket_of(hub, "web:fatima_muller_6713")).tier == "vip"
        # A regular shopper's unknown question is not handed over at once.
        regular = await say(client, "noah_brown_6181", "今天天气怎么样")
        assert regular["route"] == "fallback"


async def test_the_queue_is_ordered_by_priority(tmp_path: Path, redis_prefix: str, store: str) -> None:
    sections = {"escalation": {"vip_users": ["james_li_5688"]}}
    async with desk_hub(tmp_path, redis_prefix, store, **sections) as (client, hub):
        await say(client, "calm-guest", "转人工")
        await say(client, "james_li_5688", "转人工")
        await say(client, "angry-guest", "垃圾服务，我要投诉！！")
        queue = await hub.engine.desk.queue()
        order = [t["customer_id"] for t in queue["queue"]]
        assert order == ["web:angry-guest", "web:james_li_5688", "web:calm-guest"]
        assert all(t["waiting_s"] >= 0 for t in queue["queue"])
        first = queue["queue"][0]
        assert first["priority_now"] >= first["priority"] and first["emotion"] >= 0.9


# -- held conversations -----------------------------------------------------------------------------


async def test_no_bot_reply_while_queued_or_held_and_the_bot_returns_after(tmp_path: Path, redis_prefix: str,
                                                                          store: str) -> None:
    async with desk_hub(tmp_path, redis_prefix, store) as (client, hub):
        desk = hub.engine.desk
        await say(client, "ann", "转人工")
        for text in ("你好？", "我的订单到哪了", "human please", "转人工"):
            assert await say(client, "ann", text) == {"replies": [], "route": "held"}, "queued: silence"
        ticket = await ticket_of(hub, "web:ann")
        await desk.claim(ticket.id, "alice")
        assert (await hub.store.load("web:ann")).handoff.state == HandoffState.AGENT
        for text in ("你好", "我的订单到哪了", "今天天气怎么样"):
            assert await say(client, "ann", text) == {"replies": [], "route": "held"}, "held: silence"
        # No web socket of ann's is open here; on Redis another hub process might hold one, so it is relayed.
        assert await desk.reply(ticket.id, "alice", "您好，我是客服小李") is (store == "redis")
        events = [(e.kind, e.by, e.text) for e in await desk.store.events(ticket.id)]
        shopper = [text for kind, _, text in events if kind == "shopper"]
        assert shopper == ["你好？", "我的订单到哪了", "human please", "转人工", "你好", "我的订单到哪了",
                           "今天天气怎么样"]
        assert ("agent", "alice", "您好，我是客服小李") in events
        await desk.release(ticket.id, "alice")
        back = await say(client, "ann", "你好")
        assert back["route"] == "skill" and "您好" in back["replies"][0]["text"]
        session = await hub.store.load("web:ann")
        roles = [(h.role, h.text) for h in session.history]
        assert ("agent", "您好，我是客服小李") in roles, "the transcript keeps the agent's words"
        assert (await desk.store.ticket(ticket.id)).state == TicketState.RELEASED


async def test_idle_held_and_unclaimed_conversations_return_to_the_bot(tmp_path: Path, redis_prefix: str,
                                                                      store: str) -> None:
    clock = Clock()
    agents = {"idle_release_s": 600, "queue_timeout_s": 900}
    async with desk_hub(tmp_path, redis_prefix, store, clock, agents=agents) as (client, hub):
        desk = hub.engine.desk
        await say(client, "ann", "转人工")
        ticket = await ticket_of(hub, "web:ann")
        await desk.claim(ticket.id, "alice")
        clock.advance(599)
        assert (await say(client, "ann", "还在吗"))["route"] == "held"
        clock.advance(599)  # 599 s after the last message: still held
        assert await desk.sweep() == 0
        clock.advance(2)
        # Nobody wrote for 601 s: the shopper's next message goes to the bot.
        answer = await say(client, "ann", "你好")
        assert answer["route"] == "skill"
        assert (await desk.store.ticket(ticket.id)).state == TicketState.EXPIRED

        # The sweep does the same without waiting for a message, and tells the shopper.
        await say(client, "bob", "转人工")
        waiting = await ticket_of(hub, "web:bob")
        clock.advance(901)
        assert await desk.sweep() == 1
        session = await hub.store.load("web:bob")
        assert session.handoff.state == HandoffState.BOT and session.handoff.reason == "queue timeout"
        assert "人工客服" in session.history[-1].text
        assert (await desk.store.ticket(waiting.id)).state == TicketState.EXPIRED
        assert await desk.store.queued() == []


async def test_two_channels_of_one_shopper_get_no_bot_reply_under_concurrent_messages(
    tmp_path: Path, redis_prefix: str
) -> None:
    updates = Updates()
    async with FakeTelegram(per_chat_per_second=50, per_group_per_minute=1000, global_per_second=200) as tg, \
            telegram_hub(tmp_path, tg, redis_prefix, redis={"url": REDIS_URL}) as first, \
            telegram_hub(tmp_path, tg, redis_prefix, redis={"url": REDIS_URL}) as second:
        # Two hubs on one Redis; the shopper's Telegram account and web chat are one customer.
        customer = await first.hub.engine.identity.link(ChannelUser("telegram", "4242"), ChannelUser("web", "ann"))
        assert await first.post(updates.text(4242, "human please")) == 200
        await first.settle()
        assert len(tg.sent(4242)) == 1, "the hand-over message"
        desk = second.hub.engine.desk
        events: list[dict[str, Any]] = []

        async def listen() -> None:
            with desk.listen() as queue:
                while True:
                    events.append(await queue.get())

        listener = asyncio.create_task(listen())

        async def web(n: int, hub_client: TestClient) -> dict[str, Any]:
            response = await hub_client.post("/webchat/api/messages", json={"user_id": "ann", "text": f"web {n}"})
            return dict(await response.json())

        async def burst() -> None:
            webs = [web(n, (first.client, second.client)[n % 2]) for n in range(8)]
            tgs = [(first, second)[n % 2].post(updates.text(4242, f"tg {n}")) for n in range(8)]
            results = await asyncio.gather(*webs, *tgs)
            assert all(r == {"replies": [], "route": "held"} for r in results[:8]), results[:8]
            assert results[8:] == [200] * 8

        await burst()  # queued
        # The agent's messages go to the channel the shopper last wrote from: Telegram, from here on.
        assert await first.post(updates.text(4242, "tg last")) == 200
        ticket = await ticket_of(first.hub, customer)
        await desk.claim(ticket.id, "alice")
        await burst()  # held
        assert await first.post(updates.text(4242, "anyone?")) == 200
        assert await desk.reply(ticket.id, "alice", "Hi, Alice here. Let me check.") is True
        await first.settle()
        await second.settle()
        sent = [c.text for c in tg.sent(4242)]
        assert len(sent) == 3, sent
        assert sent[1].startswith("A customer service colleague has joined") and sent[2] == "Hi, Alice here. " \
            "Let me check.", "the hand-over message, the agent's arrival and words: never a bot answer"
        expected = [f"web {n}" for n in range(8)] * 2 + [f"tg {n}" for n in range(8)] * 2 + ["tg last", "anyone?"]
        shopper_texts = [e.text for e in await desk.store.events(ticket.id) if e.kind == "shopper"]
        assert sorted(shopper_texts) == sorted(expected)
        await asyncio.sleep(0.05)
        live = [e["text"] for e in events if e.get("type") == "message" and e.get("kind") == "shopper"]
        assert sorted(live) == sorted(expected), "every shopper message reached the consoles of the other hub"
        listener.cancel()


async def test_a_held_conversation_survives_a_hub_restart(tmp_path: Path, redis_prefix: str) -> None:
    async with desk_hub(tmp_path, redis_prefix, "redis") as (client, hub):
        await say(client, "ann", "转人工")
        ticket = await ticket_of(hub, "web:ann")
        await hub.engine.desk.claim(ticket.id, "alice")
    async with desk_hub(tmp_path, redis_prefix, "redis") as (client, hub):
        assert await say(client, "ann", "还在吗？") == {"replies": [], "route": "held"}
        queue = await hub.engine.desk.queue()
        assert [t["id"] for t in queue["held"]] == [ticket.id] and queue["held"][0]["agent_id"] == "alice"
        view = await hub.engine.desk.conversation(ticket.id, "alice")
        assert view["state"] == "agent" and view["transcript"][-1]["text"] == "还在吗？"
        await hub.engine.desk.release(ticket.id, "alice")
        assert (await say(client, "ann", "你好"))["route"] == "skill"


async def test_resolutions_feed_the_learning_loop(tmp_path: Path, redis_prefix: str, store: str) -> None:
    async with desk_hub(tmp_path, redis_prefix, store, admin={"token": "op-secret"}) as (client, hub):
        desk = hub.engine.desk
        await say(client, "hal", "能开增值税专票吗")
        await say(client, "hal", "抬头怎么写")
        ticket = await ticket_of(hub, "web:hal")
        await desk.claim(ticket.id, "alice")
        with pytest.raises(ValueError):
            await desk.resolve(ticket.id, "alice", "   ")
        await desk.resolve(ticket.id, "alice", "explained invoice titles", label="invoice")
        session = await hub.store.load("web:hal")
        assert session.handoff.state == HandoffState.CLOSED
        assert (await say(client, "hal", "你好"))["route"] == "skill", "closed: the bot answers again"
        response = await client.get("/api/resolutions", headers={"Authorization": "Bearer op-secret"})
        items = (await response.json())["items"]
        assert items[0]["texts"] == ["能开增值税专票吗", "抬头怎么写"] and items[0]["label"] == "invoice"
        history = await desk.store.tickets_of("web:hal")
        assert history[0].state == TicketState.RESOLVED and history[0].resolution == "explained invoice titles"


async def test_a_web_shopper_who_was_away_gets_the_agents_messages_on_return(tmp_path: Path, redis_prefix: str,
                                                                          store: str) -> None:
    async with desk_hub(tmp_path, redis_prefix, store) as (client, hub):
        desk = hub.engine.desk
        await say(client, "kim", "转人工")
        ticket = await ticket_of(hub, "web:kim")
        await desk.claim(ticket.id, "alice")
        # Nobody has the chat open: the message is kept in the transcript, not delivered.
        assert await desk.reply(ticket.id, "alice", "您好，我是客服小李") is (store == "redis")  # relayed in Redis mode
        missed = await (await client.get("/webchat/api/messages", params={"user_id": "kim"})).json()
        assert [(m["from"], m["text"]) for m in missed["messages"]] == [("agent", "您好，我是客服小李")]
        seen = missed["messages"][0]["at"]
        after = await (await client.get("/webchat/api/messages", params={"user_id": "kim", "since": seen})).json()
        assert after["messages"] == []
        # The widget reconnects with the time of the last message it showed, and gets the newer ones as pushes.
        await desk.reply(ticket.id, "alice", "您的订单已经为您加急")
        async with client.ws_connect("/webchat/ws", params={"user_id": "kim", "since": str(seen)}) as ws:
            frame = await ws.receive_json(timeout=5)
            assert frame["type"] == "push" and frame["from"] == "agent" and frame["text"] == "您的订单已经为您加急"
        bad = await client.get("/webchat/api/messages", params={"user_id": "kim", "since": "yesterday"})
        assert bad.status == 400
        assert (await client.get("/webchat/api/messages", params={"user_id": "other"})).status == 200
