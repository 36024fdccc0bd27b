"""Messages to a shopper outside a turn (an agent's reply, a hand-over notice), through their channel's adapter.

A turn answers through the `Send` its adapter passes in; a message that starts elsewhere needs the
channel's own way to reach one of its users. core/app.py registers each adapter's `push` here
(core never imports adapters). Channels whose users are reachable only from the process holding their
connection (the web chat's WebSockets) are registered `per_process`: core.desk relays their messages to
every hub process over the desk's event bus, and each process pushes to the sockets it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.message import Reply

log = logging.getLogger("kefu.outbound")

# push(user_id, chat_id, reply, author) -> delivered; author is "agent" or "bot" (channels that can, show it).
# The adapters' own `push(user_id, chat_id, reply)` (the proactive path, core.push.delivery) behind it.
Push = Callable[[str, str, Reply, str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Address:
    """Where a shopper last wrote from."""

    channel: str
    user_id: str
    chat_id: str


class Outbound:
    def __init__(self) -> None:
        self._push: dict[str, Push] = {}
        self._per_process: set[str] = set()

    def register(self, channel: str, push: Push, per_process: bool = False) -> None:
        self._push[channel] = push
        if per_process:
            self._per_process.add(channel)

    def reaches(self, channel: str) -> bool:
        return channel in self._push

    def per_process(self, channel: str) -> bool:
        return channel in self._per_process

    async def send(self, address: Address, reply: Reply, author: str) -> bool:
        """Push `reply` from this process; False when the channel cannot be reached or refused it."""
        push = self._push.get(address.channel)
        if push is None:
            log.warning("no way to send to channel %s outside a turn; message to %s not delivered",
                        address.channel, address.user_id[:6])
            return False
        try:
            return await push(address.user_id, address.chat_id, reply, author)
        except Exception:  # one channel's failure must not fail the agent's action
            log.exception("push to %s failed", address.channel)
            return False
