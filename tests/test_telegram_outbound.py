"""Telegram out: rendering and splitting, the flood-limit windows (on a virtual clock), and the queue
against a local Bot API server that answers 429 when a limit is broken."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import AsyncIterator

import pytest
from telegram import Bot

from adapters.telegram.outbox import Outbox, RateLimits, Window
from adapters.telegram.render import (
    CALLBACK_DATA_BYTES,
    TITLE_MARK,
    Outgoing,
    callback_data,
    render_reply,
    split_text,
    text_of_callback,
    utf16_len,
)
from core.message import Attachment, AttachmentKind, Button, ProductCard, Reply
from tests.support.fake_telegram_api import TOKEN, FakeTelegram

# -- splitting and rendering ------------------------------------------------------------------


def test_short_text_is_one_message() -> None:
    assert split_text("  Hello there.  ") == ["Hello there."]
    assert split_text("   ") == []


def test_long_text_splits_at_sentence_ends_under_the_limit() -> None:
    text = " ".join(f"This is sentence {i}, which is long enough to matter!" for i in range(40))
    parts = split_text(text, limit=300)
    assert len(parts) > 1
    assert all(utf16_len(p) <= 300 for p in parts)
    assert all(p.endswith("matter!") for p in parts), "every cut falls after a sentence"
    assert " ".join(parts) == text, "nothing is lost or reordered"


def test_chinese_sentences_split_after_full_stops_without_spaces() -> None:
    text = "您的订单已经发货了。" * 50 + "请耐心等待！"
    parts = split_text(text, limit=95)
    assert all(utf16_len(p) <= 95 for p in parts)
    assert all(p.endswith(("。", "！")) for p in parts)
    assert "".join(parts) == text


def test_one_sentence_longer_than_a_message_is_cut_at_a_space_else_anywhere() -> None:
    words = " ".join(["word"] * 100)
    parts = split_text(words, limit=50)
    assert all(utf16_len(p) <= 50 and not p.startswith(" ") and p.endswith("word") for p in parts)
    assert " ".join(parts) == words
    assert split_text("x" * 120, limit=50) == ["x" * 50, "x" * 50, "x" * 20]


def test_the_limit_counts_utf16_units_like_telegram() -> None:
    text = "😀" * 3000  # 6,000 UTF-16 units: two messages, emoji never cut in half
    parts = split_text(text)
    assert [utf16_len(p) for p in parts] == [4096, 6000 - 4096]
    assert "".join(parts) == text


def test_callback_data_is_the_payload_when_it_fits_else_the_title() -> None:
    assert callback_data(Button("Where is my order?", "Where is my order?")) == "Where is my order?"
    long_payload = "我想查询订单 #W1234567 的物流状态，谢谢"  # 55 bytes: fits
    assert callback_data(Button("查物流", long_payload)) == long_payload
    too_long = long_payload * 2
    data = callback_data(Button("查物流", too_long))
    assert data == TITLE_MARK + "查物流" and text_of_callback(data) == "查物流"
    huge_title = callback_data(Button("标题" * 40, too_long))
    assert len(huge_title.encode()) <= CALLBACK_DATA_BYTES and huge_title.startswith(TITLE_MARK + "标题")
    assert callback_data(Button("Odd", TITLE_MARK + "x")) == TITLE_MARK + "Odd", "a payload can't pose as a title"


def test_buttons_go_under_the_last_message() -> None:
    reply = Reply(text="Sentence one. " * 400, buttons=(Button("Yes", "yes"), Button("No", "no")))
    out = render_reply(reply, reply_to=9)
    assert len(out) == 2
    assert out[0].keyboard is None and out[0].reply_to == 9
    assert out[1].reply_to is None and out[1].keyboard is not None
    assert [[b.callback_data for b in row] for row in out[1].keyboard.inline_keyboard] == [["yes"], ["no"]]
    only_buttons = render_reply(Reply(buttons=(Button("Yes", "yes"),)))
    assert len(only_buttons) == 1 and only_buttons[0].text and only_buttons[0].keyboard is not None


def test_an_image_takes_the_text_as_caption_unless_it_is_too_long() -> None:
    image = Attachment(AttachmentKind.IMAGE, url="https://shop.example/a.png")
    (photo,) = render_reply(Reply(text="Size chart", image=image))
    assert photo == Outgoing("Size chart", photo="https://shop.example/a.png", fallback=photo.fallback)
    assert photo.fallback == Outgoing("Size chart\nhttps://shop.example/a.png")
    text, photo = render_reply(Reply(text="Long. " * 300, image=image))
    assert text.photo is None and photo.photo == image.url and photo.text == ""


def test_a_card_without_image_is_text_with_a_link_button() -> None:
    card = ProductCard("Earbuds", "p-1", price="$59.00", url="https://shop.example/p/1")
    (out,) = render_reply(Reply(card=card))
    assert out.photo is None and out.text == "Earbuds\n$59.00"
    assert out.keyboard is not None and out.keyboard.inline_keyboard[0][0].url == "https://shop.example/p/1"
    (plain,) = render_reply(Reply(card=ProductCard("Earbuds", "p-1", url="shop/p/1")))
    assert plain.keyboard is None and plain.text == "Earbuds\nshop/p/1", "not a web URL: written out instead"


# -- the windows, on a virtual clock ------------------------------------------------------------


def test_a_window_counts_messages_in_flight_and_until_a_period_after_their_answer() -> None:
    window = Window(2, 1.0)
    assert window.free_at(0.0) == 0.0
    window.start()
    window.start()
    assert window.free_at(0.1) == math.inf, "both in flight: wait for an answer"
    window.finish(0.3)
    assert window.free_at(0.3) == pytest.approx(1.3)
    window.finish(0.5)
    assert window.free_at(1.3) == pytest.approx(1.3)
    window.start()
    assert window.free_at(1.3) == pytest.approx(1.5)
    assert not window.idle(1.3)


def test_limits_per_chat_per_group_and_overall() -> None:
    limits = RateLimits(per_chat_per_second=1, per_group_per_minute=20, global_per_second=30)
    group, now = -100, 0.0
    for _ in range(20):
        at = limits.ready_at(group, now)
        assert at >= now
        now = at
        limits.start(group)
        limits.finish(group, now)
    assert limits.ready_at(group, now) == pytest.approx(60.0), "the 21st waits for the first to leave the minute"
    assert limits.ready_at(7, now) == now, "a private chat is not held back by the group"
    for chat in range(1, 31):
        limits.start(chat)
        limits.finish(chat, 100.0)
    assert limits.ready_at(99, 100.0) == pytest.approx(101.0), "30 in the last second: the 31st waits"
    limits.block(99, 105.0)
    assert limits.ready_at(99, 101.5) == 105.0, "a 429's retry_after holds the chat"
    limits.forget_idle(200.0)
    assert limits.tracked_chats == 0


Arrivals = list[tuple[float, int]]


def _simulate(chats: list[int], per_chat: int, seed: int) -> tuple[float, Arrivals, dict[int, list[int]]]:
    """The dispatcher's rule played out on a virtual clock with random network delays.

    Returns the finishing time, every (arrival time, chat) the server saw, and the order per chat.
    """
    rng = random.Random(seed)
    limits = RateLimits(per_chat_per_second=1, per_group_per_minute=20, global_per_second=30)
    queues = {chat: list(range(per_chat)) for chat in chats}
    busy: set[int] = set()
    events: list[tuple[float, int, int, str]] = []  # (time, seq, chat, kind) kind: arrive/answer
    arrivals: list[tuple[float, int]] = []
    order: dict[int, list[int]] = {chat: [] for chat in chats}
    now, seq = 0.0, 0
    while any(queues.values()) or busy:
        for chat in chats:
            if queues[chat] and chat not in busy and limits.ready_at(chat, now) <= now:
                busy.add(chat)
                limits.start(chat)
                order[chat].append(queues[chat][0])
                request_delay, response_delay = rng.uniform(0, 0.3), rng.uniform(0, 0.3)
                heapq.heappush(events, (now + request_delay, seq, chat, "arrive"))
                heapq.heappush(events, (now + request_delay + response_delay, seq + 1, chat, "answer"))
                seq += 2
        wake = min((limits.ready_at(c, now) for c in chats if queues[c] and c not in busy), default=math.inf)
        at, _, chat, kind = heapq.heappop(events) if events and events[0][0] <= wake else (wake, 0, 0, "tick")
        now = max(now, at)
        if kind == "arrive":
            arrivals.append((now, chat))
        elif kind == "answer":
            limits.finish(chat, now)
            busy.discard(chat)
            queues[chat].pop(0)
    return now, arrivals, order


def _server_violations(arrivals: list[tuple[float, int]]) -> list[str]:
    """Telegram's limits checked the way a server would: on arrival times, in sliding windows."""
    problems = []
    times = [at for at, _ in arrivals]
    for i, at in enumerate(times):
        if sum(1 for other in times[: i + 1] if other > at - 1.0) > 30:
            problems.append(f"more than 30 in the second before {at:.2f}")
    by_chat: dict[int, list[float]] = {}
    for at, chat in arrivals:
        by_chat.setdefault(chat, []).append(at)
    for chat, stamps in by_chat.items():
        problems += [f"chat {chat}: {b - a:.3f} s apart" for a, b in itertools.pairwise(stamps) if b - a < 1]
        if chat < 0:
            problems += [f"group {chat}: over 20 in a minute" for i, at in enumerate(stamps)
                         if sum(1 for other in stamps[: i + 1] if other > at - 60) > 20]
    return problems


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_burst_of_500_to_20_chats_never_breaks_a_limit_whatever_the_delays(seed: int) -> None:
    chats = [*range(1, 17), -1, -2, -3, -4]  # 16 people, 4 groups
    finished, arrivals, order = _simulate(chats, per_chat=25, seed=seed)
    assert len(arrivals) == 500
    assert _server_violations(arrivals) == []
    assert all(sent == list(range(25)) for sent in order.values()), "order kept per chat"
    # The groups bound it: 25 messages at 20 per minute need a bit over 60 s; the delays add a little.
    assert 60 < finished < 80


