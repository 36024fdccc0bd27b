"""Distances on the earth, and the store index: nearest points within a radius, for many shoppers at once.

Two indexes answer `nearest_many` the same way (up to Redis's 52-bit geohash precision, under a metre):

- `MemoryGeoIndex`, the embedded default: a grid of cells about one radius wide; each query looks at the
  cells around it (more columns towards the poles) and measures the candidates exactly (haversine).
- `RedisGeoIndex`: the points in a Redis GEO set (GEOADD); a Lua script runs GEOSEARCH ... BYRADIUS ASC
  COUNT k WITHDIST for a few thousand queries per call, so 100,000 queries cost ~50 round trips.

Both use Redis's earth radius, so the distances they report agree.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

EARTH_RADIUS_M = 6372797.560856  # the value Redis's GEO commands use
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180
REDIS_MAX_LAT = 85.05112878  # GEOADD refuses points nearer the poles
LUA_CHUNK = 2000  # queries per script call: each call keeps Redis busy for a few milliseconds only

Hit = tuple[str, float]  # point id, distance in metres


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class GeoPoint:
    id: str
    lat: float
    lon: float


class GeoUnavailable(Exception):
    """The index's backend (Redis) could not answer."""


class GeoIndex(Protocol):
    name: str

    async def replace(self, points: Sequence[GeoPoint]) -> None:
        """Index exactly these points."""
        ...

    async def nearest_many(self, queries: Sequence[tuple[float, float]], radius_m: float, k: int,
                           among: Collection[str] | None = None) -> list[list[Hit]]:
        """For each (lat, lon): up to `k` points within `radius_m`, nearest first; only ids in `among` if given."""
        ...


class MemoryGeoIndex:
    name = "memory"

    def __init__(self) -> None:
        self._points: dict[str, GeoPoint] = {}

    async def replace(self, points: Sequence[GeoPoint]) -> None:
        self._points = {p.id: p for p in points}

    async def nearest_many(self, queries: Sequence[tuple[float, float]], radius_m: float, k: int,
                           among: Collection[str] | None = None) -> list[list[Hit]]:
        points = list(self._points.values()) if among is None else [self._points[i] for i in among
                                                                    if i in self._points]
        return nearest_in_grid(points, queries, radius_m, k)


def nearest_in_grid(points: Sequence[GeoPoint], queries: Sequence[tuple[float, float]], radius_m: float,
                    k: int) -> list[list[Hit]]:
    if not points or k < 1:
        return [[] for _ in queries]
    radius_deg = radius_m / METRES_PER_DEGREE
    cell = max(radius_deg, 1e-4)
    columns = math.ceil(360 / cell)
    grid: dict[tuple[int, int], list[tuple[str, float, float, float, float]]] = {}
    for p in points:
        phi = math.radians(p.lat)
        key = (math.floor(p.lat / cell), math.floor((p.lon + 180) / cell) % columns)
        grid.setdefault(key, []).append((p.id, p.lat, p.lon, phi, math.cos(phi)))
    # Queries in one cell share their candidates.
    around: dict[tuple[int, int], list[tuple[str, float, float, float, float]]] = {}
    sin, asin, sqrt, radians = math.sin, math.asin, math.sqrt, math.radians
    two_r = 2 * EARTH_RADIUS_M
    results: list[list[Hit]] = []
    for lat, lon in queries:
        row, col = math.floor(lat / cell), math.floor((lon + 180) / cell) % columns
        candidates = around.get((row, col))
        if candidates is None:
            candidates = around[(row, col)] = _candidates(grid, row, col, cell, columns)
        # A box first (cheap), then the exact distance.
        lon_span = radius_deg / max(math.cos(radians(min(89.9, abs(lat) + radius_deg))), 1e-9)
        phi = radians(lat)
        cos_phi = math.cos(phi)
        hits: list[Hit] = []
        for pid, plat, plon, pphi, pcos in candidates:
            if abs(plat - lat) > radius_deg:
                continue
            dlon = abs(plon - lon)
            if dlon > 180:
                dlon = 360 - dlon
            if dlon > lon_span:
                continue
            a = sin((pphi - phi) / 2) ** 2 + cos_phi * pcos * sin(radians(dlon) / 2) ** 2
            d = two_r * asin(sqrt(a) if a < 1 else 1.0)
            if d <= radius_m:
                hits.append((pid, d))
        if len(hits) > 1:
            hits.sort(key=lambda h: h[1])
            del hits[k:]
        results.append(hits)
    return results


