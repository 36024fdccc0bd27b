"""Distances on the earth, and the store index: nearest points within a radius, for many shoppers at once.

Queries are batched by place: shoppers fall into grid cells about one radius wide (wider in degrees towards
the poles), the index is asked once per cell for every point the radius can reach from anywhere in that
cell, and each shopper's candidates are then measured exactly (haversine) and ranked.

- `MemoryGeoIndex`, the embedded default: the points in the same grid, in this process.
- `RedisGeoIndex`: the points in a Redis GEO set (GEOADD), shared by every hub process; one GEOSEARCH ...
  BYRADIUS WITHCOORD per cell (from the cell's centre, radius plus half its diagonal), pipelined. 100,000
  shoppers around four cities make ~4,000 searches instead of 100,000, and the distances use the positions
  Redis keeps (52-bit geohashes, under a metre from what was added) and Redis's earth radius, so they are
  the distances GEODIST / GEOSEARCH WITHDIST report.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

EARTH_RADIUS_M = 6372797.560856  # the value Redis's GEO commands use
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180
REDIS_MAX_LAT = 85.05112878  # GEOADD refuses points nearer the poles
PIPELINE_CHUNK = 2000  # searches per round trip

Hit = tuple[str, float]  # point id, distance in metres
Candidate = tuple[str, float, float, float, float, float]  # id, lat, lon, and the point on the unit sphere
Cell = tuple[int, int]


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


def candidate(point_id: str, lat: float, lon: float) -> Candidate:
    phi, lam = math.radians(lat), math.radians(lon)
    return point_id, lat, lon, math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)


class Grid:
    """Rows one radius high; in each row, columns about one radius wide in kilometres."""

    def __init__(self, radius_m: float) -> None:
        self.radius_m = radius_m
        self.radius_deg = radius_m / METRES_PER_DEGREE
        self.row_deg = max(self.radius_deg, 1e-5)
        self._widths: dict[int, tuple[float, int]] = {}

    def width(self, row: int) -> tuple[float, int]:
        """Column width in degrees of longitude, and the number of columns, of one row."""
        known = self._widths.get(row)
        if known is None:
            width = min(360.0, self.row_deg / max(math.cos(math.radians(self.poleward(row))), 1e-9))
            known = self._widths[row] = (width, max(1, math.ceil(360 / width)))
        return known

    def poleward(self, row: int) -> float:
        return min(89.999, max(abs(row * self.row_deg), abs((row + 1) * self.row_deg)))

    def key(self, lat: float, lon: float) -> Cell:
        row = math.floor(lat / self.row_deg)
        width, columns = self.width(row)
        return row, min(columns - 1, math.floor((lon + 180) / width))

    def lon_span(self, lat: float) -> float:
        """Degrees of longitude the radius can reach from latitude `lat` (at the circle's poleward edge)."""
        edge = min(89.999, abs(lat) + self.radius_deg)
        return min(180.0, self.radius_deg / max(math.cos(math.radians(edge)), 1e-9))

    def bounds(self, cell: Cell) -> tuple[float, float, float, float]:
        """south, north, west, east (west may be < -180 never; east may exceed 180 in the last column)."""
        row, col = cell
        width, _ = self.width(row)
        return row * self.row_deg, (row + 1) * self.row_deg, col * width - 180, (col + 1) * width - 180

    def reach(self, cell: Cell) -> tuple[tuple[float, float], float]:
        """A circle (centre, radius in metres) holding every point within the radius of any point of the cell."""
        south, north, west, east = self.bounds(cell)
        lat, lon = (south + north) / 2, (west + east) / 2
        corners = max(haversine_m(lat, lon, south, west), haversine_m(lat, lon, north, west))
        return (max(-REDIS_MAX_LAT, min(REDIS_MAX_LAT, lat)), (lon + 180) % 360 - 180), self.radius_m + corners + 1


def scan(grid: Grid, queries: Sequence[tuple[float, float]], keys: Sequence[Cell],
         candidates: dict[Cell, list[Candidate]], k: int) -> list[list[Hit]]:
    """Each query against its cell's candidates, nearest k first.

    Points are compared by the straight-line (chord) distance between them on the unit sphere: a few
    multiplications instead of haversine's trigonometry, and the same order, since the great-circle distance
    2R·asin(chord/2) grows with the chord. Only the hits are turned into metres.
    """
    sin, cos, asin, sqrt = math.sin, math.cos, math.asin, math.sqrt
    rad = math.pi / 180
    two_r = 2 * EARTH_RADIUS_M
    limit = (2 * sin(min(math.pi / 2, grid.radius_m / two_r))) ** 2  # the radius as a squared chord
    by_chord = itemgetter(1)
    results: list[list[Hit]] = []
    for (lat, lon), key in zip(queries, keys, strict=True):
        found = candidates.get(key)
        if not found:
            results.append([])
            continue
        phi, lam = lat * rad, lon * rad
        cos_phi = cos(phi)
        qx, qy, qz = cos_phi * cos(lam), cos_phi * sin(lam), sin(phi)
        near: list[tuple[str, float]] = []
        for pid, _, _, x, y, z in found:
            dx, dy, dz = x - qx, y - qy, z - qz
            chord2 = dx * dx + dy * dy + dz * dz
            if chord2 <= limit:
                near.append((pid, chord2))
        if len(near) > 1:
            near.sort(key=by_chord)
            del near[k:]
        results.append([(pid, two_r * asin(min(1.0, sqrt(chord2) / 2))) for pid, chord2 in near])
    return results


def near_cell(grid: Grid, cell: Cell, found: Iterable[Candidate]) -> list[Candidate]:
    """The candidates within the radius of some point of the cell: measured to the nearest point of the
    cell's edges (its latitude and longitude clamped), with 1% to spare for the curvature that clamping
    ignores. Drops the far corners of the search area, about half of it."""
    south, north, west, east = grid.bounds(cell)
    limit = grid.radius_m * 1.01 + 1
    kept = []
    for c in found:
        lat, lon = c[1], c[2]
        # The longitude nearest the cell, unwrapped to the cell's side of the antimeridian.
        if lon < west - 180:
            lon += 360
        elif lon > east + 180:
            lon -= 360
        if haversine_m(lat, lon, min(max(lat, south), north), min(max(lon, west), east)) <= limit:
            kept.append(c)
    return kept


def _keys(grid: Grid, queries: Iterable[tuple[float, float]]) -> list[Cell]:
    return [grid.key(lat, lon) for lat, lon in queries]


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
    if not points or not queries or k < 1:
        return [[] for _ in queries]
    grid = Grid(radius_m)
    cells: dict[Cell, list[Candidate]] = {}
    for p in points:
        cells.setdefault(grid.key(p.lat, p.lon), []).append(candidate(p.id, p.lat, p.lon))
    keys = _keys(grid, queries)
    candidates = {key: near_cell(grid, key, _around(grid, cells, key)) for key in set(keys)}
    return scan(grid, queries, keys, candidates, k)


def _around(grid: Grid, cells: dict[Cell, list[Candidate]], cell: Cell) -> list[Candidate]:
    """Every point the radius can reach from anywhere in `cell`: one row each side, and the columns of each
    row that the radius reaches from the cell's west and east edges."""
    row = cell[0]
    _, _, west, east = grid.bounds(cell)
    span = grid.lon_span(grid.poleward(row))
    low, high = west - span, east + span
    if high - low >= 360:
        spans = [(-180.0, 180.0)]
    elif low < -180:  # across the antimeridian: two stretches of longitude
        spans = [(low + 360, 180.0), (-180.0, high)]
    elif high >= 180:
        spans = [(low, 180.0), (-180.0, high - 360)]
    else:
        spans = [(low, high)]
    found: list[Candidate] = []
    for r in (row - 1, row, row + 1):
        width, columns = grid.width(r)
        reach: set[int] = set()
        for a, b in spans:
            first, last = math.floor((a + 180) / width), math.floor((b + 180) / width)
            reach.update(range(max(0, first), min(columns - 1, last) + 1))
        for c in reach:
            found.extend(cells.get((r, c), ()))
    return found


class RedisGeoIndex:
    name = "redis"

    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    async def replace(self, points: Sequence[GeoPoint]) -> None:
        values: list[float | str] = []
        for p in points:
            if abs(p.lat) > REDIS_MAX_LAT:
                raise ValueError(f"{p.id}: Redis GEO cannot index latitude {p.lat}")
            values.extend((p.lon, p.lat, p.id))
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(self.key)
                if values:
                    pipe.geoadd(self.key, values)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise GeoUnavailable(str(exc)) from exc

    async def nearest_many(self, queries: Sequence[tuple[float, float]], radius_m: float, k: int,
                           among: Collection[str] | None = None) -> list[list[Hit]]:
        if not queries or k < 1:
            return [[] for _ in queries]
        grid = Grid(radius_m)
        keys = _keys(grid, queries)
        cells = list(set(keys))
        wanted = None if among is None else {i.encode() if isinstance(i, str) else i for i in among}
        candidates: dict[Cell, list[Candidate]] = {}
        try:
            for start in range(0, len(cells), PIPELINE_CHUNK):
                part = cells[start:start + PIPELINE_CHUNK]
                async with self.client.pipeline(transaction=False) as pipe:
                    for cell in part:
                        (lat, lon), reach_m = grid.reach(cell)
                        pipe.execute_command("GEOSEARCH", self.key, "FROMLONLAT", lon, lat, "BYRADIUS", reach_m,
                                             "m", "WITHCOORD")
                    answers = await pipe.execute()
                for cell, found in zip(part, answers, strict=True):
                    candidates[cell] = near_cell(grid, cell, [candidate(m.decode(), float(lat), float(lon))
                                                              for m, (lon, lat) in found
                                                              if wanted is None or m in wanted])
        except (RedisError, OSError) as exc:
            raise GeoUnavailable(str(exc)) from exc
        return scan(grid, queries, keys, candidates, k)
