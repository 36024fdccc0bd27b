"""Telegram by long polling, end to end: the hub's polling task against a local Bot API server's getUpdates."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.telegram import TelegramAdapter
from core.app import Hub
from tests.conftest import SHARED_DATA, RedisServer, hub_client, make_config
from tests.support.fake_telegram_api import BOT_USERNAME, TOKEN, FakeTelegram, Updates

FAST = {"per_chat_per_second": 50, "per_group_per_minute": 1000, "global_per_second": 200}


@asynccontextmanager
async def polling_hub(tmp_path: Path, tg: FakeTelegram, **sections: Any) -> AsyncIterator[tuple[Hub, TelegramAdapter]]:
    telegram = {"enabled": True, "token": TOKEN, "mode": "polling", "api_base_url": tg.base_url,
                "bot_username": BOT_USERNAME, "poll_timeout_s": 1, **FAST}
    async with hub_client(make_config(tmp_path, channels={"telegram": telegram}, **sections)) as (client, hub):
        adapter = next(a for a in hub.adapters if isinstance(a, TelegramAdapter))
        assert (await client.post("/telegram/webhook", json={})).status == 404, "no webhook route when polling"
        yield hub, adapter


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(per_chat_per_second=50, per_group_per_minute=1000, global_per_second=200) as server:
        yield server


async def test_polling_answers_updates_and_confirms_them(tmp_path: Path, tg: FakeTelegram) -> None:
    updates = Updates()
    tg.webhook = {"url": "https://old.example/hook"}  # a webhook left over: getUpdates would be refused
    first, second = updates.text(11, "hello"), updates.text(12, "thanks")
    tg.push_update(first)
    tg.push_update(second)
    async with polling_hub(tmp_path, tg):
        await tg.wait_for(lambda: len(tg.sent()) == 2)
        await tg.wait_for(lambda: second["update_id"] + 1 in tg.offsets)
        third = updates.text(11, "where is my order?")
        tg.push_update(third)  # arrives during a long poll
        await tg.wait_for(lambda: len(tg.sent()) == 3)
        await tg.wait_for(lambda: third["update_id"] + 1 in tg.offsets)
    methods = [c.method for c in tg.calls if c.status == 200]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert [c.chat_id for c in tg.sent()] == [11, 12, 11]
    assert tg.sent(12)[0].text == "You're welcome! Come back any time."
    assert tg.offsets[0] is None and tg.offsets[1] == second["update_id"] + 1


async def test_polling_rides_out_network_errors_with_backoff(
    tmp_path: Path, tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    tg.disconnect("getUpdates")
    tg.fail("getUpdates", 502)
    tg.fail("deleteWebhook", 500)
    tg.push_update(Updates().text(21, "hello"))
    with caplog.at_level(logging.WARNING, "kefu.telegram"):
        async with polling_hub(tmp_path, tg):
            await tg.wait_for(lambda: len(tg.sent(21)) == 1, within_s=10)
    failures = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert [float(r.getMessage().rsplit("retrying in ", 1)[1].split()[0]) for r in failures] == [0.2, 0.4, 0.8]


async def test_polling_never_answers_an_update_twice(tmp_path: Path, tg: FakeTelegram) -> None:
    updates = Updates()
    hello = updates.text(31, "hello")
    tg.push_update(hello)
    tg.push_update(dict(hello))  # delivered twice in one batch
    async with polling_hub(tmp_path, tg) as (_hub, adapter):
        await tg.wait_for(lambda: hello["update_id"] + 1 in tg.offsets)
        tg.push_update(dict(hello))  # and once more later, as after a crash before the offset was confirmed
        await tg.wait_for(lambda: tg.offsets.count(hello["update_id"] + 1) >= 3)
        await adapter.outbox.flush(5)
    assert len(tg.sent(31)) == 1


async def test_polling_fetches_again_what_could_not_be_handled(
    tmp_path: Path, tg: FakeTelegram, private_redis: RedisServer
) -> None:
    updates = Updates()
    first = updates.text(41, "hello")
    tg.push_update(first)
    async with polling_hub(tmp_path, tg, redis={"url": private_redis.url, "timeout_s": 0.3}) as (_hub, adapter):
        await tg.wait_for(lambda: len(tg.sent(41)) == 1)
        private_redis.stop()
        second, third = updates.text(42, "hello"), updates.text(43, "thanks")
        tg.push_update(second)
        tg.push_update(third)
        await tg.wait_for(lambda: tg.offsets.count(second["update_id"]) >= 2, within_s=10)
        assert tg.sent(42) == [] and tg.sent(43) == [], "nothing answered while the store is down"
        private_redis.start()
        await tg.wait_for(lambda: third["update_id"] + 1 in tg.offsets, within_s=10)
        await adapter.outbox.flush(5)
    assert len(tg.sent(42)) == 1 and len(tg.sent(43)) == 1
    assert len(tg.sent(41)) == 1


async def test_updates_older_than_ptb_can_read_strictly_are_still_handled(tmp_path: Path, tg: FakeTelegram) -> None:
    legacy = json.loads((SHARED_DATA / "payloads/telegram/updates/telegram_docs_text.json").read_text())
    fresh = Updates().text(51, "hello")
    tg.push_update(legacy)  # no is_bot: PTB's strict parse of the whole batch fails
    tg.push_update(fresh)
    async with polling_hub(tmp_path, tg):
        await tg.wait_for(lambda: len(tg.sent()) == 2)
        await tg.wait_for(lambda: fresh["update_id"] + 1 in tg.offsets)
    assert tg.sent(1111111)[0].text.startswith("您好！"), "/start: the welcome (no language_code: the default zh-CN)"
    assert len(tg.sent(51)) == 1


async def test_polling_stops_with_the_app(tmp_path: Path, tg: FakeTelegram) -> None:
    async with polling_hub(tmp_path, tg) as (_hub, adapter):
        await tg.wait_for(lambda: len(tg.offsets) >= 1)
        task = adapter._tasks[0]
    assert task.done()
    polls = len(tg.offsets)
    await asyncio.sleep(0.3)
    assert len(tg.offsets) == polls, "no getUpdates after shutdown"
