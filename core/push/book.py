"""What pushes remember, per customer: how to reach them, location consent, opt-out, caps, sent marks.

Kept apart from sessions on purpose: a session is forgotten after a week of silence, an opt-out must not
be. Every expiry that a rule depends on (consent, location, sent marks) is a timestamp compared with the
caller's clock, not a Redis TTL, so tests can move time; Redis TTLs only clean up.

Redis keys (under the store's prefix, `kefu:` by default):
  push:contact        HASH "<customer>\\x1f<channel>" -> user id, chat id, last inbound, locale, store user (\\x1f)
  push:optout         HASH customer -> when they opted out
  push:consent        ZSET customer, scored by when their location consent ends
  push:loc            HASH customer -> lat, lon, reported at, usable until (4 little-endian doubles)
  push:held:<c>       a shared location waiting for the shopper's yes (short TTL)
  push:cap:<day>      HASH customer -> marketing pushes sent on that local day
  push:mark:<scope>   ZSET subject, scored by until when it counts as sent (e.g. an offer, a reminder)
  push:run:<job>:<t>  the cluster lock of one scheduled run
  push:runs           the last run reports (JSON, newest first)
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.redis_pipe import PipelinedRedis, ReplyError
from core.sessions import StoreUnavailable

T = TypeVar("T")
SEP = "\x1f"
RUNS_KEPT = 200
CAP_TTL_S = 3 * 24 * 3600
LOCATION = struct.Struct("<4d")  # lat, lon, reported at, usable until


@dataclass(slots=True)
class Contact:
    """One channel user of a customer, as last seen in a direct chat."""

    channel: str
    user_id: str
    chat_id: str
    last_inbound: float
    locale: str
    store_user: str | None = None

    def to_bytes(self) -> bytes:
        """Fields joined by SEP: reading 100,000 of them back is a split each, not a JSON parse."""
        fields = (self.user_id, self.chat_id, repr(self.last_inbound), self.locale, self.store_user or "")
        return SEP.join(f.replace(SEP, " ") for f in fields).encode()

    @classmethod
    def from_bytes(cls, channel: str, raw: bytes) -> Contact:
        user_id, chat_id, last, locale, store_user = raw.decode().split(SEP)
        return cls(channel, user_id, chat_id, float(last), locale, store_user or None)


class Located(NamedTuple):  # a tuple: 100,000 of them are made per run, at a third of a dataclass's cost
    customer_id: str
    lat: float
    lon: float
    at: float
    until: float


def dedupe(contacts: dict[str, list[Contact]]) -> dict[str, list[Contact]]:
    """A channel user under two customers (a link merged them later) stays with the one seen last."""
    total = sum(len(items) for items in contacts.values())
    if len({(c.channel, c.user_id) for items in contacts.values() for c in items}) == total:
        return contacts  # the usual case, checked at C speed
    owner: dict[tuple[str, str], tuple[float, str]] = {}
    for customer, items in contacts.items():
        for c in items:
            key = (c.channel, c.user_id)
            known = owner.get(key)
            if known is None or known[0] < c.last_inbound:
                owner[key] = (c.last_inbound, customer)
    return {cid: kept for cid, items in contacts.items()
            if (kept := [c for c in items if owner[(c.channel, c.user_id)][1] == cid])}


class PushBook(Protocol):
    name: str

    async def touch(self, customer_id: str, contact: Contact) -> None: ...

    async def contacts(self) -> dict[str, list[Contact]]: ...

    async def set_opt_out(self, customer_id: str, at: float | None) -> None:
        """Record an opt-out (`at`), or clear it (None)."""
        ...

    async def is_opted_out(self, customer_id: str) -> bool: ...

    async def opted_out(self) -> set[str]: ...

    async def consent_until(self, customer_id: str) -> float:
        """When the customer's location consent ends (0: none)."""
        ...

    async def set_consent(self, customer_id: str, until: float) -> None:
        """Grant until `until`; 0 withdraws it and forgets the location."""
        ...

    async def hold_location(self, customer_id: str, lat: float, lon: float, until: float) -> None: ...

    async def take_held_location(self, customer_id: str, now: float) -> tuple[float, float] | None: ...

    async def set_location(self, customer_id: str, lat: float, lon: float, at: float, until: float) -> None: ...

    async def locations(self, now: float) -> list[Located]:
        """Every location still usable at `now`."""
        ...

    async def marketing_counts(self, day: str) -> dict[str, int]: ...

    async def reserve_marketing(self, day: str, customer_id: str, limit: int) -> bool:
        """Count one marketing push on `day` unless `limit` is reached (atomic across processes)."""
        ...

    async def release_marketing(self, day: str, customer_id: str) -> None: ...

    async def marked(self, scope: str, now: float) -> set[str]: ...

    async def mark(self, scope: str, subject: str, until: float, now: float) -> bool:
        """Mark `subject` as sent until `until`; False if it already was (atomic across processes)."""
        ...

    async def unmark(self, scope: str, subject: str) -> None: ...

    async def claim_run(self, key: str, ttl_s: int) -> bool: ...

    async def record_run(self, report: dict[str, Any]) -> None: ...

    async def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]: ...