# -- the queue against a local Bot API server ---------------------------------------------------


@pytest.fixture
async def bot_and_server() -> AsyncIterator[tuple[Bot, FakeTelegram]]:
    server = FakeTelegram(per_chat_per_second=10, per_group_per_minute=1000, global_per_second=25,
                          request_delay=(0, 0.01), response_delay=(0, 0.01))
    async with server, Bot(TOKEN, base_url=server.base_url) as bot:  # the Bot is made once the server listens
        yield bot, server


def _outbox(bot: Bot, **limits: float) -> Outbox:
    async def transmit(chat_id: int, out: Outgoing) -> None:
        if out.photo:
            await bot.send_photo(chat_id, out.photo, caption=out.text or None)
        else:
            await bot.send_message(chat_id, out.text, reply_markup=out.keyboard)

    settings = {"per_chat_per_second": 10, "per_group_per_minute": 1000, "global_per_second": 25, **limits}
    return Outbox(transmit, RateLimits(**settings), retry_base_s=0.05)  # type: ignore[arg-type]


async def test_a_burst_keeps_every_limit_and_the_order_in_each_chat(
    bot_and_server: tuple[Bot, FakeTelegram],
) -> None:
    bot, tg = bot_and_server
    outbox = _outbox(bot)
    chats = [1, 2, 3, 4, 5, -6]
    started = time.monotonic()
    for n in range(10):
        for chat in chats:
            outbox.put(chat, Outgoing(f"message {n}"))
    assert await outbox.flush(10)
    elapsed = time.monotonic() - started
    await outbox.close(1)
    assert tg.too_many == 0
    assert outbox.sent == 60 and outbox.throttled == 0
    for chat in chats:
        assert [c.text for c in tg.sent(chat)] == [f"message {n}" for n in range(10)]
    observed = tg.observed()
    assert observed["max_per_second"] <= 25 and observed["min_gap_in_chat_s"] >= 0.1
    assert 0.9 < elapsed < 8, "10 per chat at 10/s: about a second; 60 at 25/s: a little over 2"


