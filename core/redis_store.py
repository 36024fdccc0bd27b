"""RedisStore: sessions, dedup claims, locks, identity and queues shared by hub processes.

Keys (under a prefix, `kefu:` by default):
  s:<customer>        session (JSON)           lock:<customer>  turn lock (token)
  h:<customer>        its history (list of JSON rows, bounded: a turn appends its entries)
  dedup:<chan:msgid>  "pending" or "done"       id:<chan:user>   customer id when linked
  members:<customer>  channel users linked      phone:<digest>   customer owning a verified phone
  phones:<customer>   phone digests it owns
  unknown             unknown-question queue (newest first, bounded)

The turn scripts derive keys inside Lua, which a single Redis (or Sentinel) allows;
on Redis Cluster they would need one hash slot per customer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from core.redis_pipe import PipelinedRedis, ReplyError
from core.sessions import (
    LockLost,
    LockTimeout,
    OpenTurn,
    Session,
    SessionMerge,
    StoreSettings,
    StoreUnavailable,
    holding,
    new_token,
    wait_for_lock,
)

# ARGV: prefix, channel user key, dedup key or '', claim ttl ms, lock token, lock ttl ms
_OPEN_TURN = """
local p = ARGV[1]
if ARGV[3] ~= '' then
  if not redis.call('SET', p .. 'dedup:' .. ARGV[3], 'pending', 'NX', 'PX', ARGV[4]) then
    return {'dup'}
  end
end
local cid = redis.call('GET', p .. 'id:' .. ARGV[2]) or ARGV[2]
if not redis.call('SET', p .. 'lock:' .. cid, ARGV[5], 'NX', 'PX', ARGV[6]) then
  return {'locked', cid}
end
return {'ok', cid, redis.call('GET', p .. 's:' .. cid) or '', redis.call('LRANGE', p .. 'h:' .. cid, 0, -1)}
"""

# ARGV: prefix, customer, token, session head, session ttl s, dedup key or '', dedup ttl s,
#       history bound (entries), '1' to rewrite the history or '0' to append, history rows...
_CLOSE_TURN = """
local p = ARGV[1]
local lock = p .. 'lock:' .. ARGV[2]
if redis.call('GET', lock) ~= ARGV[3] then return 0 end
redis.call('SET', p .. 's:' .. ARGV[2], ARGV[4], 'EX', ARGV[5])
local h = p .. 'h:' .. ARGV[2]
if ARGV[9] == '1' then redis.call('DEL', h) end
if #ARGV > 9 then
  redis.call('RPUSH', h, unpack(ARGV, 10))
  redis.call('LTRIM', h, -tonumber(ARGV[8]), -1)
end
redis.call('EXPIRE', h, ARGV[5])
redis.call('DEL', lock)
if ARGV[6] ~= '' then redis.call('SET', p .. 'dedup:' .. ARGV[6], 'done', 'EX', ARGV[7]) end
return 1
"""

# ARGV: prefix, customer or '', token, dedup key or ''
_ABANDON_TURN = """
local p = ARGV[1]
if ARGV[2] ~= '' then
  local lock = p .. 'lock:' .. ARGV[2]
  if redis.call('GET', lock) == ARGV[3] then redis.call('DEL', lock) end
end
if ARGV[4] ~= '' then
  local claim = p .. 'dedup:' .. ARGV[4]
  if redis.call('GET', claim) == 'pending' then redis.call('DEL', claim) end
