"""Stores with coordinates, opening hours and free-sample stock, read from a YAML file.

    samples:
      serum-5ml:
        name: {zh-CN: 精华液体验装 5ml, en: 5 ml serum sample, ja: ..., ar: ...}
    stores:
      - id: sh-jingan
        name: {zh-CN: 静安嘉里中心店, en: Jing'an Kerry Centre, ...}   # or one string for every locale
        address: 1515 West Nanjing Road, Shanghai
        lat: 31.2238
        lon: 121.4477
        timezone: Asia/Shanghai
        hours: {mon-fri: "10:00-22:00", sat-sun: "10:00-22:30"}  # day, day range or daily; "closed"
        samples: {serum-5ml: 40}                                   # stock per sample
        city: {zh-CN: 上海, en: Shanghai, ja: 上海, ar: شنغهاي}          # optional: how shoppers name the city

An end time at or before the start time runs past midnight ("18:00-02:00"); "24:00" is midnight.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from core.push.geo import GeoPoint

if TYPE_CHECKING:
    from core.config import Config

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
BUNDLED = Path(__file__).resolve().parent.parent / "data" / "stores.yaml"


class StoresError(ValueError):
    """A stores file that cannot be used; the message names the file and the store."""


@dataclass(frozen=True, slots=True)
class Hours:
    """Opening minutes of the day, [start, end) from midnight; end may exceed 1440 (past midnight)."""

    start: int
    end: int

    def text(self) -> str:
        def hhmm(minutes: int) -> str:
            minutes %= 1440
            return f"{minutes // 60:02d}:{minutes % 60:02d}"

        return f"{hhmm(self.start)}-{hhmm(self.end) if self.end != 1440 else '24:00'}"


@dataclass(frozen=True, slots=True)
class Store:
    id: str
    names: Mapping[str, str]
    address: str
    lat: float
    lon: float
    timezone: str
    week: tuple[Hours | None, ...]  # Monday first
    samples: Mapping[str, int]
    zone: ZoneInfo = field(compare=False, repr=False, default=ZoneInfo("UTC"))
    city: Mapping[str, str] = field(default_factory=dict)  # locale -> the city's name (the store_nearby skill)

    def name(self, locale: str) -> str:
        return self.names.get(locale) or self.names.get("en") or next(iter(self.names.values()))

    def local(self, at: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(at, self.zone)

    def is_open(self, at: float) -> bool:
        local = self.local(at)
        minute = local.hour * 60 + local.minute
        today = self.week[local.weekday()]
        if today is not None and today.start <= minute < today.end:
            return True
        yesterday = self.week[(local.weekday() - 1) % 7]
        return yesterday is not None and yesterday.end > 1440 and minute < yesterday.end - 1440

    def hours_on(self, at: float) -> Hours | None:
        return self.week[self.local(at).weekday()]

    def stock(self, sample: str) -> int:
        return self.samples.get(sample, 0)

    @property
    def point(self) -> GeoPoint:
        return GeoPoint(self.id, self.lat, self.lon)


@dataclass(frozen=True, slots=True)
class Catalog:
    stores: Mapping[str, Store]
    sample_names: Mapping[str, Mapping[str, str]]  # sample id -> locale -> name

    def sample_name(self, sample: str, locale: str) -> str:
        names = self.sample_names.get(sample) or {}
        return names.get(locale) or names.get("en") or sample

    def open_with_stock(self, sample: str, at: float) -> dict[str, int]:
        """Stores open at `at` with some of `sample` left: id -> stock."""
        return {s.id: s.stock(sample) for s in self.stores.values() if s.stock(sample) > 0 and s.is_open(at)}


def _names(raw: Any, where: str) -> dict[str, str]:
    if isinstance(raw, str) and raw.strip():
        return {"en": raw}
    if isinstance(raw, dict) and raw and all(isinstance(v, str) and v.strip() for v in raw.values()):
        return {str(k): v for k, v in raw.items()}
    raise StoresError(f"{where}: name must be a string or a mapping of locale -> name")


def _days(key: str, where: str) -> list[int]:
    key = key.strip().lower()
    if key in ("daily", "everyday", "mon-sun"):
        return list(range(7))
    if "-" in key:
        first, last = key.split("-", 1)
        if first in DAYS and last in DAYS:
            a, b = DAYS.index(first), DAYS.index(last)
            return [(a + i) % 7 for i in range((b - a) % 7 + 1)]
    if key in DAYS:
        return [DAYS.index(key)]
    raise StoresError(f"{where}: {key!r} is not a day (mon..sun), a range (mon-fri) or daily")


def _hours(value: Any, where: str) -> Hours | None:
    text = str(value).strip().lower()
    if text == "closed":
        return None
    match = _RANGE.match(text)
    if not match:
        raise StoresError(f"{where}: hours {value!r} must look like 10:00-22:00 (or closed)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise StoresError(f"{where}: hours {value!r} out of range")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        end += 1440  # past midnight
    return Hours(start, end)


def _store(raw: Any, where: str) -> Store:
    if not isinstance(raw, dict):
        raise StoresError(f"{where}: each store is a mapping")
    store_id = raw.get("id")
    if not isinstance(store_id, str) or not re.match(r"^[A-Za-z0-9_\-]{1,64}$", store_id):
        raise StoresError(f"{where}: id {store_id!r} must be 1-64 letters, digits, _ or -")
    where = f"{where} ({store_id})"
    unknown = set(raw) - {"id", "name", "address", "lat", "lon", "timezone", "hours", "samples", "city"}
    if unknown:
        raise StoresError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    try:
        lat, lon = float(raw["lat"]), float(raw["lon"])
    except (KeyError, TypeError, ValueError):
        raise StoresError(f"{where}: lat and lon must be numbers") from None
    if not (-85 <= lat <= 85 and -180 <= lon <= 180):
        raise StoresError(f"{where}: lat/lon out of range")
    zone_name = str(raw.get("timezone") or "")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise StoresError(f"{where}: unknown timezone {zone_name!r}") from None
    week: list[Hours | None] = [None] * 7
    hours = raw.get("hours")
    if not isinstance(hours, dict) or not hours:
        raise StoresError(f"{where}: hours must map days to opening hours")
    for days, value in hours.items():
        for day in _days(str(days), where):
            week[day] = _hours(value, where)
    samples = raw.get("samples") or {}
    if not isinstance(samples, dict) or not all(isinstance(v, int) and v >= 0 for v in samples.values()):
        raise StoresError(f"{where}: samples must map sample ids to a stock (a whole number >= 0)")
    return Store(store_id, _names(raw.get("name"), where), str(raw.get("address") or ""), lat, lon, zone_name,
                 tuple(week), {str(k): v for k, v in samples.items()}, zone,
                 _names(raw["city"], f"{where} city") if raw.get("city") else {})


def configured_catalog(config: Config) -> Catalog:
    """The stores of `pushes.stores_file`, else the bundled demo stores (for pushes and the store_nearby skill)."""
    stores_file = config.pushes.stores_file
    return load_catalog(config.resolve_path(stores_file) if stores_file else None)


def load_catalog(path: Path | None = None) -> Catalog:
    path = path or BUNDLED
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StoresError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stores"), list):
        raise StoresError(f"{path}: expected a top-level 'stores:' list")
    stores: dict[str, Store] = {}
    for i, raw in enumerate(data["stores"]):
        store = _store(raw, f"{path.name}: stores[{i}]")
        if store.id in stores:
            raise StoresError(f"{path.name}: store id {store.id!r} appears twice")
        stores[store.id] = store
    samples = data.get("samples") or {}
    if not isinstance(samples, dict):
        raise StoresError(f"{path.name}: samples must map sample ids to their names")
    names = {str(k): _names((v or {}).get("name") if isinstance(v, dict) else v, f"{path.name}: samples.{k}")
             for k, v in samples.items()}
    return Catalog(stores, names)
