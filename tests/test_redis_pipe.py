"""The pipelined connection of the turn scripts (core.redis_pipe), against a real redis-server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from core.redis_pipe import PipelinedRedis, ReplyError
from tests.conftest import REDIS_URL, RedisServer


async def test_concurrent_calls_each_get_their_own_reply() -> None:
    pipe = PipelinedRedis.from_url(REDIS_URL)
    key = f"kefu-test:pipe:{uuid.uuid4().hex}"
    try:
        replies = await asyncio.gather(*(pipe.call("ECHO", f"n{i}") for i in range(500)))
        assert replies == [f"n{i}".encode() for i in range(500)]
        assert await pipe.call("SET", key, "v", "EX", 60) == b"OK"
        assert await pipe.call("GET", key) == b"v"
        await pipe.call("DEL", key)
    finally:
        await pipe.close()


async def test_an_error_reply_fails_only_its_own_call() -> None:
    pipe = PipelinedRedis.from_url(REDIS_URL)
    try:
        before, failed, after = await asyncio.gather(
            pipe.call("ECHO", "a"), pipe.call("EVALSHA", "0" * 40, 0), pipe.call("ECHO", "b"),
            return_exceptions=True)
        assert (before, after) == (b"a", b"b")
        assert isinstance(failed, ReplyError) and str(failed).startswith("NOSCRIPT")
    finally:
        await pipe.close()


async def test_a_caller_that_stops_waiting_does_not_shift_the_replies_of_others() -> None:
    pipe = PipelinedRedis.from_url(REDIS_URL)
    try:
        busy = "local i = 0 while i < 10000000 do i = i + 1 end return 'slow'"  # about 0.1 s of Redis time
        slow = asyncio.ensure_future(pipe.call("EVAL", busy, 0))
        await asyncio.sleep(0.01)
        slow.cancel()  # gives up before Redis answers
        assert await pipe.call("ECHO", "next") == b"next"
    finally:
        await pipe.close()


async def test_the_database_of_the_url_is_selected() -> None:
    base = REDIS_URL.rsplit("/", 1)[0]
    pipe = PipelinedRedis.from_url(f"{base}/7")
    key = f"kefu-test:pipe:{uuid.uuid4().hex}"
    try:
        await pipe.call("SET", key, "in-7", "EX", 60)
        other = PipelinedRedis.from_url(f"{base}/0")
        assert await other.call("GET", key) is None
        await other.close()
        assert await pipe.call("GET", key) == b"in-7"
    finally:
        await pipe.call("DEL", key)
        await pipe.close()


async def test_a_lost_server_fails_the_calls_and_the_next_call_reconnects(private_redis: RedisServer) -> None:
    pipe = PipelinedRedis.from_url(private_redis.url, timeout_s=0.5)
    try:
        assert await pipe.call("PING") == b"PONG"
        private_redis.stop()
        with pytest.raises(OSError):
            await pipe.call("PING")
        with pytest.raises(OSError):  # nobody listens: the reconnect is refused
            await pipe.call("PING")
        private_redis.start()
        assert await pipe.call("PING") == b"PONG"
    finally:
        await pipe.close()


async def test_a_server_that_stops_answering_fails_the_waiting_calls_in_time(private_redis: RedisServer) -> None:
    pipe = PipelinedRedis.from_url(private_redis.url, timeout_s=0.2)
    try:
        await pipe.call("PING")
        busy = "local i = 0 while i < 100000000 do i = i + 1 end return 1"  # seconds of Redis time
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(pipe.call("EVAL", busy, 0), pipe.call("PING"), return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results)
        assert asyncio.get_running_loop().time() - started < 0.5
    finally:
        await pipe.close()


def test_only_redis_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="unix"):
        PipelinedRedis.from_url("unix:///tmp/redis.sock")
    pipe = PipelinedRedis.from_url("rediss://user:p%40ss@cache.example:6380/3")
    assert (pipe.host, pipe.port, pipe.db, pipe.username, pipe.password, pipe.tls) == (
        "cache.example", 6380, 3, "user", "p@ss", True)
