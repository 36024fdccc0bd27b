"""Size advice: clothes by height and weight, shoes by foot length (charts: core/commerce/size_charts.yaml).

Measures come from the NLU's entities (height_cm, weight_kg: raw text such as "1米8", "130斤", "5'10\"")
or, with the keyword router, from the message itself; they are remembered in the session's slots, so the
shopper can give them over several messages. What is missing is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from core.config import PROJECT_ROOT, ShopConfig
from core.message import Reply
from core.skills import flow
from core.skills.base import SkillContext

BUNDLED = PROJECT_ROOT / "core" / "commerce" / "size_charts.yaml"
HEIGHT, WEIGHT, FOOT = "height_cm", "weight_kg", "foot_mm"  # also the session slots
CLOTHES, SHOES = "clothes", "shoes"

# -- measures from text -------------------------------------------------------------------------------------

_NUM = r"(\d{1,3}(?:\.\d{1,2})?)"
_HEIGHT_CM = re.compile(_NUM + r"\s*(?:cm|厘米|公分|センチ|سم)", re.I)
_HEIGHT_M = re.compile(r"(?<![\d.])([12](?:\.\d{1,2})?)\s*(?:m(?![a-z])|米(?!\d{3})|メートル)(\d{1,2})?", re.I)
_HEIGHT_FT = re.compile(r"(?<![\d.])([4-7])\s*(?:'|′|’|ft|foot|feet)\s*(?:(\d{1,2})\s*(?:\"|″|”|in(?:ch(?:es)?)?)?)?",
                        re.I)
_HEIGHT_WORD = re.compile(r"(?:身高|身長|height|tall|طول|طولي)\D{0,8}?(\d{3}(?:\.\d)?)", re.I)
_WEIGHT_KG = re.compile(_NUM + r"\s*(?:kg|kgs|公斤|千克|キロ|كغ|كجم|كيلو)", re.I)
_WEIGHT_JIN = re.compile(_NUM + r"\s*斤")
_WEIGHT_LB = re.compile(_NUM + r"\s*(?:lbs?|pounds?)", re.I)
_WEIGHT_WORD = re.compile(r"(?:体重|weight|weigh|وزن|وزني)\D{0,8}?(\d{2,3}(?:\.\d)?)", re.I)
_FOOT = re.compile(r"(?:脚长|足长|foot\s*length|length of (?:my )?foot|足の長さ|足長|طول القدم)\D{0,8}?"
                   r"(\d{2,3}(?:\.\d)?)\s*(mm|毫米|cm|厘米|センチ)?", re.I)
_FOOT_MM = re.compile(r"(\d{3})\s*(?:mm|毫米|ミリ)", re.I)
_SHOES = re.compile(r"鞋|靴|shoe|sneaker|boot|シューズ|スニーカー|ブーツ|حذاء|أحذية|脚长|足长|足の", re.I)


def parse_height_cm(text: str) -> float | None:
    if m := _HEIGHT_CM.search(text):
        return _plausible(float(m.group(1)), 50, 250)
    if m := _HEIGHT_FT.search(text):
        return round(int(m.group(1)) * 30.48 + int(m.group(2) or 0) * 2.54, 1)
    if m := _HEIGHT_M.search(text):
        whole, extra = m.group(1), m.group(2)
        metres = float(whole) if "." in whole or not extra else float(f"{whole}.{extra}")  # 1米8, 1米75
        return _plausible(round(metres * 100, 1), 50, 250)
    if m := _HEIGHT_WORD.search(text):
        return _plausible(float(m.group(1)), 50, 250)
    return None


def parse_weight_kg(text: str) -> float | None:
    if m := _WEIGHT_KG.search(text):
        return _plausible(float(m.group(1)), 10, 250)
    if m := _WEIGHT_JIN.search(text):
        return _plausible(float(m.group(1)) / 2, 10, 250)  # 1 斤 = 0.5 kg
    if m := _WEIGHT_LB.search(text):
        return _plausible(round(float(m.group(1)) * 0.4536, 1), 10, 250)
    if m := _WEIGHT_WORD.search(text):
        return _plausible(float(m.group(1)), 10, 250)
    return None


def parse_foot_mm(text: str) -> float | None:
    if m := _FOOT.search(text):
        value, unit = float(m.group(1)), (m.group(2) or "").lower()
        mm = value if unit in ("mm", "毫米") or (not unit and value > 100) else value * 10
        return _plausible(mm, 100, 350)
    if m := _FOOT_MM.search(text):
        return _plausible(float(m.group(1)), 100, 350)
    return None


def parse_entity_height(raw: str) -> float | None:
    """An NLU height_cm value: "175", "175cm", "1米8", "5'10\"", "6 foot"."""
    parsed = parse_height_cm(raw)
    if parsed is None and re.fullmatch(r"\s*\d{3}(?:\.\d)?\s*", raw):
        parsed = _plausible(float(raw), 50, 250)
    return parsed


def parse_entity_weight(raw: str) -> float | None:
    """An NLU weight_kg value: "65", "65kg", "130斤", "160 lbs"."""
    parsed = parse_weight_kg(raw)
    if parsed is None and re.fullmatch(r"\s*\d{2,3}(?:\.\d)?\s*", raw):
        parsed = _plausible(float(raw), 10, 250)
    return parsed


def _plausible(value: float, low: float, high: float) -> float | None:
    return value if low <= value <= high else None


# -- charts ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SizeRow:
    size: str
    limits: Mapping[str, float]  # measure -> the largest value this size fits
    eu: str | None = None


@dataclass(frozen=True, slots=True)
class SizeChart:
    kind: str
    products: frozenset[str]
    margin: Mapping[str, float]
    sizes: tuple[SizeRow, ...]

    @property
    def measures(self) -> tuple[str, ...]:
        return tuple(self.sizes[0].limits)


@dataclass(frozen=True, slots=True)
class Advice:
    size: SizeRow
    between: tuple[SizeRow, SizeRow] | None = None  # (smaller, larger): the suggestion is the larger
    outside: bool = False  # a measure is beyond the chart's largest size


def _fit(chart: SizeChart, measure: str, value: float) -> tuple[int, bool, bool]:
    """(size index, just above the smaller size's limit, beyond the chart)."""
    for i, row in enumerate(chart.sizes):
        if value <= row.limits[measure]:
            near = i > 0 and value - chart.sizes[i - 1].limits[measure] <= chart.margin.get(measure, 0)
            return i, near, False
    return len(chart.sizes) - 1, False, True


def advise(chart: SizeChart, measures: Mapping[str, float]) -> Advice:
    """The size for every measure of the chart (all must be given). Measures that disagree, or one just above
    a size's limit, make it "between sizes": the larger is suggested, for comfort."""
    fits = [_fit(chart, m, measures[m]) for m in chart.measures]
    low, high = min(f[0] for f in fits), max(f[0] for f in fits)
    outside = any(f[2] for f in fits)
    if low != high:
        return Advice(chart.sizes[high], (chart.sizes[low], chart.sizes[high]), outside)
    if any(near for _, near, _ in fits):
        return Advice(chart.sizes[high], (chart.sizes[high - 1], chart.sizes[high]), outside)
    return Advice(chart.sizes[high], None, outside)


def parse_charts(data: Mapping[str, Any]) -> dict[str, SizeChart]:
    charts = {}
    for kind, raw in data.items():
        rows = tuple(
            SizeRow(str(r["size"]), {k: float(v) for k, v in r.items() if k not in ("size", "eu")},
                    str(r["eu"]) if "eu" in r else None)
            for r in raw["sizes"]
        )
        charts[kind] = SizeChart(kind, frozenset(raw.get("products") or ()),
                                 {k: float(v) for k, v in (raw.get("margin") or {}).items()}, rows)
    return charts


@cache
def load_charts(path: Path = BUNDLED) -> dict[str, SizeChart]:
    return parse_charts(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def size_charts(shop: ShopConfig) -> dict[str, SizeChart]:
    path = Path(shop.size_charts_file) if shop.size_charts_file else BUNDLED
    return load_charts(path if path.is_absolute() else PROJECT_ROOT / path)


# -- the skill ------------------------------------------------------------------------------------------------


_BARE_NUMBER = re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d+)?)(?![\d.])")


