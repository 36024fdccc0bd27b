"""Nearest stores: the in-memory grid and Redis GEOSEARCH, each against a brute-force haversine check on
random points; stores' opening hours and the bundled store file."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from core.push.geo import GeoIndex, GeoPoint, MemoryGeoIndex, RedisGeoIndex, haversine_m
from core.push.stores import StoresError, load_catalog
from tests.conftest import REDIS_URL

# Redis keeps positions as 52-bit geohashes (under a metre off), so distances agree to within this.
TOLERANCE_M = 1.0


def brute_force(points: list[GeoPoint], lat: float, lon: float, radius_m: float) -> list[tuple[float, str]]:
    return sorted((d, p.id) for p in points if (d := haversine_m(lat, lon, p.lat, p.lon)) <= radius_m)


def random_world(seed: int) -> tuple[list[GeoPoint], list[tuple[float, float]]]:
    """Stores clustered around cities (one near the date line, one far north), shoppers around them."""
    rnd = random.Random(seed)
    cities = [(31.23, 121.47), (35.68, 139.76), (25.20, 55.27), (-33.87, 151.21), (64.15, -21.94),
              (-16.5, 179.9), (0.0, 0.0)]
    points = []
    for i in range(600):
        lat, lon = cities[i % len(cities)]
        points.append(GeoPoint(f"s{i}", max(-84.0, min(84.0, lat + rnd.gauss(0, 0.08))),
                               (lon + rnd.gauss(0, 0.08) + 180) % 360 - 180))
    queries = []
    for _ in range(1500):
        lat, lon = cities[rnd.randrange(len(cities))]
        spread = rnd.choice((0.02, 0.1, 0.4))
        queries.append((max(-84.0, min(84.0, lat + rnd.gauss(0, spread))),
                        (lon + rnd.gauss(0, spread) + 180) % 360 - 180))
    return points, queries


async def check_against_brute_force(index: GeoIndex, seed: int) -> None:
    points, queries = random_world(seed)
    await index.replace(points)
    rnd = random.Random(seed + 1)
    among = {p.id for p in points if rnd.random() < 0.7}
    eligible = [p for p in points if p.id in among]
    for radius_m, k in ((500.0, 1), (3000.0, 3), (15000.0, 5)):
        for subset, only in ((points, None), (eligible, among)):
            found = await index.nearest_many(queries, radius_m, k, among=only)
            assert len(found) == len(queries)
            for (lat, lon), hits in zip(queries, found, strict=True):
                truth = brute_force(subset, lat, lon, radius_m)
                # Points within a metre of the edge may fall either side, by the geohash rounding.
                certain = [t for t in truth if t[0] <= radius_m - TOLERANCE_M]
                assert len(hits) <= k
                assert len(hits) >= min(k, len(certain)), (lat, lon, radius_m, hits, truth[:k])
                assert [d for _, d in hits] == sorted(d for _, d in hits)
                for rank, (point_id, distance) in enumerate(hits):
                    assert point_id in {p.id for p in subset}
                    assert distance <= radius_m + TOLERANCE_M
                    # The i-th hit is as near as the i-th nearest point (ties may swap ids).
                    assert abs(distance - truth[rank][0]) <= TOLERANCE_M, (lat, lon, hits, truth[:k])
                    exact = next(d for d, pid in truth if pid == point_id)
                    assert abs(distance - exact) <= TOLERANCE_M


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_memory_index_finds_what_brute_force_finds(seed: int) -> None:
    await check_against_brute_force(MemoryGeoIndex(), seed)


@pytest.mark.parametrize("seed", [3, 4])
async def test_redis_geosearch_finds_what_brute_force_finds(seed: int, redis_prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await check_against_brute_force(RedisGeoIndex(client, f"{redis_prefix}push:stores"), seed)
        # The per-call key of the eligible subset is gone afterwards.
        assert [k async for k in client.scan_iter(match=f"{redis_prefix}push:stores:only:*")] == []
    finally:
        await client.aclose()


async def test_no_points_and_no_queries() -> None:
    index = MemoryGeoIndex()
    assert await index.nearest_many([(31.2, 121.4)], 3000, 3) == [[]]
    await index.replace([GeoPoint("a", 31.2, 121.4)])
    assert await index.nearest_many([], 3000, 3) == []
    assert await index.nearest_many([(31.2, 121.4)], 3000, 3, among=[]) == [[]]


def at(zone: str, *fields: int) -> float:
    from zoneinfo import ZoneInfo

    return dt.datetime(*fields, tzinfo=ZoneInfo(zone)).timestamp()


def test_the_bundled_stores_load_with_hours_in_their_own_zone() -> None:
    catalog = load_catalog()
    assert {s.id[:2] for s in catalog.stores.values()} == {"sh", "bj", "tk", "dx"}
    jingan = catalog.stores["sh-jingan"]
    assert jingan.name("zh-CN") == "静安嘉里中心店" and jingan.name("en") == "Jing'an Kerry Centre"
    assert jingan.is_open(at("Asia/Shanghai", 2026, 5, 6, 10, 0))
    assert not jingan.is_open(at("Asia/Shanghai", 2026, 5, 6, 22, 0))
    # Dubai Mall on a Friday: open until 01:00, i.e. into Saturday morning.
    mall = catalog.stores["dx-dubai-mall"]
    assert mall.is_open(at("Asia/Dubai", 2026, 5, 9, 0, 30))  # Saturday 00:30, from Friday's hours
    assert not mall.is_open(at("Asia/Dubai", 2026, 5, 12, 0, 30))  # Tuesday 00:30: Monday closed at 24:00
    assert mall.hours_on(at("Asia/Dubai", 2026, 5, 8, 12, 0)).text() == "10:00-01:00"
    # Out of stock at one Shanghai store: not among the stores that can hand the sample out.
    open_now = catalog.open_with_stock("serum-5ml", at("Asia/Shanghai", 2026, 5, 6, 11, 0))
    assert "sh-jingan" in open_now and "sh-xujiahui" not in open_now and "tk-ginza" in open_now
    assert catalog.sample_name("serum-5ml", "ja") == "美容液サンプル（5ml）"


def test_a_broken_store_file_names_the_store(tmp_path: Path) -> None:
    path = tmp_path / "stores.yaml"
    path.write_text("stores:\n  - {id: x1, name: X, lat: 31, lon: 121, timezone: Asia/Shanghai, "
                    "hours: {mon-fri: '9-18'}}\n", encoding="utf-8")
    with pytest.raises(StoresError, match=r"x1.*10:00-22:00"):
        load_catalog(path)
