"""The push scheduler: exactly once across two hub processes on one Redis, and the misfire policy for runs
that fell due while no hub was up (apscheduler's Redis job store keeps the next run time)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp import web

from core.app import build_hub
from tests.conftest import REDIS_URL, SHARED_DATA, RedisServer, free_port, make_config
from tests.support.hubs import start_hub, wait_ready

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


class Robot:
    """A WeCom group robot webhook: records what the hub posts."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append(orjson.loads(await request.read()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@pytest.fixture
async def robot() -> AsyncIterator[Robot]:
    server = Robot()
    app = web.Application()
    app.router.add_post("/robot", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    yield server
    await runner.cleanup()


async def test_each_run_is_sent_once_across_two_hub_processes(tmp_path: Path, private_redis: RedisServer,
                                                              robot: Robot) -> None:
    config = {
        "redis": {"url": private_redis.url},
        "demo_store": {"source": str(SHARED_DATA / "retail" / "db.json"), "data_dir": str(tmp_path / "var")},
        "channels": {"wechat_group": {"enabled": True, "token": "tok", "encoding_aes_key": AES_KEY,
                                      "robot_webhook_url": f"http://127.0.0.1:{robot.port}/robot",
                                      "robot_messages_per_minute": 1000}},
        "pushes": {"quiet_hours": None, "jobs": [
            {"id": "every_second", "kind": "group_campaign", "interval_s": 1, "text": {"zh-CN": "限时福利"}}]},
    }
    config_path = tmp_path / "bot_config.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
    ports = free_port(), free_port()
    hubs = [start_hub(config_path, port) for port in ports]
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        for port, hub in zip(ports, hubs, strict=True):
            wait_ready(port, hub)
        await asyncio.sleep(5)  # real processes, real time: about five runs
        ran = 0
        async with aiohttp.ClientSession() as http:
            for port in ports:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    ran += sum(int(float(line.rsplit(" ", 1)[1])) for line in (await response.text()).splitlines()
                               if line.startswith('kefu_push_runs_total{job="every_second",outcome="ran"}'))
        for hub in hubs:
            hub.terminate()
            hub.wait(10)
        reports = [orjson.loads(r) for r in await client.lrange("kefu:push:runs", 0, -1)]
    finally:
        for hub in hubs:
            if hub.poll() is None:
                hub.kill()
        await client.aclose()
    scheduled = [r["scheduled_at"] for r in reports]
    assert len(scheduled) >= 3, reports
    assert len(set(scheduled)) == len(scheduled), "a run was carried out twice"
    assert all(r["sent"] == 1 and r["outcome"] == "ran" for r in reports), reports
    assert len(robot.posts) == len(reports)
    assert ran >= len(reports) - 1  # the processes' own counts agree (a run may end after the scrape)
    assert all(p == {"msgtype": "markdown", "markdown": {"content": "限时福利"}} for p in robot.posts)
    # The runs follow the one shared schedule: one second apart.
    gaps = {round(b - a) for a, b in zip(sorted(scheduled), sorted(scheduled)[1:], strict=False)}
    assert gaps == {1}, sorted(scheduled)


async def missed_while_down(tmp_path: Path, prefix: str, policy: str) -> tuple[list[dict[str, Any]], str]:
    """Start a hub, move its hourly job's next run 2.5 hours into the past (three runs missed), stop it;
    start it again with the same config; the run reports and metrics after that."""
    config = make_config(tmp_path, redis={"url": REDIS_URL}, pushes={
        "quiet_hours": None, "misfire": {"policy": policy, "max_delay_s": 7200},
        "jobs": [{"id": "hourly", "kind": "group_campaign", "interval_s": 3600, "text": {"en": "hi"}}]})
    first = await build_hub(config, store_prefix=prefix)
    assert first.pushes is not None
    await first.pushes.start()
    scheduler = first.pushes.scheduler.scheduler
    assert scheduler is not None
    scheduler.pause()
    scheduler.modify_job("hourly", next_run_time=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2.5))
    await first.pushes.close()
    await first.store.close()

    second = await build_hub(config, store_prefix=prefix)
    assert second.pushes is not None
    try:
        await second.pushes.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            metrics = second.metrics.render().decode()
            if 'outcome="missed"' in metrics or await second.pushes.recent_runs():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # anything else that was going to happen
        return await second.pushes.recent_runs(), second.metrics.render().decode()
    finally:
        await second.pushes.close()
        await second.store.close()


async def test_runs_missed_while_down_become_one_run_with_run_once(tmp_path: Path, redis_prefix: str) -> None:
    runs, metrics = await missed_while_down(tmp_path, redis_prefix, "run_once")
    assert len(runs) == 1, runs  # three missed runs, coalesced into one
    late = time.time() - runs[0]["scheduled_at"]
    assert 0.4 * 3600 < late < 0.6 * 3600  # the latest of the missed runs, half an hour ago
    assert 'outcome="missed"' not in metrics


async def test_runs_missed_while_down_are_skipped_with_skip(tmp_path: Path, redis_prefix: str) -> None:
    runs, metrics = await missed_while_down(tmp_path, redis_prefix, "skip")
    assert runs == []
    assert 'kefu_push_runs_total{job="hourly",outcome="missed"} 1.0' in metrics
