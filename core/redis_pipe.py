"""One pipelined Redis connection for the turn's hot commands.

Every turn makes two calls (open and close, core.redis_store). Through redis-py's pool each call
borrows a connection, packs the command in Python, writes it with its own system call and waits for
its own read: about 60 µs of CPU per call, more than the rest of a turn. Here all turns share one
connection: the commands issued in one event-loop iteration leave in one write, one read resolves
every reply it carries (Redis answers in order), and hiredis packs and parses. Under load that is a
fraction of the cost, and Redis itself sees pipelines instead of single commands.

Only non-blocking commands belong here (EVALSHA of the turn scripts): a blocking one would stall
every turn behind it. A caller that stops waiting leaves its slot in the queue, so the replies that
follow still reach their own callers. A lost connection fails every waiting call with ConnectionError;
the next call connects again. One watchdog per connection replaces a timer per call: when the oldest
call has waited `timeout_s`, Redis is not answering, and every waiting call fails with TimeoutError.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlparse

import hiredis


class ReplyError(Exception):
    """An error reply from Redis (e.g. NOSCRIPT); the connection stays usable."""


class _Protocol(asyncio.Protocol):
    def __init__(self, lost: asyncio.Future[None], timeout_s: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.sent_at: deque[float] = deque()  # loop time of each waiting call, oldest first
        self.outgoing: list[bytes] = []
        self.lost = lost
        self.timeout_s = timeout_s
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the Redis connection is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self.outgoing:
            loop.call_soon(self.flush)
        self.outgoing.append(packed)
        self.waiting.append(future)
        self.sent_at.append(loop.time())
        if self.watchdog is None:
            self.watchdog = loop.call_later(self.timeout_s, self.watch)
        return future

    def watch(self) -> None:
        """Fail everything if the oldest call has waited too long; else look again when it would have."""
        self.watchdog = None
        if not self.sent_at:
            return
        loop = asyncio.get_running_loop()
        overdue = self.sent_at[0] + self.timeout_s - loop.time()
        if overdue > 0:
            self.watchdog = loop.call_later(overdue, self.watch)
            return
        if self.transport is not None:
            self.transport.abort()
        self.fail(TimeoutError(f"Redis did not answer within {self.timeout_s} s"))

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing() and self.outgoing:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not False:
                future = self.waiting.popleft()
                self.sent_at.popleft()
                if future.done():  # its caller gave up waiting
                    continue
                if isinstance(reply, ReplyError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            assert self.transport is not None
            self.transport.abort()
            self.fail(ConnectionError(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"the Redis connection was lost: {exc or 'closed'}"))

    def fail(self, exc: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        self.sent_at.clear()
        self.outgoing.clear()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if not self.lost.done():
            self.lost.set_result(None)


class PipelinedRedis:
    def __init__(self, host: str, port: int, db: int = 0, username: str | None = None,
                 password: str | None = None, tls: bool = False, timeout_s: float = 1.0) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.tls = tls
        self.timeout_s = timeout_s  # for connecting, and for any call
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 1.0) -> PipelinedRedis:
        parts = urlparse(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r} (redis:// or rediss://)")
        db = int(parts.path.strip("/") or 0)
        return cls(parts.hostname or "127.0.0.1", parts.port or 6379, db,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None,
                   tls=parts.scheme == "rediss", timeout_s=timeout_s)

    async def call(self, *args: str | bytes | int | float) -> Any:
        """Send one command and wait for its reply: ReplyError for an error reply, OSError (ConnectionError) when
        the connection is lost or cannot be made, TimeoutError when Redis does not answer in time."""
        protocol = self._protocol
        if protocol is None or protocol.lost.done():
            protocol = await self._connect()
        return await protocol.send(hiredis.pack_command(args))

    async def _connect(self) -> _Protocol:
        async with self._connecting:
            if self._protocol is not None and not self._protocol.lost.done():
                return self._protocol  # another caller connected meanwhile
            loop = asyncio.get_running_loop()
            lost: asyncio.Future[None] = loop.create_future()
            context = ssl.create_default_context() if self.tls else None
            async with asyncio.timeout(self.timeout_s):
                _, protocol = await loop.create_connection(lambda: _Protocol(lost, self.timeout_s), self.host,
                                                           self.port, ssl=context)
                try:
                    if self.password is not None:
                        auth = (self.username, self.password) if self.username else (self.password,)
                        await protocol.send(hiredis.pack_command(("AUTH", *auth)))
                    if self.db:
                        await protocol.send(hiredis.pack_command(("SELECT", self.db)))
                except BaseException:
                    assert protocol.transport is not None
                    protocol.transport.close()
                    raise
            self._protocol = protocol
            return protocol

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