class MemoryBook:
    """The embedded default: one process, nothing kept on restart."""

    name = "memory"

    def __init__(self) -> None:
        self._contacts: dict[str, dict[str, Contact]] = {}
        self._optout: dict[str, float] = {}
        self._consent: dict[str, float] = {}
        self._held: dict[str, tuple[float, float, float]] = {}
        self._loc: dict[str, Located] = {}
        self._caps: dict[str, dict[str, int]] = {}
        self._marks: dict[str, dict[str, float]] = {}
        self._runs: dict[str, float] = {}
        self._reports: list[dict[str, Any]] = []

    async def touch(self, customer_id: str, contact: Contact) -> None:
        self._contacts.setdefault(customer_id, {})[contact.channel] = contact

    async def contacts(self) -> dict[str, list[Contact]]:
        return dedupe({cid: list(by_channel.values()) for cid, by_channel in self._contacts.items()})

    async def set_opt_out(self, customer_id: str, at: float | None) -> None:
        if at is None:
            self._optout.pop(customer_id, None)
        else:
            self._optout[customer_id] = at

    async def is_opted_out(self, customer_id: str) -> bool:
        return customer_id in self._optout

    async def opted_out(self) -> set[str]:
        return set(self._optout)

    async def consent_until(self, customer_id: str) -> float:
        return self._consent.get(customer_id, 0.0)

    async def set_consent(self, customer_id: str, until: float) -> None:
        if until > 0:
            self._consent[customer_id] = until
            return
        self._consent.pop(customer_id, None)
        self._loc.pop(customer_id, None)
        self._held.pop(customer_id, None)

    async def hold_location(self, customer_id: str, lat: float, lon: float, until: float) -> None:
        self._held[customer_id] = (lat, lon, until)

    async def take_held_location(self, customer_id: str, now: float) -> tuple[float, float] | None:
        held = self._held.pop(customer_id, None)
        return (held[0], held[1]) if held is not None and held[2] > now else None

    async def set_location(self, customer_id: str, lat: float, lon: float, at: float, until: float) -> None:
        self._loc[customer_id] = Located(customer_id, lat, lon, at, until)

    async def locations(self, now: float) -> list[Located]:
        expired = [cid for cid, loc in self._loc.items() if loc.until <= now]
        for cid in expired:
            del self._loc[cid]
        return list(self._loc.values())

    async def marketing_counts(self, day: str) -> dict[str, int]:
        return dict(self._caps.get(day, {}))

    async def reserve_marketing(self, day: str, customer_id: str, limit: int) -> bool:
        counts = self._caps.setdefault(day, {})
        if counts.get(customer_id, 0) >= limit:
            return False
        counts[customer_id] = counts.get(customer_id, 0) + 1
        return True

    async def release_marketing(self, day: str, customer_id: str) -> None:
        counts = self._caps.get(day, {})
        if counts.get(customer_id, 0) > 1:
            counts[customer_id] -= 1
        else:
            counts.pop(customer_id, None)

    async def marked(self, scope: str, now: float) -> set[str]:
        marks = self._marks.get(scope, {})
        return {s for s, until in marks.items() if until > now}

    async def mark(self, scope: str, subject: str, until: float, now: float) -> bool:
        marks = self._marks.setdefault(scope, {})
        if marks.get(subject, 0.0) > now:
            return False
        marks[subject] = until
        return True

    async def unmark(self, scope: str, subject: str) -> None:
        self._marks.get(scope, {}).pop(subject, None)

    async def claim_run(self, key: str, ttl_s: int) -> bool:
        now = time.monotonic()
        if self._runs.get(key, 0.0) > now:
            return False
        self._runs[key] = now + ttl_s
        return True

    async def record_run(self, report: dict[str, Any]) -> None:
        self._reports.insert(0, report)
        del self._reports[RUNS_KEPT:]

    async def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._reports[:limit]


