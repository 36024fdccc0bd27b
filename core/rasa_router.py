"""Rasa NLU as the first stage of understanding, with the keyword router as its degraded mode.

A parse is looked up in a per-process LRU, then (when configured) in Redis shared by all hub
processes, and only then sent to a Rasa server's `POST /model/parse`. Cache keys carry the
model's fingerprint, so a retrained model never answers from the old model's cache. Several
Rasa URLs are used round robin; one that fails is left alone for a while (then tried again),
and when none answers the keyword router answers instead, which /healthz and /metrics show.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.entities import normalize_order_id
from core.keyword_router import KeywordRouter
from core.metrics import Metrics
from core.nlu import Entity, IntentScore, NluResult

log = logging.getLogger("kefu.nlu")

FALLBACK_INTENT = "nlu_fallback"


def normalize_text(text: str) -> str:
    """What the model sees: full-width folded to half-width, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _entity(raw: dict[str, Any]) -> Entity:
    name, value = str(raw.get("entity")), str(raw.get("value"))
    if name == "order_id":
        value = normalize_order_id(value) or value
    return Entity(name, value)


def result_from_rasa(data: dict[str, Any]) -> NluResult:
    """Rasa's parse JSON to our result; `nlu_fallback` yields the best real intent (below threshold)."""
    ranking = tuple(
        IntentScore(str(r["name"]), float(r["confidence"]))
        for r in data.get("intent_ranking") or ()
        if r.get("name") and r["name"] != FALLBACK_INTENT
    )
    intent = data.get("intent") or {}
    name, confidence = intent.get("name"), float(intent.get("confidence") or 0.0)
    if name == FALLBACK_INTENT or not name:
        name, confidence = (ranking[0].intent, ranking[0].confidence) if ranking else (None, 0.0)
    seen: set[tuple[str, str]] = set()
    entities = []
    for raw in data.get("entities") or ():
        entity = _entity(raw)
        if (entity.name, entity.value) not in seen:
            seen.add((entity.name, entity.value))
            entities.append(entity)
    return NluResult(name, confidence, tuple(entities), ranking, "rasa")


def _encode(result: NluResult) -> bytes:
    return orjson.dumps({
        "i": result.intent, "c": result.confidence,
        "e": [[e.name, e.value] for e in result.entities],
        "r": [[s.intent, s.confidence] for s in result.ranking],
    })


def _decode(data: bytes) -> NluResult:
    raw = orjson.loads(data)
    return NluResult(raw["i"], raw["c"], tuple(Entity(n, v) for n, v in raw["e"]),
                     tuple(IntentScore(n, c) for n, c in raw["r"]), "cache")


@dataclass(slots=True)
class RasaEndpoint:
    url: str
    down_until: float = 0.0
    fingerprint: str = ""


