"""Two hub processes on one Redis: one conversation, whichever process takes the turn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import SHARED_DATA, RedisServer, free_port
from tests.support.hubs import start_hub, wait_ready


@pytest.fixture
def two_hubs(tmp_path: Path, private_redis: RedisServer) -> Iterator[tuple[int, int]]:
    config = {
        "redis": {"url": private_redis.url},
        "demo_store": {"source": str(SHARED_DATA / "retail" / "db.json"), "data_dir": str(tmp_path / "var")},
    }
    config_path = tmp_path / "bot_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    ports = free_port(), free_port()
    hubs = [start_hub(config_path, port) for port in ports]
    try:
        for port, hub in zip(ports, hubs, strict=True):
            wait_ready(port, hub)
        yield ports
    finally:
        for hub in hubs:
            hub.terminate()
            hub.wait(10)


async def post(session: aiohttp.ClientSession, port: int, **body: Any) -> dict[str, Any]:
    async with session.post(f"http://127.0.0.1:{port}/webchat/api/messages", json=body) as response:
        assert response.status == 200
        return dict(await response.json())


async def test_a_conversation_started_on_one_process_continues_on_the_other(two_hubs: tuple[int, int]) -> None:
    a, b = two_hubs
    async with aiohttp.ClientSession() as http:
        ask = await post(http, a, user_id="guest-7", text="where is my order", locale="en")
        assert "email address" in ask["replies"][0]["text"]
        # Process B knows what A asked: the email alone continues the order look-up.
        answer = await post(http, b, user_id="guest-7", text="noah.brown7922@example.com")
        assert answer["route"] == "skill"
        assert "#W7678072" in answer["replies"][0]["text"]
        # And A now knows the shopper is signed in.
        again = await post(http, a, user_id="guest-7", text="order W7678072")
        assert again["replies"][0]["text"].startswith("Order #W7678072: delivered.")


async def test_one_message_delivered_to_both_processes_is_answered_once(two_hubs: tuple[int, int]) -> None:
    a, b = two_hubs
    async with aiohttp.ClientSession() as http:
        deliveries = [post(http, port, user_id="ann", text="你好", message_id="wx-123") for port in (a, b, a, b)]
        results = await asyncio.gather(*deliveries)
    answered = [r for r in results if r["replies"]]
    assert len(answered) == 1
    assert sorted(r["route"] for r in results) == ["duplicate", "duplicate", "duplicate", "skill"]
