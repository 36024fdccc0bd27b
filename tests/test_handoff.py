"""The hand-over state machine, the emotion lexicon, priorities, and the desk store on memory and on Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from core.agent_queue import DeskStore, MemoryDesk, RedisDesk
from core.emotion import read_emotion
from core.handoff import (
    IDLE,
    QUEUE_TIMEOUT,
    HandoffConflict,
    claim,
    expiry,
    is_active,
    release,
    request_handoff,
    resolve,
)
from core.profiles import VIP, priority, priority_now, rank
from core.sessions import HandoffState, Session
from core.tickets import Ticket, TicketEvent, TicketState
from tests.conftest import REDIS_URL

# -- the state machine ------------------------------------------------------------------------------


def test_bot_queued_agent_and_back() -> None:
    s = Session("web:ann")
    assert not is_active(s)
    assert request_handoff(s, "human_agent", 10.0)
    assert s.handoff.state == HandoffState.QUEUED and s.handoff.reason == "human_agent" and is_active(s)
    assert not request_handoff(s, "complaint", 11.0), "already queued: nothing changes"
    assert s.handoff.reason == "human_agent"
    claim(s, "alice", 12.0)
    assert s.handoff.state == HandoffState.AGENT and s.handoff.agent_id == "alice" and is_active(s)
    release(s, "alice", 13.0)
    assert s.handoff.state == HandoffState.BOT and s.handoff.agent_id is None and not is_active(s)


def test_resolved_is_closed_and_can_be_queued_again() -> None:
    s = Session("web:ann")
    request_handoff(s, "complaint", 1.0)
    claim(s, "alice", 2.0)
    resolve(s, "alice", 3.0, "refunded")
    assert s.handoff.state == HandoffState.CLOSED and not is_active(s)
    assert request_handoff(s, "human_agent", 4.0)
    assert s.handoff.state == HandoffState.QUEUED


def test_one_claim_wins_and_only_the_holder_acts() -> None:
    s = Session("web:ann")
    with pytest.raises(HandoffConflict):
        claim(s, "alice", 1.0)  # nothing to claim
    request_handoff(s, "human_agent", 1.0)
    claim(s, "alice", 2.0)
    with pytest.raises(HandoffConflict, match="alice"):
        claim(s, "bob", 3.0)
    with pytest.raises(HandoffConflict):
        release(s, "bob", 3.0)
    with pytest.raises(HandoffConflict):
        resolve(s, "bob", 3.0, "not mine")
    release(s, "alice", 4.0)
    with pytest.raises(HandoffConflict):
        release(s, "alice", 5.0)  # already back with the bot


def test_queued_conversations_may_be_released_or_resolved_by_any_agent() -> None:
    s = Session("web:ann")
    request_handoff(s, "human_agent", 1.0)
    resolve(s, "bob", 2.0, "spam")
    assert s.handoff.state == HandoffState.CLOSED


def test_unclaimed_and_idle_hand_overs_run_out() -> None:
    s = Session("web:ann")
    request_handoff(s, "human_agent", 100.0)
    assert expiry(s, 100.0 + 900, queue_timeout_s=900, idle_release_s=600) is None
    assert expiry(s, 100.0 + 901, queue_timeout_s=900, idle_release_s=600) == QUEUE_TIMEOUT
    claim(s, "alice", 200.0)
    s.handoff.last_activity = 500.0  # a message either way
    assert expiry(s, 1100.0, queue_timeout_s=900, idle_release_s=600) is None
    assert expiry(s, 1101.0, queue_timeout_s=900, idle_release_s=600) == IDLE


def test_the_handoff_survives_serialization() -> None:
    s = Session("web:ann")
    request_handoff(s, "emotion", 1.0)
    claim(s, "alice", 2.0)
    s.handoff.ticket_id, s.handoff.channel, s.handoff.user_id, s.handoff.chat_id = "t1", "telegram", "42", "42"
    back = Session.from_bytes("web:ann", s.to_bytes())
    assert back.handoff == s.handoff
    old = Session.from_bytes("web:ann", b'{"handoff": {"state": "queued", "since": 5.0, "reason": "x"}}')
    assert old.handoff.state == HandoffState.QUEUED and old.handoff.ticket_id is None, "sessions saved before"


# -- emotion ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "差评！", "我要投诉你们", "什么垃圾东西", "服务太差了", "你们是骗子吧",
    "this is terrible", "worst service ever", "I want to complain", "what a scam",
    "ふざけるな", "最悪です", "本当にひどい対応ですね",
    "سيء جدا", "خدمة سيئة", "هذا احتيال",
])
def test_negative_words_in_four_languages(text: str) -> None:
    assert read_emotion(text).intensity >= 0.5, text


@pytest.mark.parametrize("text", [
    "不差", "质量不差", "一点也不差", "不是很差", "差不多吧", "我在出差", "还不错",
    "not bad", "not bad at all", "it wasn't terrible", "no complaints", "badly needed",
    "ひどくない", "最悪じゃないです", "怒ってないです",
    "ليس سيئا", "ليست سيئة",
    "你好", "where is my order", "注文はどこですか", "أين طلبي",
])
def test_negated_or_neutral_words_are_not_negative(text: str) -> None:
    assert read_emotion(text).intensity == 0.0, (text, read_emotion(text))


def test_intensifiers_and_exclamations_raise_the_intensity() -> None:
    plain, strong = read_emotion("bad service"), read_emotion("really bad service!!")
    assert 0 < plain.intensity < strong.intensity <= 1.0
    assert read_emotion("I want to complain, this is a scam!!").intensity == 1.0


# -- priority ---------------------------------------------------------------------------------------


def test_priority_grows_with_emotion_tier_and_order_value() -> None:
    calm = priority(0.0, "regular", 0.0, "human_agent")
    assert priority(0.8, "regular", 0.0, "emotion") > calm
    assert priority(0.0, VIP, 0.0, "human_agent") > calm
    assert priority(0.0, "regular", 5000.0, "human_agent") > priority(0.0, "regular", 50.0, "human_agent") > calm


def test_the_queue_rank_orders_by_priority_now_including_waiting_time() -> None:
    # A calm shopper waiting 20 minutes overtakes an upset one who just arrived; the rank never needs updating.
    tickets = {"calm-early": (10.0, 0.0), "upset-late": (40.0, 1200.0), "vip-later": (45.0, 1300.0)}
    for now in (1300.0, 2000.0, 9000.0):
        by_rank = sorted(tickets, key=lambda t: -rank(*tickets[t]))
        by_now = sorted(tickets, key=lambda t: -priority_now(tickets[t][0], tickets[t][1], now))
        assert by_rank == by_now
    assert priority_now(10.0, 0.0, 1200.0) == 50.0


# -- the desk store ---------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def desk_store(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[DeskStore]:
    if request.param == "memory":
        yield MemoryDesk()
        return
    client = aioredis.Redis.from_url(REDIS_URL)
    yield RedisDesk(client, redis_prefix)
    await client.aclose()


def ticket(ticket_id: str, customer: str = "web:ann", opened: float = 1.0) -> Ticket:
    return Ticket(ticket_id, customer, opened, "human_agent", "zh-CN", "web", "转人工")


async def test_tickets_keep_their_history(desk_store: DeskStore) -> None:
    first, second = ticket("t1"), ticket("t2", opened=2.0)
    await desk_store.save_ticket(first, new=True)
    await desk_store.save_ticket(second, new=True)
    second.state, second.agent_id = TicketState.CLAIMED, "alice"
    await desk_store.save_ticket(second)
    await desk_store.add_event("t2", TicketEvent(3.0, "claimed", "alice"))
    await desk_store.add_event("t2", TicketEvent(4.0, "agent", "alice", "您好", "web"))
    loaded = await desk_store.ticket("t2")
    assert loaded is not None and loaded.state == TicketState.CLAIMED and loaded.agent_id == "alice"
    assert [t.id for t in await desk_store.tickets_of("web:ann")] == ["t2", "t1"], "newest first"
    assert [(e.kind, e.text) for e in await desk_store.events("t2")] == [("claimed", ""), ("agent", "您好")]
    assert await desk_store.ticket("nope") is None


async def test_the_queue_is_ordered_and_one_dequeue_wins(desk_store: DeskStore) -> None:
    await desk_store.enqueue("low", 1.0)
    await desk_store.enqueue("high", 9.0)
    await desk_store.enqueue("mid", 5.0)
    assert await desk_store.queued() == ["high", "mid", "low"]
    results = await asyncio.gather(desk_store.dequeue("mid"), desk_store.dequeue("mid"))
    assert sorted(results) == [False, True]
    await desk_store.hold("a", 20.0)
    await desk_store.hold("b", 10.0)
    assert await desk_store.held() == [("b", 10.0), ("a", 20.0)], "quietest first"
    await desk_store.unhold("b")
    assert await desk_store.held() == [("a", 20.0)]


async def test_live_events_reach_subscribers(desk_store: DeskStore) -> None:
    stream = desk_store.subscribe()
    assert await anext(stream) == {"type": "ready"}
    await desk_store.publish({"type": "message", "text": "有人吗"})
    assert await asyncio.wait_for(anext(stream), 2) == {"type": "message", "text": "有人吗"}
    await stream.aclose()


async def test_resolutions_are_kept_newest_first(desk_store: DeskStore) -> None:
    await desk_store.push_resolution({"ticket": "t1", "label": "invoice"})
    await desk_store.push_resolution({"ticket": "t2", "label": None})
    assert [r["ticket"] for r in await desk_store.list_resolutions()] == ["t2", "t1"]