class RasaRouter:
    name = "rasa"

    def __init__(
        self,
        urls: list[str],
        token: str,
        metrics: Metrics,
        fallback: KeywordRouter | None = None,
        timeout_s: float = 0.3,
        cache_entries: int = 20_000,
        redis: aioredis.Redis | None = None,
        cache_ttl_s: int = 24 * 3600,
        retry_after_s: float = 5.0,
        redis_prefix: str = "kefu:",
    ) -> None:
        if not urls:
            raise ValueError("at least one Rasa URL")
        self.endpoints = [RasaEndpoint(u.rstrip("/")) for u in urls]
        self.token = token
        self.metrics = metrics
        self.fallback = fallback or KeywordRouter()
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.cache_entries = cache_entries
        self.redis = redis
        self.cache_ttl_s = cache_ttl_s
        self.retry_after_s = retry_after_s
        self.redis_prefix = redis_prefix
        self._lru: OrderedDict[str, NluResult] = OrderedDict()
        self._next = 0
        self._http: aiohttp.ClientSession | None = None
        self.degraded = False

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            # One pooled session: keep-alive connections to each Rasa server.
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=60))
        return self._http

    @property
    def fingerprint(self) -> str:
        return next((e.fingerprint for e in self.endpoints if e.fingerprint), "")

    def _key(self, text: str) -> str:
        digest = hashlib.blake2b(text.lower().encode(), digest_size=12).hexdigest()
        return f"{self.fingerprint}:{digest}"

    async def parse(self, text: str, locale: str) -> NluResult:
        text = normalize_text(text)
        key = self._key(text)
        cached = self._lru.get(key)
        if cached is not None:
            self._lru.move_to_end(key)
            self.metrics.nlu_parses.labels("memory").inc()
            return cached
        shared = await self._redis_get(key)
        if shared is not None:
            self._remember(key, shared)
            self.metrics.nlu_parses.labels("redis").inc()
            return shared
        started = time.perf_counter()
        result = await self._ask_rasa(text)
        if result is None:
            self.metrics.nlu_parses.labels("degraded").inc()
            return self.fallback.parse_now(text)
        self.metrics.nlu_seconds.observe(time.perf_counter() - started)
        self.metrics.nlu_parses.labels("rasa").inc()
        key = self._key(text)  # the first answer may have told us the model's fingerprint
        self._remember(key, result)
        await self._redis_set(key, result)
        return result

    def _remember(self, key: str, result: NluResult) -> None:
        self._lru[key] = result
        if len(self._lru) > self.cache_entries:
            self._lru.popitem(last=False)

    async def _redis_get(self, key: str) -> NluResult | None:
        if self.redis is None or not self.fingerprint:
            return None
        try:
            data = await self.redis.get(f"{self.redis_prefix}nlu:{key}")
        except (RedisError, OSError):
            return None  # the cache is an optimisation: Rasa still answers
        return _decode(data) if data else None

    async def _redis_set(self, key: str, result: NluResult) -> None:
        if self.redis is None or not self.fingerprint:
            return
        with contextlib.suppress(RedisError, OSError):  # the cache is an optimisation
            await self.redis.set(f"{self.redis_prefix}nlu:{key}", _encode(result), ex=self.cache_ttl_s)

    def _candidates(self) -> list[RasaEndpoint]:
        """Healthy endpoints in round-robin order; if none is, all of them (a half-open retry)."""
        now = time.monotonic()
        n = len(self.endpoints)
        start, self._next = self._next, (self._next + 1) % n
        ordered = [self.endpoints[(start + i) % n] for i in range(n)]
        healthy = [e for e in ordered if e.down_until <= now]
        return healthy or ordered[:1]

    async def _ask_rasa(self, text: str) -> NluResult | None:
        for endpoint in self._candidates():
            try:
                async with self.http.post(f"{endpoint.url}/model/parse", params={"token": self.token},
                                          json={"text": text}, timeout=self.timeout) as response:
                    if response.status != 200:
                        raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
                    data = await response.json(loads=orjson.loads)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                endpoint.down_until = time.monotonic() + self.retry_after_s
                self.metrics.error("nlu")
                log.warning("Rasa at %s failed (%s); trying elsewhere", endpoint.url, type(exc).__name__)
                continue
            self._set_degraded(False)
            return result_from_rasa(data)
        self._set_degraded(True)
        return None

    def _set_degraded(self, degraded: bool) -> None:
        if degraded != self.degraded:
            self.degraded = degraded
            log.warning("NLU %s", "degraded: the keyword router answers" if degraded else "recovered: Rasa answers")
            self.metrics.nlu_degraded.set(int(degraded))

    async def _probe(self, endpoint: RasaEndpoint) -> bool:
        try:
            async with self.http.get(f"{endpoint.url}/status", params={"token": self.token},
                                     timeout=aiohttp.ClientTimeout(total=1)) as response:
                if response.status != 200:
                    return False
                status = await response.json(loads=orjson.loads)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            endpoint.down_until = time.monotonic() + self.retry_after_s
            return False
        endpoint.fingerprint = str(status.get("fingerprint", {}).get("nlu") or status.get("model_id")
                                   or status.get("model_file") or "")
        endpoint.down_until = 0.0
        return True

    def servers_up(self) -> int:
        """Endpoints not marked down (as of the last request or probe)."""
        now = time.monotonic()
        return sum(e.down_until <= now for e in self.endpoints)

    async def ping(self) -> bool:
        """Health check: every endpoint probed; up when at least one answers."""
        results = await asyncio.gather(*(self._probe(e) for e in self.endpoints))
        self._set_degraded(not any(results))
        return any(results)

    async def wait_ready(self, timeout_s: float) -> bool:
        """At start: wait until a Rasa server answers, then warm the model with one parse."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self.ping():
                await self._ask_rasa("你好")
                return True
            await asyncio.sleep(0.25)
        return False

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
