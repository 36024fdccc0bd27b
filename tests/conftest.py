"""Shared fixtures: real Redis (the suite's, or a private redis-server a test can stop), hubs in process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from core.app import Hub, build_hub, create_app
from core.config import PROJECT_ROOT, Config, parse_config

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_config(tmp_path: Path, **sections: Any) -> Config:
    """A config for tests: the project's defaults, a private data folder, no environment."""
    data: dict[str, Any] = {"demo_store": {"data_dir": str(tmp_path / "var")}, "log_level": "DEBUG"}
    data.update(sections)
    return parse_config(data, env={}, source="<test>", base_dir=PROJECT_ROOT)


class RedisServer:
    """A redis-server of the test's own, on a free port, that the test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run the README's test command, which installs it")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.2)
        deadline = time.monotonic() + 5
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the suite's Redis, removed afterwards."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        await client.ping()
    except (redis.ConnectionError, OSError):
        pytest.fail(f"no Redis answers at {REDIS_URL}: run the README's test command, which starts one")
    prefix = f"kefu-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@asynccontextmanager
async def hub_client(config: Config, prefix: str = "kefu:",
                     clock: Callable[[], float] = time.time) -> AsyncIterator[tuple[TestClient, Hub]]:
    """The whole hub, built from `config`, behind a real HTTP server on a free port (its app started)."""
    hub = await build_hub(config, store_prefix=prefix, clock=clock)
    client = TestClient(TestServer(create_app(hub)))
    await client.start_server()
    try:
        yield client, hub
    finally:
        await client.close()


async def say(client: TestClient, user_id: str, text: str, **extra: Any) -> dict[str, Any]:
    """Send one web chat message; the JSON answer (asserting 200)."""
    response = await client.post("/webchat/api/messages", json={"user_id": user_id, "text": text, **extra})
    body = await response.json()
    assert response.status == 200, body
    return dict(body)


@dataclass(frozen=True)
class RasaServer:
    url: str
    token: str
    port: int


@pytest.fixture(scope="session")
def rasa_server() -> Iterator[RasaServer]:
    """A real Rasa server with the project's model (trained once, cached by the hash of nlu/)."""
    if not (PROJECT_ROOT / ".nlu-venv" / "bin" / "rasa").exists():
        pytest.fail("the Rasa environment is missing: run the README's test command (it builds .nlu-venv)")
    port, token = free_port(), uuid.uuid4().hex
    serve = [str(PROJECT_ROOT / "scripts" / "nlu_serve.sh"), "--port", str(port), "--token", token]
    log_path = Path(tempfile.gettempdir()) / f"kefu-test-rasa-{port}.log"
    # A file, not a pipe: the server started in the background keeps its output handles open.
    with log_path.open("w") as log:
        started = subprocess.run([*serve, "--background", "--timeout", "180"], stdout=log, stderr=log)
    if started.returncode != 0:
        pytest.fail(f"Rasa did not start: {log_path.read_text()[-2000:]}")
    yield RasaServer(f"http://127.0.0.1:{port}", token, port)
    subprocess.run([*serve, "--stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's headless Chromium (tests/support/browser.py); the test module marks itself BROWSER_MARKS."""
    from tests.support.browser import chromium  # playwright only for the tests that use it

    async with chromium() as launched:
        yield launched


@pytest.fixture
async def hub_url(tmp_path: Path) -> AsyncIterator[str]:
    """The whole hub on the embedded store (no Redis, no keys), listening on a free port of 127.0.0.1."""
    from tests.support.browser import serving_hub

    async with serving_hub(make_config(tmp_path)) as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
async def web_hub(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> AsyncIterator[
        tuple[TestClient, Hub]]:
    """The whole hub on the memory store and on Redis (sessions kept between turns on both)."""
    redis = {"url": REDIS_URL} if request.param == "redis" else {}
    async with hub_client(make_config(tmp_path, redis=redis), prefix=redis_prefix) as pair:
        yield pair
