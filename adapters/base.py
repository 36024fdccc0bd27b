"""The adapter contract. Only adapters know a platform's wire format."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from core.message import Capabilities


class Adapter(Protocol):
    name: str
    capabilities: Capabilities

    def mount(self, app: web.Application) -> None:
        """Add this channel's routes (webhooks, sockets, pages) to the hub's app."""
        ...

    async def close(self) -> None: ...
