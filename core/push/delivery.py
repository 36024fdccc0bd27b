"""The channel side of pushes: what an adapter offers, as protocols (core never imports adapters).

core/app.py hands the adapters to the push service; each one that has these methods is used:

- `push(user_id, chat_id, reply)`: a message to one shopper's direct chat (Telegram sendMessage, the
  WeChat customer-service API, an open web chat socket ...); True once the channel accepted it.
- `push_template(user_id, template_id, data, page)`: a WeChat template (Official Account) or subscribe
  (mini-program) message, the only thing allowed outside the 48-hour customer-service window.
- `push_group(text)`: a message to the WeChat group behind the group robot webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from core.message import Reply


@runtime_checkable
class ShopperPusher(Protocol):
    name: str

    async def push(self, user_id: str, chat_id: str, reply: Reply) -> bool: ...


@runtime_checkable
class TemplatePusher(Protocol):
    name: str

    async def push_template(self, user_id: str, template_id: str, data: Mapping[str, str], page: str) -> bool: ...


@runtime_checkable
class GroupPusher(Protocol):
    async def push_group(self, text: str) -> bool: ...
