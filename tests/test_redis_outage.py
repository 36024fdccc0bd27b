"""Redis lost mid-run and Redis down at start: honest answers, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.config import PROJECT_ROOT
from tests.conftest import RedisServer, free_port, hub_client, make_config, say
from tests.support.tcp_proxy import CountingProxy


async def test_redis_lost_mid_run_answers_503_then_the_retry_succeeds(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    config = make_config(tmp_path, redis={"url": private_redis.url, "timeout_s": 0.5})
    async with hub_client(config) as (client, hub):
        await say(client, "james_li_5688", "你好", message_id="m1")

        private_redis.stop()
        response = await client.post(
            "/webchat/api/messages", json={"user_id": "james_li_5688", "text": "我的订单到哪了", "message_id": "m2"}
        )
        assert response.status == 503
        assert response.headers["Retry-After"] == "2"
        error = (await response.json())["error"]
        assert error == {"code": "temporarily_unavailable",
                         "message": "抱歉，系统暂时繁忙，请稍后再发一次消息。"}
        health = await client.get("/healthz")
        assert health.status == 503
        assert (await health.json())["backends"]["sessions"]["up"] is False

        private_redis.start()  # an empty Redis on the same port: the earlier session is gone, as Redis forgot it
        retry = await say(client, "james_li_5688", "我的订单到哪了", message_id="m2")
        assert retry["route"] == "skill" and "#W" in retry["replies"][0]["text"]
        session = await hub.store.load("web:james_li_5688")
        assert [h.text for h in session.history if h.role == "shopper"] == ["我的订单到哪了"]


async def test_a_turn_failing_after_the_claim_leaves_nothing_and_is_answered_on_retry(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    async with CountingProxy(private_redis.port) as line:
        config = make_config(tmp_path, redis={"url": f"redis://127.0.0.1:{line.port}/0", "timeout_s": 0.5})
        async with hub_client(config) as (client, hub):
            await say(client, "ann", "你好", message_id="m0")  # connections and scripts are ready
            line.cut_after(1)  # the turn's open goes through; the line drops before its save
            response = await client.post("/webchat/api/messages",
                                         json={"user_id": "ann", "text": "谢谢", "message_id": "m1"})
            assert response.status == 503
            line.restore()
            retry = await say(client, "ann", "谢谢", message_id="m1")
            assert retry["route"] == "skill", "the failed turn's claim must not swallow the retry"
            session = await hub.store.load("web:ann")
            assert [h.text for h in session.history] == [
                "你好", session.history[1].text, "谢谢", session.history[3].text
            ], "the failed attempt left nothing half-written"


def test_run_command_says_when_redis_is_down(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        [sys.executable, "-m", "core", "run", "--port", str(free_port())],
        cwd=PROJECT_ROOT, env={**os.environ, "REDIS_URL": dead}, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert "is not answering" in result.stderr
    assert "redis-server" in result.stderr and "REDIS_URL" in result.stderr