# PTB's RetryAfter reads its own deprecated int `retry_after` while being built; the queue reads it without.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_a_429_is_honoured_and_the_message_sent_once(
    bot_and_server: tuple[Bot, FakeTelegram], caplog: pytest.LogCaptureFixture
) -> None:
    bot, tg = bot_and_server
    tg.fail("sendMessage", 429, description="Too Many Requests: retry after 1", parameters={"retry_after": 1})
    outbox = _outbox(bot)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "kefu.telegram"):
        outbox.put(5, Outgoing("first"))
        outbox.put(5, Outgoing("second"))
        assert await outbox.flush(5)
    elapsed = time.monotonic() - started
    await outbox.close(1)
    calls = [c for c in tg.calls if c.method == "sendMessage"]
    assert [(c.status, c.text) for c in calls] == [(429, "first"), (200, "first"), (200, "second")]
    assert calls[1].at - calls[0].at >= 1.0, "retried after retry_after"
    assert elapsed >= 1.0 and outbox.throttled == 1
    assert any("429 for chat 5" in r.getMessage() for r in caplog.records)


async def test_network_errors_are_retried_and_other_chats_keep_going(bot_and_server: tuple[Bot, FakeTelegram]) -> None:
    bot, tg = bot_and_server
    tg.disconnect("sendMessage")
    tg.fail("sendMessage", 502)
    outbox = _outbox(bot)
    outbox.put(1, Outgoing("to one"))
    outbox.put(2, Outgoing("to two"))
    assert await outbox.flush(5)
    await outbox.close(1)
    assert [c.text for c in tg.sent(1)] == ["to one"] and [c.text for c in tg.sent(2)] == ["to two"]
    assert outbox.retried == 2 and outbox.dropped == 0