def bare_measures(text: str, missing: list[str]) -> dict[str, float]:
    """Numbers without a unit, in answer to our question: for a foot length, cm (25.5) or mm (255); else a
    lone number is the one measure still missing, or a height in cm is 100 or more and a weight in kg less."""
    numbers = [float(n) for n in _BARE_NUMBER.findall(text)][:2]
    if missing == [FOOT]:
        if len(numbers) != 1:
            return {}
        foot = _plausible(numbers[0] * 10 if numbers[0] < 100 else numbers[0], 100, 350)
        return {FOOT: foot} if foot is not None else {}
    if len(numbers) == 1 and len(missing) == 1:
        named = {missing[0]: numbers[0]}
    else:
        named = {}
        for number in numbers:
            named.setdefault(HEIGHT if number >= 100 else WEIGHT, number)
    limits = {HEIGHT: (50, 250), WEIGHT: (10, 250)}
    plausible = {name: _plausible(value, *limits[name]) for name, value in named.items() if name in limits}
    return {name: value for name, value in plausible.items() if value is not None}


def _remember(ctx: SkillContext, answering: str | None = None) -> dict[str, float]:
    """Measures from this message (entities first, then the words) merged into the session's slots; when it
    answers our question about `answering` (a chart kind) and names none, its bare numbers."""
    u, text, slots = ctx.understanding, ctx.text, ctx.session.slots
    found = {
        HEIGHT: parse_entity_height(u.entity(HEIGHT) or "") or parse_height_cm(text),
        WEIGHT: parse_entity_weight(u.entity(WEIGHT) or "") or parse_weight_kg(text),
        FOOT: parse_foot_mm(text),
    }
    if answering and all(value is None for value in found.values()):
        missing = [FOOT] if answering == SHOES else [m for m in (HEIGHT, WEIGHT) if slots.get(m) is None]
        found.update(bare_measures(text, missing))
    for name, value in found.items():
        if value is not None:
            slots[name] = value
    return {name: float(slots[name]) for name in (HEIGHT, WEIGHT, FOOT) if slots.get(name) is not None}


