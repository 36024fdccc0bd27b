"""Promotion and reminder templates: locales/templates/*.yaml.

    templates:
      - id: payment.unpaid_hours_left
        type: payment_reminder
        placeholders: {order_id: str, amount: money, hours: int}
        text:
          zh-CN: 订单 {order_id} 还有 {hours} 小时就要自动关闭了，应付 {amount}，请尽快完成付款。
          en: ...
          ja: ...
          ar: ...

Every template is validated when loaded: a known type, known placeholder types, a text for every
configured locale, the placeholders in each text equal to the declared ones (plus the persona's
{bot_name}), no format specs, and each text passing its locale pack's checks (keigo in ja, words
never to use everywhere). Any problem is a `TemplateError` naming the file, the template and the
locale. Rendering type-checks the values and formats them with babel for the locale: money in the
shop's currency, numbers, percentages, dates and times.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from string import Formatter
from typing import Any

import yaml

from core.formatting import Formats
from core.packs import PERSONA_FIELDS, PackSet

TEMPLATE_TYPES = frozenset({
    "countdown",  # a campaign or offer ends soon
    "tier_nudge",  # spend a little more to reach the next full-reduction tier
    "payment_reminder",  # an order waits for payment
    "sample_pickup",  # a free sample waits at a nearby store
    "coupon_expiry",  # a coupon runs out
})
PLACEHOLDER_TYPES = frozenset({"str", "int", "number", "money", "percent", "date", "datetime", "time"})
_ID = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")


class TemplateError(ValueError):
    """A template that cannot be loaded or rendered; the message names the template (and locale)."""


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    type: str
    placeholders: Mapping[str, str]  # name -> type
    texts: Mapping[str, str]  # locale -> text
    source: str = ""

    def where(self, locale: str | None = None) -> str:
        return f"{self.source}: template {self.id!r}" + (f" ({locale})" if locale else "")


def _sample(kind: str) -> str:
    return {"int": "3", "number": "2.5", "money": "$9.00", "percent": "20%", "date": "2026-01-01",
            "datetime": "2026-01-01 10:00", "time": "10:00"}.get(kind, "X")


def _fields(text: str, where: str) -> set[str]:
    names: set[str] = set()
    try:
        parsed = list(Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{where}: broken braces: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise TemplateError(f"{where}: placeholder {{{name}}} must be a plain name")
        if spec or conversion:
            raise TemplateError(f"{where}: placeholder {{{name}}} may not carry a format; its type decides")
        names.add(name)
    return names


def _build(raw: Any, source: str, locales: tuple[str, ...], packs: PackSet | None) -> Template:
    if not isinstance(raw, dict):
        raise TemplateError(f"{source}: each template is a mapping, got {raw!r}")
    template_id = raw.get("id")
    if not isinstance(template_id, str) or not _ID.match(template_id):
        raise TemplateError(f"{source}: template id {template_id!r} must look like 'type.name' (lowercase)")
    where = f"{source}: template {template_id!r}"
    unknown_keys = set(raw) - {"id", "type", "placeholders", "text", "note"}
    if unknown_keys:
        raise TemplateError(f"{where}: unknown key {sorted(unknown_keys)[0]!r}")
    kind = raw.get("type")
    if kind not in TEMPLATE_TYPES:
        raise TemplateError(f"{where}: type {kind!r} is not one of {', '.join(sorted(TEMPLATE_TYPES))}")
    declared = raw.get("placeholders") or {}
    if not isinstance(declared, dict):
        raise TemplateError(f"{where}: placeholders must map names to types, e.g. {{hours: int}}")
    for name, ptype in declared.items():
        if ptype not in PLACEHOLDER_TYPES:
            raise TemplateError(f"{where}: placeholder {name!r} has unknown type {ptype!r}; "
                                f"known: {', '.join(sorted(PLACEHOLDER_TYPES))}")
        if name in PERSONA_FIELDS:
            raise TemplateError(f"{where}: {{{name}}} comes from the locale pack; do not declare it")
    texts = raw.get("text")
    if not isinstance(texts, dict):
        raise TemplateError(f"{where}: text must map each locale to its text")
    for locale in locales:
        text = texts.get(locale)
        if not isinstance(text, str) or not text.strip():
            raise TemplateError(f"{where}: locale {locale} is missing (every template needs {', '.join(locales)})")
        used = _fields(text, f"{where} ({locale})") - PERSONA_FIELDS
        if used - set(declared):
            raise TemplateError(f"{where} ({locale}): placeholder {{{sorted(used - set(declared))[0]}}} is used "
                                f"in the text but not declared")
        if set(declared) - used:
            raise TemplateError(f"{where} ({locale}): declared placeholder {{{sorted(set(declared) - used)[0]}}} "
                                f"is missing from the text")
        pack = packs.get(locale) if packs is not None else None
        if pack is not None:
            sample = text.format(**{n: _sample(t) for n, t in declared.items()}, **pack.persona_values)
            findings = pack.check(sample)
            if findings:
                raise TemplateError(f"{where} ({locale}): fails the {locale} pack's checks: "
                                    f"{'; '.join(map(str, findings))}")
    return Template(template_id, kind, dict(declared), {k: str(v) for k, v in texts.items()}, source)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


@dataclass(slots=True)
class TemplateSet:
    templates: dict[str, Template] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path, locales: Iterable[str], packs: PackSet | None = None) -> TemplateSet:
        locales = tuple(locales)
        found: dict[str, Template] = {}
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise TemplateError(f"{path}: cannot read: {exc}") from None
            if not isinstance(data, dict) or not isinstance(data.get("templates"), list):
                raise TemplateError(f"{path}: expected a top-level 'templates:' list")
            for raw in data["templates"]:
                template = _build(raw, path.name, locales, packs)
                if template.id in found:
                    raise TemplateError(f"{path.name}: template {template.id!r} is also defined in "
                                        f"{found[template.id].source}")
                found[template.id] = template
        return cls(found)

    def __len__(self) -> int:
        return len(self.templates)

    def get(self, template_id: str) -> Template:
        try:
            return self.templates[template_id]
        except KeyError:
            raise TemplateError(f"no template {template_id!r}") from None

    def of_type(self, kind: str) -> list[Template]:
        return [t for t in self.templates.values() if t.type == kind]

    def render(self, template_id: str, formats: Formats, currency: str, persona: Mapping[str, str],
               values: Mapping[str, Any]) -> str:
        template = self.get(template_id)
        where = template.where(formats.locale)
        text = template.texts.get(formats.locale)
        if text is None:
            raise TemplateError(f"{where}: no text for this locale")
        missing = set(template.placeholders) - set(values)
        if missing:
            raise TemplateError(f"{where}: missing value for {{{sorted(missing)[0]}}}")
        extra = set(values) - set(template.placeholders)
        if extra:
            raise TemplateError(f"{where}: unexpected value {sorted(extra)[0]!r}")
        shown = {name: _format(template.placeholders[name], value, formats, currency, where, name)
                 for name, value in values.items()}
        return text.format(**persona, **shown)


def _format(kind: str, value: Any, formats: Formats, currency: str, where: str, name: str) -> str:
    def wrong(expected: str) -> TemplateError:
        return TemplateError(f"{where}: {{{name}}} is {kind}, expected {expected}, got {type(value).__name__}")

    if kind == "str":
        if not isinstance(value, str):
            raise wrong("a str")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong("an int")
        return formats.number(value)
    if kind in ("number", "money", "percent"):
        if not _is_number(value):
            raise wrong("a number")
        if kind == "money":
            return formats.money(value, currency)
        return formats.percent(value) if kind == "percent" else formats.number(value)
    if kind == "date":
        if not isinstance(value, dt.date):
            raise wrong("a date")
        return formats.date(value.date() if isinstance(value, dt.datetime) else value)
    if kind == "datetime":
        if not isinstance(value, dt.datetime):
            raise wrong("a datetime")
        return formats.datetime(value)
    if not isinstance(value, dt.time | dt.datetime):  # time
        raise wrong("a time")
    return formats.time(value)