async def test_a_message_is_given_up_after_repeated_failures(bot_and_server: tuple[Bot, FakeTelegram]) -> None:
    bot, tg = bot_and_server
    tg.fail("sendMessage", 502, times=4)
    outbox = _outbox(bot)
    outbox.put(1, Outgoing("lost"))
    outbox.put(1, Outgoing("next"))
    assert await outbox.flush(5)
    await outbox.close(1)
    assert [c.text for c in tg.sent(1)] == ["next"]
    assert outbox.dropped == 1 and outbox.retried == 3


async def test_a_chat_that_blocked_the_bot_is_dropped_and_others_are_not(
    bot_and_server: tuple[Bot, FakeTelegram],
) -> None:
    bot, tg = bot_and_server
    tg.block(3)
    outbox = _outbox(bot)
    for n in range(3):
        outbox.put(3, Outgoing(f"to three {n}"))
        outbox.put(4, Outgoing(f"to four {n}"))
    assert await outbox.flush(5)
    await outbox.close(1)
    assert len([c for c in tg.calls if c.chat_id == 3]) == 1, "one 403, then the rest is dropped"
    assert len(tg.sent(4)) == 3 and outbox.dropped == 3


async def test_a_group_upgraded_to_a_supergroup_is_followed(bot_and_server: tuple[Bot, FakeTelegram]) -> None:
    bot, tg = bot_and_server
    tg.migrate(-5, -1005)
    outbox = _outbox(bot)
    outbox.put(-5, Outgoing("one"))
    outbox.put(-5, Outgoing("two"))
    assert await outbox.flush(5)
    outbox.put(-5, Outgoing("three"))
    assert await outbox.flush(5)
    await outbox.close(1)
    assert [c.text for c in tg.sent(-1005)] == ["one", "two", "three"]
    assert len([c for c in tg.calls if c.chat_id == -5]) == 1


async def test_close_sends_what_is_queued_within_its_deadline(bot_and_server: tuple[Bot, FakeTelegram]) -> None:
    bot, tg = bot_and_server
    outbox = _outbox(bot, per_chat_per_second=2)
    for n in range(3):
        outbox.put(8, Outgoing(f"m{n}"))
    await outbox.close(5)
    assert [c.text for c in tg.sent(8)] == ["m0", "m1", "m2"]
    slow = _outbox(bot, per_chat_per_second=1)
    for n in range(5):
        slow.put(9, Outgoing(f"m{n}"))
    started = time.monotonic()
    await slow.close(0.5)
    assert time.monotonic() - started < 2.5 and slow.pending > 0, "the deadline holds; the rest is logged"
    await asyncio.sleep(0)
