"""The session store contract, on MemoryStore and on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from core.identity import Identity, phone_digest
from core.message import ChannelUser
from core.redis_store import RedisStore
from core.sessions import HistoryEntry, LockTimeout, MemoryStore, Session, SessionStore, StoreSettings
from tests.conftest import REDIS_URL, RedisServer
from tests.support.tcp_proxy import CountingProxy

FAST = StoreSettings(lock_ttl_s=5, lock_wait_s=0.3, pending_claim_ttl_s=5, unknown_queue_max=3)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        yield MemoryStore(FAST)
        return
    redis_store = RedisStore.from_url(REDIS_URL, FAST, prefix=redis_prefix)
    yield redis_store
    await redis_store.close()


async def test_a_turn_saves_its_session(store: SessionStore) -> None:
    turn = await store.open_turn("web:ann", "web:m1")
    assert turn is not None and turn.customer_id == "web:ann" and turn.session.history == []
    turn.session.remember(HistoryEntry("shopper", "你好", "web", 1.0), limit=20)
    turn.session.slots["store_user_id"] = "ann_1"
    await store.close_turn(turn, turn.session)

    loaded = await store.load("web:ann")
    assert [h.text for h in loaded.history] == ["你好"]
    assert loaded.slots == {"store_user_id": "ann_1"}


async def test_a_retried_message_is_claimed_once(store: SessionStore) -> None:
    turn = await store.open_turn("web:ann", "web:m1")
    assert turn is not None
    await store.close_turn(turn, turn.session)
    assert await store.open_turn("web:ann", "web:m1") is None
    assert await store.open_turn("web:ann", "web:m2") is not None


async def test_an_abandoned_turn_releases_claim_and_lock(store: SessionStore) -> None:
    turn = await store.open_turn("web:ann", "web:m1")
    assert turn is not None
    turn.session.slots["half"] = "written"
    await store.abandon_turn(turn)

    retry = await store.open_turn("web:ann", "web:m1")
    assert retry is not None, "the platform's retry must be answered"
    assert "half" not in retry.session.slots, "nothing of the failed turn is saved"


async def test_turns_of_one_customer_are_serialized(store: SessionStore) -> None:
    first = await store.open_turn("web:ann", None)
    assert first is not None
    second_task = asyncio.create_task(store.open_turn("web:ann", None))
    await asyncio.sleep(0.05)
    assert not second_task.done(), "the second turn must wait for the lock"
    first.session.slots["n"] = 1
    await store.close_turn(first, first.session)
    second = await asyncio.wait_for(second_task, 1)
    assert second is not None and second.session.slots["n"] == 1


async def test_lock_wait_times_out_and_frees_the_claim(store: SessionStore) -> None:
    holder = await store.open_turn("web:ann", None)
    assert holder is not None
    with pytest.raises(LockTimeout):
        await store.open_turn("web:ann", "web:m9")
    await store.close_turn(holder, holder.session)
    assert await store.open_turn("web:ann", "web:m9") is not None, "a timed-out turn must not keep its claim"


async def test_history_is_bounded(store: SessionStore) -> None:
    turn = await store.open_turn("web:ann", None)
    assert turn is not None
    for i in range(30):
        turn.session.remember(HistoryEntry("shopper", f"q{i}", "web", float(i)), limit=5)
    await store.close_turn(turn, turn.session)
    history = (await store.load("web:ann")).history
    assert [h.text for h in history] == [f"q{i}" for i in range(20, 30)]


async def test_unknown_queue_is_newest_first_and_bounded(store: SessionStore) -> None:
    for i in range(5):
        await store.push_unknown({"text": f"q{i}"})
    assert [item["text"] for item in await store.list_unknown()] == ["q4", "q3", "q2"]


async def test_verified_phone_links_two_channel_users_into_one_conversation(store: SessionStore) -> None:
    identity = Identity(store, history_limit=20)
    app_user, web_user = ChannelUser("mp", "o-123"), ChannelUser("web", "guest-9")
    for user, text, at in ((app_user, "我的订单", 1.0), (web_user, "hello", 2.0)):
        turn = await store.open_turn(user.key, None)
        assert turn is not None
        turn.session.remember(HistoryEntry("shopper", text, user.channel, at), limit=20)
        await store.close_turn(turn, turn.session)

    first = await identity.link_verified_phone(app_user, "+86 138 0013 8000")
    second = await identity.link_verified_phone(web_user, "13800138000")
    assert first == second == "mp:o-123"
    assert await identity.customer_of(web_user) == "mp:o-123"

    turn = await store.open_turn(web_user.key, None)
    assert turn is not None and turn.customer_id == "mp:o-123"
    assert [h.text for h in turn.session.history] == ["我的订单", "hello"]
    await store.close_turn(turn, turn.session)

    # A third channel user linked to the web user lands in the same customer too.
    third = ChannelUser("tg", "42")
    assert await identity.link(web_user, third) == "mp:o-123"
    assert await store.resolve(third.key) == "mp:o-123"


def test_phone_digest_normalizes_and_hides_the_number() -> None:
    assert phone_digest("+86 138-0013-8000") == phone_digest("13800138000")
    assert "13800138000" not in phone_digest("13800138000")
    with pytest.raises(ValueError):
        phone_digest("12")


async def test_redis_turn_is_one_round_trip_each_way(private_redis: RedisServer) -> None:
    async with CountingProxy(private_redis.port) as proxy:
        store = RedisStore.from_url(f"redis://127.0.0.1:{proxy.port}/0", FAST)
        warm = await store.open_turn("web:warm", None)  # connects and loads the scripts
        assert warm is not None
        await store.close_turn(warm, warm.session)

        before = proxy.requests
        turn = await store.open_turn("web:ann", "web:m1")
        assert turn is not None
        after_open = proxy.requests
        await store.close_turn(turn, turn.session)
        assert after_open - before == 1, "open = claim + identity + lock + load in one round trip"
        assert proxy.requests - after_open == 1, "close = save + unlock + claim done in one round trip"
        await store.close()


async def test_history_is_appended_turn_by_turn_and_stays_bounded(store: SessionStore) -> None:
    for i in range(25):
        turn = await store.open_turn("web:ann", None)
        assert turn is not None
        turn.session.remember(HistoryEntry("shopper", f"q{i}", "web", float(i)), limit=FAST.history_turns)
        turn.session.remember(HistoryEntry("bot", f"a{i}", "web", float(i), "greet"), limit=FAST.history_turns)
        await store.close_turn(turn, turn.session)
    history = (await store.load("web:ann")).history
    assert len(history) == 2 * FAST.history_turns
    assert (history[0].text, history[-1].text, history[-1].intent) == ("q5", "a24", "greet")


def test_a_loaded_session_sends_only_its_new_entries() -> None:
    rows = [orjson.dumps(["shopper", f"q{i}", "web", float(i), None]) for i in range(40)]
    session = Session.from_parts("web:ann", orjson.dumps({"slots": {"a": 1}}), rows)
    session.remember(HistoryEntry("shopper", "new", "web", 50.0), limit=20)
    head, fresh, rewrite = session.to_parts()
    assert (orjson.loads(head)["slots"], [orjson.loads(r)[1] for r in fresh], rewrite) == ({"a": 1}, ["new"], False)
    assert [e.text for e in session.history][:2] == ["q1", "q2"], "bounded like the store's list"


async def test_a_session_stored_whole_is_read_then_kept_in_the_list_layout(redis_prefix: str) -> None:
    store = RedisStore.from_url(REDIS_URL, FAST, prefix=redis_prefix)
    whole = {"history": [{"role": "shopper", "text": "你好", "channel": "web", "at": 1.0, "intent": None}],
             "slots": {"a": 1}, "locale": "zh-CN", "handoff": {"state": "bot"}, "pending": None,
             "low_confidence_streak": 0, "updated_at": 1.0}
    await store.client.set(f"{redis_prefix}s:web:ann", orjson.dumps(whole))  # as sessions were stored before
    turn = await store.open_turn("web:ann", None)
    assert turn is not None and [h.text for h in turn.session.history] == ["你好"]
    turn.session.remember(HistoryEntry("bot", "您好", "web", 2.0, "greet"), limit=20)
    await store.close_turn(turn, turn.session)
    assert b"history" not in await store.client.get(f"{redis_prefix}s:web:ann")
    assert await store.client.llen(f"{redis_prefix}h:web:ann") == 2
    loaded = await store.load("web:ann")
    assert ([h.text for h in loaded.history], loaded.slots, loaded.locale) == (["你好", "您好"], {"a": 1}, "zh-CN")
    await store.close()
