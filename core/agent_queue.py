"""What the agent desk keeps: the queue of waiting conversations, the held ones, tickets, and live events.

`DeskStore` has two implementations, like the session store: `MemoryDesk` (the embedded default, one
process) and `RedisDesk` (shared by hub processes). Redis keys, under the session store's prefix:

  desk:queue             sorted set: ticket id -> rank (core.priority; highest first)
  desk:held              sorted set: ticket id -> last activity (idle release)
  ticket:<id>            the ticket (JSON)        ticket:<id>:events  its events (list of JSON, oldest first)
  tickets:<customer>     the customer's ticket ids, newest first (bounded)
  desk:resolutions       resolved questions with the agent's label, newest first (bounded): the learning loop
  desk:events            pub/sub channel: live events for every hub process's agent consoles

Writes to a ticket happen under its customer's turn lock (core.desk), so whole-ticket writes never race.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.sessions import StoreUnavailable
from core.tickets import Ticket, TicketEvent

log = logging.getLogger("kefu.desk")

TICKET_TTL_S = 180 * 24 * 3600  # tickets (and their events) are kept half a year
TICKETS_PER_CUSTOMER = 50
RESOLUTIONS_MAX = 10_000
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0


class DeskStore(Protocol):
    name: str
    shared: bool  # seen by other hub processes

    async def save_ticket(self, ticket: Ticket, new: bool = False) -> None:
        """Write the ticket; `new` also lists it among its customer's tickets."""
        ...

    async def ticket(self, ticket_id: str) -> Ticket | None: ...

    async def tickets(self, ticket_ids: list[str]) -> list[Ticket]: ...

    async def tickets_of(self, customer_id: str, limit: int = 20) -> list[Ticket]: ...

    async def add_event(self, ticket_id: str, event: TicketEvent) -> None: ...

    async def events(self, ticket_id: str) -> list[TicketEvent]: ...

    async def enqueue(self, ticket_id: str, rank: float) -> None: ...

    async def dequeue(self, ticket_id: str) -> bool:
        """Take the ticket off the queue; False when it was not on it."""
        ...

    async def queued(self, limit: int = 200) -> list[str]:
        """Ticket ids waiting, highest rank first."""
        ...

    async def hold(self, ticket_id: str, last_activity: float) -> None: ...

    async def unhold(self, ticket_id: str) -> None: ...

    async def held(self, limit: int = 1000) -> list[tuple[str, float]]:
        """Held ticket ids with their last activity, quietest first."""
        ...

    async def push_resolution(self, item: dict[str, Any]) -> None: ...

    async def list_resolutions(self, limit: int = 100) -> list[dict[str, Any]]: ...

    async def publish(self, event: dict[str, Any]) -> None:
        """Send a live event to every hub process's consoles."""
        ...

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Live events published by any process, for as long as the caller iterates.

        {"type": "ready"} comes first, and again after each re-subscription (events may have been missed).
        """
        ...


class MemoryDesk:
    """The embedded default: one process, nothing kept on restart."""

    name = "memory"
    shared = False

    def __init__(self) -> None:
        self._tickets: dict[str, bytes] = {}
        self._events: dict[str, list[bytes]] = {}
        self._by_customer: dict[str, deque[str]] = {}
        self._queue: dict[str, float] = {}
        self._held: dict[str, float] = {}
        self._resolutions: deque[dict[str, Any]] = deque(maxlen=RESOLUTIONS_MAX)
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    async def save_ticket(self, ticket: Ticket, new: bool = False) -> None:
        self._tickets[ticket.id] = ticket.to_bytes()
        if new:
            self._by_customer.setdefault(ticket.customer_id, deque(maxlen=TICKETS_PER_CUSTOMER)).appendleft(ticket.id)

    async def ticket(self, ticket_id: str) -> Ticket | None:
        data = self._tickets.get(ticket_id)
        return Ticket.from_bytes(data) if data else None

    async def tickets(self, ticket_ids: list[str]) -> list[Ticket]:
        return [Ticket.from_bytes(self._tickets[i]) for i in ticket_ids if i in self._tickets]

    async def tickets_of(self, customer_id: str, limit: int = 20) -> list[Ticket]:
        return await self.tickets(list(self._by_customer.get(customer_id, ()))[:limit])

    async def add_event(self, ticket_id: str, event: TicketEvent) -> None:
        self._events.setdefault(ticket_id, []).append(event.to_bytes())

    async def events(self, ticket_id: str) -> list[TicketEvent]:
        return [TicketEvent.from_bytes(e) for e in self._events.get(ticket_id, ())]

    async def enqueue(self, ticket_id: str, rank: float) -> None:
        self._queue[ticket_id] = rank

    async def dequeue(self, ticket_id: str) -> bool:
        return self._queue.pop(ticket_id, None) is not None

    async def queued(self, limit: int = 200) -> list[str]:
        return sorted(self._queue, key=lambda t: -self._queue[t])[:limit]

    async def hold(self, ticket_id: str, last_activity: float) -> None:
        self._held[ticket_id] = last_activity

    async def unhold(self, ticket_id: str) -> None:
        self._held.pop(ticket_id, None)

    async def held(self, limit: int = 1000) -> list[tuple[str, float]]:
        return sorted(self._held.items(), key=lambda item: item[1])[:limit]

    async def push_resolution(self, item: dict[str, Any]) -> None:
        self._resolutions.appendleft(item)

    async def list_resolutions(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._resolutions)[:limit]

    async def publish(self, event: dict[str, Any]) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield {"type": "ready"}
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)


class RedisDesk:
    """Shared by hub processes: state in Redis, live events over Redis pub/sub."""

    name = "redis"
    shared = True

    def __init__(self, client: aioredis.Redis, prefix: str = "kefu:", timeout_s: float = 1.0) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.channel = f"{prefix}desk:events"

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @contextlib.asynccontextmanager
    async def _redis(self) -> AsyncIterator[None]:
        """Bound every call in time and report Redis trouble as the session store does."""
        try:
            async with asyncio.timeout(self.timeout_s):
                yield
        except TimeoutError as exc:
            raise StoreUnavailable(f"no answer within {self.timeout_s} s") from exc
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def save_ticket(self, ticket: Ticket, new: bool = False) -> None:
        async with self._redis(), self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._key("ticket", ticket.id), ticket.to_bytes(), ex=TICKET_TTL_S)
            if new:
                index = self._key("tickets", ticket.customer_id)
                pipe.lpush(index, ticket.id)
                pipe.ltrim(index, 0, TICKETS_PER_CUSTOMER - 1)
                pipe.expire(index, TICKET_TTL_S)
            await pipe.execute()

    async def ticket(self, ticket_id: str) -> Ticket | None:
        async with self._redis():
            data = await self.client.get(self._key("ticket", ticket_id))
        return Ticket.from_bytes(data) if data else None

    async def tickets(self, ticket_ids: list[str]) -> list[Ticket]:
        if not ticket_ids:
            return []
        async with self._redis():
            values = await self.client.mget([self._key("ticket", i) for i in ticket_ids])
        return [Ticket.from_bytes(v) for v in values if v]

    async def tickets_of(self, customer_id: str, limit: int = 20) -> list[Ticket]:
        async with self._redis():
            ids = await self.client.lrange(self._key("tickets", customer_id), 0, limit - 1)
        return await self.tickets([i.decode() for i in ids])

    async def add_event(self, ticket_id: str, event: TicketEvent) -> None:
        key = self._key("ticket", ticket_id, "events")
        async with self._redis(), self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(key, event.to_bytes())
            pipe.expire(key, TICKET_TTL_S)
            await pipe.execute()

    async def events(self, ticket_id: str) -> list[TicketEvent]:
        async with self._redis():
            items = await self.client.lrange(self._key("ticket", ticket_id, "events"), 0, -1)
        return [TicketEvent.from_bytes(i) for i in items]

    async def enqueue(self, ticket_id: str, rank: float) -> None:
        async with self._redis():
            await self.client.zadd(self._key("desk", "queue"), {ticket_id: rank})

    async def dequeue(self, ticket_id: str) -> bool:
        async with self._redis():
            return bool(await self.client.zrem(self._key("desk", "queue"), ticket_id))

    async def queued(self, limit: int = 200) -> list[str]:
        async with self._redis():
            ids = await self.client.zrevrange(self._key("desk", "queue"), 0, limit - 1)
        return [i.decode() for i in ids]

    async def hold(self, ticket_id: str, last_activity: float) -> None:
        async with self._redis():
            await self.client.zadd(self._key("desk", "held"), {ticket_id: last_activity})

    async def unhold(self, ticket_id: str) -> None:
        async with self._redis():
            await self.client.zrem(self._key("desk", "held"), ticket_id)

    async def held(self, limit: int = 1000) -> list[tuple[str, float]]:
        async with self._redis():
            items = await self.client.zrange(self._key("desk", "held"), 0, limit - 1, withscores=True)
        return [(i.decode(), float(score)) for i, score in items]

    async def push_resolution(self, item: dict[str, Any]) -> None:
        key = self._key("desk", "resolutions")
        async with self._redis(), self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(key, orjson.dumps(item))
            pipe.ltrim(key, 0, RESOLUTIONS_MAX - 1)
            await pipe.execute()

    async def list_resolutions(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self._redis():
            items = await self.client.lrange(self._key("desk", "resolutions"), 0, limit - 1)
        return [orjson.loads(i) for i in items]

    async def publish(self, event: dict[str, Any]) -> None:
        async with self._redis():
            await self.client.publish(self.channel, orjson.dumps(event))

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Events from the pub/sub channel; reconnects (with backoff) when Redis goes away.

        Events published while disconnected are lost: consoles re-read the queue and the open
        conversation after a reconnect (core.desk turns the second "ready" into "resync"), which is
        where the state lives.
        """
        delay = RECONNECT_MIN_S
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                delay = RECONNECT_MIN_S
                yield {"type": "ready"}
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None or message["type"] != "message":
                        continue
                    try:
                        event = orjson.loads(message["data"])
                    except orjson.JSONDecodeError:
                        log.warning("desk events: a message that is not JSON was ignored")
                        continue
                    yield event
            except (RedisError, OSError) as exc:
                log.warning("desk events: Redis subscription lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
