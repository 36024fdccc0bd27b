"""A loopback TCP proxy that counts request writes and can cut the line: real network faults for tests."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self


class CountingProxy:
    """Forwards 127.0.0.1:<port> to a target port.

    `requests` counts the client's writes (one per round trip for small requests).
    `cut_after(n)` lets n more requests through, then drops every connection and
    refuses to forward until `restore()`.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._budget: int | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._drop_all()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 1)

    def cut_after(self, requests: int) -> None:
        self._budget = requests

    def restore(self) -> None:
        self._budget = None

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._budget == 0:
            client_writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.update((client_writer, upstream_writer))

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    if upstream:
                        if self._budget == 0:
                            self._drop_all()
                            return
                        self.requests += 1
                        if self._budget is not None:
                            self._budget -= 1
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pump(client_reader, upstream_writer, True), pump(upstream_reader, client_writer, False))