def _candidates(grid: dict[tuple[int, int], list[tuple[str, float, float, float, float]]], row: int, col: int,
                cell: float, columns: int) -> list[tuple[str, float, float, float, float]]:
    # Cells are `cell` degrees both ways: one row each side covers the radius in latitude; in longitude a
    # degree shrinks with cos(latitude), so more columns are needed away from the equator.
    edge = max(abs(row * cell), abs((row + 1) * cell)) + cell
    cos_edge = math.cos(math.radians(min(90.0, edge)))
    span = columns if cos_edge < 1e-6 else min(columns, math.ceil(1 / cos_edge) + 1)
    found: list[tuple[str, float, float, float, float]] = []
    seen: set[int] = set()
    for r in (row - 1, row, row + 1):
        for c in range(col - span, col + span + 1):
            c %= columns
            if (r, c) in grid and (r * columns + c) not in seen:
                seen.add(r * columns + c)
                found.extend(grid[(r, c)])
    return found


_NEAREST_LUA = """
local out = {}
local n = 0
for i = 3, #ARGV, 2 do
  n = n + 1
  out[n] = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[i], ARGV[i + 1], 'BYRADIUS', ARGV[1], 'm',
                      'ASC', 'COUNT', ARGV[2], 'WITHDIST')
end
return out
"""


class RedisGeoIndex:
    name = "redis"

    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self.client = client
        self.key = key
        self._points: dict[str, GeoPoint] = {}
        self._nearest = client.register_script(_NEAREST_LUA)

    async def replace(self, points: Sequence[GeoPoint]) -> None:
        self._points = {p.id: p for p in points}
        try:
            await self._write(self.key, points)
        except (RedisError, OSError) as exc:
            raise GeoUnavailable(str(exc)) from exc

    async def _write(self, key: str, points: Sequence[GeoPoint]) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            values: list[float | str] = []
            for p in points:
                if abs(p.lat) > REDIS_MAX_LAT:
                    raise ValueError(f"{p.id}: Redis GEO cannot index latitude {p.lat}")
                values.extend((p.lon, p.lat, p.id))
            if values:
                pipe.geoadd(key, values)
            await pipe.execute()

    async def nearest_many(self, queries: Sequence[tuple[float, float]], radius_m: float, k: int,
                           among: Collection[str] | None = None) -> list[list[Hit]]:
        if not queries or k < 1:
            return [[] for _ in queries]
        key = self.key
        try:
            if among is not None:
                # The eligible points only, in a key of this call's own.
                key = f"{self.key}:only:{secrets.token_hex(6)}"
                chosen = [self._points[i] for i in among if i in self._points]
                if not chosen:
                    return [[] for _ in queries]
                await self._write(key, chosen)
            try:
                return await self._search(key, queries, radius_m, k)
            finally:
                if key != self.key:
                    await self.client.delete(key)
        except (RedisError, OSError) as exc:
            raise GeoUnavailable(str(exc)) from exc

    async def _search(self, key: str, queries: Sequence[tuple[float, float]], radius_m: float,
                      k: int) -> list[list[Hit]]:
        async with self.client.pipeline(transaction=False) as pipe:
            for start in range(0, len(queries), LUA_CHUNK):
                args: list[float | int] = [radius_m, k]
                for lat, lon in queries[start:start + LUA_CHUNK]:
                    # GEOSEARCH refuses latitudes beyond what GEOADD accepts; such a query finds nothing
                    # anyway unless a point sits at the same extreme latitude.
                    args.extend((lon, max(-REDIS_MAX_LAT, min(REDIS_MAX_LAT, lat))))
                await self._nearest(keys=[key], args=args, client=pipe)
            chunks = await pipe.execute()
        results: list[list[Hit]] = []
        for chunk in chunks:
            for found in chunk:
                results.append([(m.decode() if isinstance(m, bytes) else str(m), float(d)) for m, d in found])
        return results
