"""Promotion and reminder templates (locales/templates/*.yaml): enough of them, all four locales, typed
placeholders, validated at load with errors that name the template."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.config import PROJECT_ROOT
from core.formatting import Formats
from core.locale import Catalogs
from core.packs import PackSet
from core.templates import TEMPLATE_TYPES, TemplateError, TemplateSet

LOCALES = ("zh-CN", "en", "ja", "ar")
LOCALES_DIR = PROJECT_ROOT / "locales"
SAMPLES: dict[str, Any] = {
    "str": "Aurora", "int": 3, "number": Decimal("2.5"), "money": Decimal("1299.5"), "percent": 0.15,
    "date": dt.date(2026, 3, 5), "datetime": dt.datetime(2026, 3, 5, 18, 30), "time": dt.time(20, 0),
}


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return Catalogs.load(LOCALES_DIR, LOCALES, "zh-CN")


def test_at_least_200_texts_of_every_kind_in_all_four_locales(catalogs: Catalogs) -> None:
    templates = catalogs.templates.templates.values()
    texts = sum(len(t.texts) for t in templates)
    assert texts >= 200 and len(catalogs.templates) >= 50
    assert {t.type for t in templates} == TEMPLATE_TYPES
    for kind in TEMPLATE_TYPES:
        assert len(catalogs.templates.of_type(kind)) >= 8, kind
    assert all(set(t.texts) == set(LOCALES) for t in templates)


def test_every_template_renders_in_every_locale_and_passes_its_pack(catalogs: Catalogs) -> None:
    for template in catalogs.templates.templates.values():
        values = {name: SAMPLES[kind] for name, kind in template.placeholders.items()}
        for locale in LOCALES:
            text = catalogs.render_template(locale, template.id, "USD", **values)
            assert "{" not in text and "}" not in text, f"{template.id} ({locale}): {text}"
            pack = catalogs.pack(locale)
            assert pack is not None
            assert pack.check(text) == [], f"{template.id} ({locale}): {pack.check(text)}"


def test_values_are_formatted_for_the_locale(catalogs: Catalogs) -> None:
    values = {"order_id": "#W1", "amount": Decimal("1299.5"), "hours": 12}
    en = catalogs.render_template("en", "payment.unpaid_hours_left", "USD", **values)
    assert "$1,299.50" in en and "12 hours" in en
    zh = catalogs.render_template("zh-CN", "payment.unpaid_hours_left", "CNY", **values)
    assert "¥1,299.50" in zh
    ja = catalogs.render_template("ja", "payment.deadline", "JPY", order_id="#W1",
                                  deadline=dt.datetime(2026, 3, 5, 18, 30))
    assert "3月5日(木) 18:30" in ja
    ar = catalogs.render_template("ar", "coupon.free_shipping", "USD", date=dt.date(2026, 3, 5))
    assert "مارس" in ar


def test_a_value_of_the_wrong_type_or_a_missing_one_names_the_template(catalogs: Catalogs) -> None:
    with pytest.raises(TemplateError, match=r"template 'payment.unpaid_hours_left' \(en\): \{amount\} is money"):
        catalogs.render_template("en", "payment.unpaid_hours_left", "USD", order_id="#W1", amount="12", hours=3)
    with pytest.raises(TemplateError, match=r"'payment.unpaid_hours_left' \(ja\): missing value for \{hours\}"):
        catalogs.render_template("ja", "payment.unpaid_hours_left", "USD", order_id="#W1", amount=12)
    with pytest.raises(TemplateError, match=r"no template 'payment\.nope'"):
        catalogs.render_template("en", "payment.nope", "USD")


GOOD = """templates:
  - id: coupon.test
    type: coupon_expiry
    placeholders: {coupon: str, days: int}
    text:
      zh-CN: "「{coupon}」还有 {days} 天过期。"
      en: "\\"{coupon}\\" expires in {days} days."
      ja: "「{coupon}」の有効期限まで残り{days}日でございます。"
      ar: "تنتهي صلاحية «{coupon}» قريبًا (الأيام المتبقية: {days})."
"""


def load(tmp_path: Path, text: str) -> TemplateSet:
    (tmp_path / "test.yaml").write_text(text, encoding="utf-8")
    return TemplateSet.load(tmp_path, LOCALES, PackSet.load(LOCALES_DIR / "packs", LOCALES))


@pytest.mark.parametrize(("old", "new", "error"), [
    ('      ar: "تنتهي صلاحية «{coupon}» قريبًا (الأيام المتبقية: {days})."\n', "",
     r"test.yaml: template 'coupon.test': locale ar is missing"),
    ("残り{days}日", "残り数日", r"template 'coupon.test' \(ja\): declared placeholder \{days\} is missing"),
    ("{days} days.", "{days} days, {code}.", r"template 'coupon.test' \(en\): placeholder \{code\} is used"),
    ("days: int}", "days: integer}", r"template 'coupon.test': placeholder 'days' has unknown type 'integer'"),
    ("type: coupon_expiry", "type: coupons", r"template 'coupon.test': type 'coupons' is not one of"),
    ("でございます。", "だよ。", r"template 'coupon.test' \(ja\): fails the ja pack's checks: plain_form"),
    ("过期。", "过期，最便宜！", r"template 'coupon.test' \(zh-CN\): fails the zh-CN pack's checks: never_use"),
    ("{days} days.", "{days:>3} days.", r"\{days\} may not carry a format"),
])
def test_a_broken_template_is_a_clear_error_naming_it(tmp_path: Path, old: str, new: str, error: str) -> None:
    assert len(load(tmp_path, GOOD)) == 1
    assert old in GOOD
    with pytest.raises(TemplateError, match=error):
        load(tmp_path, GOOD.replace(old, new))


def test_a_duplicate_template_id_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(TemplateError, match=r"template 'coupon\.test' is also defined in other\.yaml"):
        load(tmp_path, GOOD)


def test_formats_per_locale() -> None:
    day = dt.date(2026, 3, 5)
    assert Formats("en").date(day) == "March 5, 2026"
    assert Formats("ja").date(day) == "2026年3月5日"
    assert Formats("zh-CN").money(Decimal("536.65"), "USD") == "US$536.65"
    assert Formats("en").number(1234567.5) == "1,234,567.5"
    assert Formats("xx-YY").money(1, "USD") == "$1.00", "an unknown locale formats as English"