end
return 1
"""

# ARGV: prefix, customer, token, lock ttl ms
_TAKE_LOCK = """
return redis.call('SET', ARGV[1] .. 'lock:' .. ARGV[2], ARGV[3], 'NX', 'PX', ARGV[4]) and 1 or 0
"""


class RedisStore:
    name = "redis"

    def __init__(
        self, client: aioredis.Redis, pipe: PipelinedRedis, settings: StoreSettings | None = None,
        prefix: str = "kefu:", timeout_s: float = 1.0,
    ) -> None:
        self.client = client
        # The turn scripts go through one pipelined connection (core.redis_pipe); the rest through `client`.
        self.pipe = pipe
        self.settings = settings or StoreSettings()
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._shas: dict[str, str] = {}
        # Turns whose release failed (Redis dropped mid-turn): released before the next turn,
        # so a platform retry reaching this process is answered at once, not after the TTLs.
        self._unreleased: list[OpenTurn] = []

    @classmethod
    def from_url(
        cls, url: str, settings: StoreSettings | None = None, prefix: str = "kefu:",
        timeout_s: float = 1.0, max_connections: int = 64,
    ) -> RedisStore:
        # The turn scripts bound their own time (one cheap asyncio.timeout per call, instead of the
        # client's per-read wait_for) and are not retried by the client: a failed turn answers 503 and
        # the platform (or the shopper) retries it whole.
        # A burst beyond max_connections waits (up to timeout_s) for a free connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=None,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        client = aioredis.Redis.from_pool(pool)  # the client owns the pool and closes it
        return cls(client, PipelinedRedis.from_url(url, timeout_s), settings, prefix, timeout_s)

    async def _script(self, source: str, *args: Any) -> Any:
        """EVALSHA on the pipelined connection, loading the script on first use or after a server restart."""
        try:  # the pipe bounds each call by timeout_s
            sha = self._shas.get(source)
            if sha is not None:
                try:
                    return await self.pipe.call("EVALSHA", sha, 0, *args)
                except ReplyError as exc:
                    if not str(exc).startswith("NOSCRIPT"):
                        raise
            sha = (await self.pipe.call("SCRIPT", "LOAD", source)).decode()
            self._shas[source] = sha
            return await self.pipe.call("EVALSHA", sha, 0, *args)
        except TimeoutError as exc:
            raise StoreUnavailable(f"no answer within {self.timeout_s} s") from exc
        except (ReplyError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def open_turn(self, channel_user_key: str, dedup_key: str | None) -> OpenTurn | None:
        if self._unreleased:
            await self._release_leftovers()
        s = self.settings
        token = new_token()
        claim_ms = int(s.pending_claim_ttl_s * 1000)
        lock_ms = int(s.lock_ttl_s * 1000)

        async def attempt(first: bool) -> tuple[str, OpenTurn | None]:
            claim = dedup_key if (first and dedup_key is not None) else ""
            result = await self._script(_OPEN_TURN, self.prefix, channel_user_key, claim, claim_ms, token, lock_ms)
            status = result[0]
            if status == b"dup":
                return "done", None
            if status == b"locked":
                return "locked", None
            customer_id = result[1].decode()
            session = Session.from_parts(customer_id, result[2], result[3])
            return "done", OpenTurn(customer_id, session, token, dedup_key)

        try:
            return await wait_for_lock(attempt, s.lock_wait_s)
        except LockTimeout:
            await self._script(_ABANDON_TURN, self.prefix, "", "", dedup_key or "")
            raise

    async def close_turn(self, turn: OpenTurn, session: Session) -> None:
        head, rows, rewrite = session.to_parts()
        saved = await self._script(
            _CLOSE_TURN, self.prefix, turn.customer_id, turn.lock_token, head,
            self.settings.session_ttl_s, turn.dedup_key or "", self.settings.dedup_ttl_s,
            2 * self.settings.history_turns, "1" if rewrite else "0", *rows,
        )
        if not saved:
            raise LockLost(turn.customer_id)

    async def abandon_turn(self, turn: OpenTurn) -> None:
        try:
            await self._script(_ABANDON_TURN, self.prefix, turn.customer_id, turn.lock_token, turn.dedup_key or "")
        except StoreUnavailable:
            self._unreleased.append(turn)
            raise

    async def _release_leftovers(self) -> None:
        leftovers, self._unreleased = self._unreleased, []
        for turn in leftovers:
            await self.abandon_turn(turn)

    async def load(self, customer_id: str) -> Session:
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.get(f"{self.prefix}s:{customer_id}")
                pipe.lrange(f"{self.prefix}h:{customer_id}", 0, -1)
                head, rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return Session.from_parts(customer_id, head, rows)

    async def resolve(self, channel_user_key: str) -> str:
        try:
            value = await self.client.get(f"{self.prefix}id:{channel_user_key}")
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return value.decode() if value else channel_user_key

    async def register_phone(self, phone_digest: str, customer_id: str) -> str:
        key = f"{self.prefix}phone:{phone_digest}"
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(key, customer_id, nx=True)
                pipe.get(key)
                _, owner = await pipe.execute()
                await self.client.sadd(f"{self.prefix}phones:{owner.decode()}", phone_digest)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return owner.decode()

    async def merge_customers(self, keep: str, absorb: str, merge: SessionMerge) -> None:
        if keep == absorb:
            return
        p = self.prefix
        async with holding(self, (keep, absorb)):
            merged = merge(await self.load(keep), await self.load(absorb))
            merged.customer_id = keep
            try:
                members = {m.decode() for m in await self.client.smembers(f"{p}members:{absorb}")} or {absorb}
                phones = [d.decode() for d in await self.client.smembers(f"{p}phones:{absorb}")]
                head, rows, _ = merged.to_parts()  # a merged session is written whole
                ttl = self.settings.session_ttl_s
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.set(f"{p}s:{keep}", head, ex=ttl)
                    pipe.delete(f"{p}h:{keep}")
                    if rows:
                        pipe.rpush(f"{p}h:{keep}", *rows)
                        pipe.expire(f"{p}h:{keep}", ttl)
                    pipe.delete(f"{p}s:{absorb}", f"{p}h:{absorb}", f"{p}members:{absorb}", f"{p}phones:{absorb}")
                    for member in members:
                        pipe.set(f"{p}id:{member}", keep)
                    pipe.sadd(f"{p}members:{keep}", keep, *members)
                    for phone in phones:
                        pipe.set(f"{p}phone:{phone}", keep)
                    if phones:
                        pipe.sadd(f"{p}phones:{keep}", *phones)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                raise StoreUnavailable(str(exc)) from exc

    async def release_lock(self, customer_id: str, token: str) -> None:
        await self._script(_ABANDON_TURN, self.prefix, customer_id, token, "")

    async def take_lock(self, customer_id: str, token: str) -> None:
        lock_ms = int(self.settings.lock_ttl_s * 1000)

        async def attempt(_first: bool) -> tuple[str, None]:
            taken = await self._script(_TAKE_LOCK, self.prefix, customer_id, token, lock_ms)
            return ("done", None) if taken else ("locked", None)

        await wait_for_lock(attempt, self.settings.lock_wait_s)

    async def push_unknown(self, item: dict[str, Any]) -> None:
        key = f"{self.prefix}unknown"
        try:  # both leave in one write; the queue may exceed its bound between the two for a moment
            await asyncio.gather(self.pipe.call("LPUSH", key, orjson.dumps(item)),
                                 self.pipe.call("LTRIM", key, 0, self.settings.unknown_queue_max - 1))
        except TimeoutError as exc:
            raise StoreUnavailable(f"no answer within {self.timeout_s} s") from exc
        except (ReplyError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def list_unknown(self, limit: int = 100) -> list[dict[str, Any]]:
        try:
            items = await self.client.lrange(f"{self.prefix}unknown", 0, limit - 1)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return [orjson.loads(i) for i in items]

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.pipe.close()
        await self.client.aclose()

