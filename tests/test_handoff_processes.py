"""Hand-overs across real hub processes on one Redis: a shopper's web chat socket on one process, the agent's
console on another; then every process restarts and the conversation is still held."""

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

TOKEN = "alice-processes-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Hubs:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.processes: dict[int, Any] = {}

    def start(self, count: int) -> list[int]:
        ports = [free_port() for _ in range(count)]
        for port in ports:
            self.processes[port] = start_hub(self.config_path, port)
        for port in ports:
            wait_ready(port, self.processes[port])
        return ports

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
            process.wait(10)
        self.processes.clear()


@pytest.fixture
def hubs(tmp_path: Path, private_redis: RedisServer) -> Iterator[Hubs]:
    config = {
        "redis": {"url": private_redis.url},
        "demo_store": {"source": str(SHARED_DATA / "retail" / "db.json"), "data_dir": str(tmp_path / "var")},
        "agents": {"tokens": {"alice": TOKEN}, "sweep_interval_s": 1},
    }
    config_path = tmp_path / "bot_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    running = Hubs(config_path)
    try:
        yield running
    finally:
        running.stop_all()


async def frames_until(ws: aiohttp.ClientWebSocketResponse, kind: str, wait_s: float = 5) -> list[dict[str, Any]]:
    """Frames up to and including the first of type `kind`."""
    seen: list[dict[str, Any]] = []
    while True:
        frame = await asyncio.wait_for(ws.receive_json(), wait_s)
        seen.append(frame)
        if frame.get("type") == kind:
            return seen


async def test_shopper_on_one_process_agent_on_another_and_a_restart(hubs: Hubs) -> None:
    a, b = hubs.start(2)
    async with aiohttp.ClientSession() as http:
        shopper = await http.ws_connect(f"http://127.0.0.1:{a}/webchat/ws?user_id=ann&locale=zh-CN")
        console = await http.ws_connect(f"http://127.0.0.1:{b}/console/ws", headers=AUTH)
        assert (await console.receive_json())["type"] == "hello"

        await shopper.send_json({"type": "message", "text": "转人工"})
        frames = await frames_until(shopper, "turn_end")
        assert frames[-1]["route"] == "handoff" and "人工客服" in frames[0]["text"]
        queued = await asyncio.wait_for(console.receive_json(), 5)
        assert queued["type"] == "queue"
        ticket = queued["ticket"]

        async with http.post(f"http://127.0.0.1:{b}/console/api/tickets/{ticket}/claim", headers=AUTH) as r:
            assert r.status == 200
        joined = await asyncio.wait_for(shopper.receive_json(), 5)
        assert joined["type"] == "push" and joined["from"] == "bot" and "人工客服已加入" in joined["text"], \
            "the notice crossed from the agent's process to the shopper's socket"

        await shopper.send_json({"type": "message", "text": "有人吗？"})
        assert await frames_until(shopper, "turn_end") == [{"type": "turn_end", "route": "held"}]
        event = await frames_until(console, "message")
        assert event[-1]["text"] == "有人吗？" and event[-1]["ticket"] == ticket

        async with http.post(f"http://127.0.0.1:{b}/console/api/tickets/{ticket}/reply", headers=AUTH,
                             json={"text": "您好，我是小李"}) as r:
            assert r.status == 200 and (await r.json())["delivered"] is True
        reply = await asyncio.wait_for(shopper.receive_json(), 5)
        assert reply == {**reply, "type": "push", "from": "agent", "text": "您好，我是小李"}
        await shopper.close()
        await console.close()

    hubs.stop_all()
    (c,) = hubs.start(1)
    async with aiohttp.ClientSession() as http:
        async def say(text: str) -> dict[str, Any]:
            async with http.post(f"http://127.0.0.1:{c}/webchat/api/messages",
                                 json={"user_id": "ann", "text": text}) as r:
                return dict(await r.json())

        assert await say("还在吗") == {"replies": [], "route": "held"}, "held across the restart"
        async with http.get(f"http://127.0.0.1:{c}/console/api/queue", headers=AUTH) as r:
            held = (await r.json())["held"]
        assert [(t["id"], t["agent_id"]) for t in held] == [(ticket, "alice")]
        async with http.post(f"http://127.0.0.1:{c}/console/api/tickets/{ticket}/release", headers=AUTH) as r:
            assert r.status == 200
        answer = await say("你好")
        assert answer["route"] == "skill" and "您好" in answer["replies"][0]["text"]