# ARGV: field, limit, ttl s
_RESERVE = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
if n > tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
  return 0
end
return 1
"""

# ARGV: subject, until, now
_MARK = """
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) > tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""


class RedisBook:
    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str = "kefu:", timeout_s: float = 1.0,
                 bulk_timeout_s: float = 30.0, pipe: PipelinedRedis | None = None) -> None:
        self.client = client
        self.pipe = pipe  # the sessions' pipelined connection: the per-turn contact upkeep goes through it
        self.p = f"{prefix}push:"
        self.timeout_s = timeout_s
        self.bulk_timeout_s = bulk_timeout_s
        self._reserve = client.register_script(_RESERVE)
        self._mark = client.register_script(_MARK)

    async def _do(self, call: Awaitable[T], bulk: bool = False) -> T:
        try:
            async with asyncio.timeout(self.bulk_timeout_s if bulk else self.timeout_s):
                return await call
        except TimeoutError as exc:
            raise StoreUnavailable("the push book did not answer in time") from exc
        except (RedisError, ReplyError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def touch(self, customer_id: str, contact: Contact) -> None:
        key, field = f"{self.p}contact", f"{customer_id}{SEP}{contact.channel}"
        hset = self.pipe.call("HSET", key, field, contact.to_bytes()) if self.pipe else self.client.hset(
            key, field, contact.to_bytes())
        await self._do(hset)

    async def contacts(self) -> dict[str, list[Contact]]:
        raw = await self._do(self.client.hgetall(f"{self.p}contact"), bulk=True)
        found: dict[str, list[Contact]] = {}
        for field, value in raw.items():
            customer, _, channel = field.decode().rpartition(SEP)
            user_id, chat_id, last, locale, store_user = value.decode().split(SEP)  # Contact.from_bytes, inlined
            contact = Contact(channel, user_id, chat_id, float(last), locale, store_user or None)
            if customer in found:
                found[customer].append(contact)
            else:
                found[customer] = [contact]
        return dedupe(found)

    async def set_opt_out(self, customer_id: str, at: float | None) -> None:
        key = f"{self.p}optout"
        if at is None:
            await self._do(self.client.hdel(key, customer_id))
        else:
            await self._do(self.client.hset(key, customer_id, repr(at)))

    async def is_opted_out(self, customer_id: str) -> bool:
        return bool(await self._do(self.client.hexists(f"{self.p}optout", customer_id)))

    async def opted_out(self) -> set[str]:
        return {k.decode() for k in await self._do(self.client.hkeys(f"{self.p}optout"), bulk=True)}

    async def consent_until(self, customer_id: str) -> float:
        score = await self._do(self.client.zscore(f"{self.p}consent", customer_id))
        return float(score or 0.0)

    async def set_consent(self, customer_id: str, until: float) -> None:
        if until > 0:
            await self._do(self.client.zadd(f"{self.p}consent", {customer_id: until}))
            return

        async def withdraw() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zrem(f"{self.p}consent", customer_id)
                pipe.hdel(f"{self.p}loc", customer_id)
                pipe.delete(f"{self.p}held:{customer_id}")
                await pipe.execute()

        await self._do(withdraw())

    async def hold_location(self, customer_id: str, lat: float, lon: float, until: float) -> None:
        ttl = max(1, int(until - time.time()) + 60)  # cleanup only; `until` decides
        await self._do(self.client.set(f"{self.p}held:{customer_id}", orjson.dumps([lat, lon, until]), ex=ttl))

    async def take_held_location(self, customer_id: str, now: float) -> tuple[float, float] | None:
        raw = await self._do(self.client.getdel(f"{self.p}held:{customer_id}"))
        if not raw:
            return None
        lat, lon, until = orjson.loads(raw)
        return (float(lat), float(lon)) if until > now else None

    async def set_location(self, customer_id: str, lat: float, lon: float, at: float, until: float) -> None:
        await self._do(self.client.hset(f"{self.p}loc", customer_id, LOCATION.pack(lat, lon, at, until)))

    async def locations(self, now: float) -> list[Located]:
        raw = await self._do(self.client.hgetall(f"{self.p}loc"), bulk=True)
        live: list[Located] = []
        expired: list[bytes] = []
        values = LOCATION.iter_unpack(b"".join(raw.values()))  # all of them in one C loop
        for field, (lat, lon, at, until) in zip(raw, values, strict=True):
            if until > now:
                live.append(Located(field.decode(), lat, lon, at, until))
            else:
                expired.append(field)
        if expired:
            await self._do(self.client.hdel(f"{self.p}loc", *expired), bulk=True)
        return live

    async def marketing_counts(self, day: str) -> dict[str, int]:
        raw = await self._do(self.client.hgetall(f"{self.p}cap:{day}"), bulk=True)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def reserve_marketing(self, day: str, customer_id: str, limit: int) -> bool:
        return bool(await self._do(self._reserve(keys=[f"{self.p}cap:{day}"], args=[customer_id, limit, CAP_TTL_S])))

    async def release_marketing(self, day: str, customer_id: str) -> None:
        await self._do(self.client.hincrby(f"{self.p}cap:{day}", customer_id, -1))

    async def marked(self, scope: str, now: float) -> set[str]:
        key = f"{self.p}mark:{scope}"

        async def read() -> list[bytes]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrangebyscore(key, f"({now!r}", "+inf")
                return list((await pipe.execute())[1])

        return {m.decode() for m in await self._do(read(), bulk=True)}

    async def mark(self, scope: str, subject: str, until: float, now: float) -> bool:
        return bool(await self._do(self._mark(keys=[f"{self.p}mark:{scope}"], args=[subject, repr(until), repr(now)])))

    async def unmark(self, scope: str, subject: str) -> None:
        await self._do(self.client.zrem(f"{self.p}mark:{scope}", subject))

    async def claim_run(self, key: str, ttl_s: int) -> bool:
        return bool(await self._do(self.client.set(f"{self.p}run:{key}", "1", nx=True, ex=ttl_s)))

    async def record_run(self, report: dict[str, Any]) -> None:
        async def push() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.lpush(f"{self.p}runs", orjson.dumps(report))
                pipe.ltrim(f"{self.p}runs", 0, RUNS_KEPT - 1)
                await pipe.execute()

        await self._do(push())

    async def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        raw = await self._do(self.client.lrange(f"{self.p}runs", 0, limit - 1))
        return [orjson.loads(r) for r in raw]