def _kind(ctx: SkillContext, charts: Mapping[str, SizeChart], fresh_foot: bool) -> str:
    product = ctx.understanding.entity("product") or ""
    for kind, chart in charts.items():
        if product in chart.products:
            return kind
    return SHOES if fresh_foot or _SHOES.search(ctx.text) or _SHOES.search(product) else CLOTHES


def _number(value: float) -> str:
    return f"{value:g}"


def _advice_text(ctx: SkillContext, advice: Advice, kind: str) -> str:
    t = ctx.t
    text = t("For {measures} I suggest size {size}.", measures=_measures(ctx, kind), size=_label(ctx, advice.size))
    if advice.between is not None:
        smaller, larger = advice.between
        text += "\n" + t("You are between {smaller} and {larger}: {larger} is roomier; choose {smaller} if you "
                         "prefer a closer fit.", smaller=smaller.size, larger=larger.size)
    if advice.outside:
        text += "\n" + t("Your measurements are beyond our size chart, so please check the product's own "
                         "measurements or ask a human colleague.")
    return text


def _label(ctx: SkillContext, row: SizeRow) -> str:
    return ctx.t("US {size} (EU {eu})", size=row.size, eu=row.eu) if row.eu else row.size


def _measures(ctx: SkillContext, kind: str) -> str:
    slots = ctx.session.slots
    if kind == SHOES:
        return ctx.t("a foot length of {mm} mm", mm=_number(float(slots[FOOT])))
    return ctx.t("{height} cm and {weight} kg", height=_number(float(slots[HEIGHT])),
                 weight=_number(float(slots[WEIGHT])))


INTENT = "size_advice"
# A reply to "your height and weight?": up to two numbers of 2-3 digits with a few words or units around
# them ("175", "70公斤", "175センチ", "طولي 175"); an order number or a longer text is something else.
_MEASURES_ANSWER = r"^(?:[^\d#]{0,12}\d{2,3}(?:\.\d+)?){1,2}[^\d#]{0,12}$"


def _ask(ctx: SkillContext, kind: str, text: str) -> list[Reply]:
    flow.ask(ctx, INTENT, "measures", {"kind": kind}, answers=_MEASURES_ANSWER)
    return [Reply(text=text)]


async def size_advice(ctx: SkillContext) -> list[Reply]:
    t = ctx.t
    asked = flow.resume(ctx, INTENT)  # the measures we asked for, if this is them
    charts = size_charts(ctx.shop)
    asked_kind = str(asked.data.get("kind") or CLOTHES) if asked is not None else None
    known = _remember(ctx, answering=asked_kind)
    # a bare answer to our foot question ("25.5") stays about shoes, though its words do not say so
    if asked_kind == SHOES and re.search(_MEASURES_ANSWER, ctx.text, re.I):
        kind = SHOES
    else:
        kind = _kind(ctx, charts, fresh_foot=parse_foot_mm(ctx.text) is not None)
    chart = charts.get(kind)
    if chart is None:
        return [Reply(text=t("Sorry, I don't have a size chart for that yet."))]
    missing = [m for m in chart.measures if m not in known]
    if kind == SHOES and missing:
        return _ask(ctx, kind, t("For shoes I need your foot length: stand on a sheet of paper and measure from "
                                 "your heel to your longest toe, for example 25.5 cm."))
    if missing == [WEIGHT]:
        return _ask(ctx, kind, t("Thanks, I've noted your height ({height} cm). What's your weight in kg?",
                                 height=_number(known[HEIGHT])))
    if missing == [HEIGHT]:
        return _ask(ctx, kind, t("Thanks, I've noted your weight ({weight} kg). How tall are you, in cm?",
                                 weight=_number(known[WEIGHT])))
    if missing:
        return _ask(ctx, kind, t("To suggest a size, please tell me your height and weight, for example: "
                                 "170 cm, 60 kg."))
    return [Reply(text=_advice_text(ctx, advise(chart, known), kind))]
