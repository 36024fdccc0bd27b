"""Message catalogs: every string the bot says, extracted from the code as pybabel does (babel.cfg), has a
non-fuzzy translation in zh-CN, en, ja and ar that keeps its placeholders and passes the locale's pack
(keigo in ja, words never to use everywhere); compiled catalogs are what the hub reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog

from core.config import PROJECT_ROOT
from core.i18n_tools import compile_catalogs, extract_template, po_path, read_catalog_file
from core.locale import Catalogs
from core.packs import PERSONA_FIELDS, PackSet, placeholders

LOCALES = ("zh-CN", "en", "ja", "ar")
LOCALES_DIR = PROJECT_ROOT / "locales"


@pytest.fixture(scope="module")
def template() -> Catalog:
    return extract_template(PROJECT_ROOT)


@pytest.fixture(scope="module")
def packs() -> PackSet:
    return PackSet.load(LOCALES_DIR / "packs", LOCALES)


def translations(locale: str) -> dict[str, str]:
    catalog = read_catalog_file(po_path(LOCALES_DIR, locale), locale)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string and not m.fuzzy}


def test_extraction_finds_the_bot_strings(template: Catalog) -> None:
    ids = {str(m.id) for m in template if m.id}
    assert len(ids) >= 30
    # t("...") in skills, ctx.t("...") in the engine, N_("...") tables, catalogs.gettext(locale, "...")
    assert "Where is my order?" in ids and "shipped" in ids
    assert "Sorry, I can't reach my notes right now. Please send your message again in a moment." in ids


@pytest.mark.parametrize("locale", LOCALES)
def test_every_bot_string_has_a_translation(template: Catalog, locale: str) -> None:
    table = translations(locale)
    missing = [f"{m.id!r} ({', '.join(f'{f}:{n}' for f, n in m.locations)})"
               for m in template if m.id and str(m.id) not in table]
    assert not missing, (f"{len(missing)} strings lack a non-fuzzy translation in {locale} "
                         "(run .venv/bin/python scripts/catalogs.py update, then translate):\n" + "\n".join(missing))


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_keep_their_placeholders_and_pass_the_pack(packs: PackSet, locale: str) -> None:
    pack = packs.get(locale)
    assert pack is not None
    for msgid, text in translations(locale).items():
        assert placeholders(text) - PERSONA_FIELDS == placeholders(msgid), f"{locale}: {msgid!r} -> {text!r}"
        shown = text.format(**{**{name: "X1" for name in placeholders(text)}, **pack.persona_values})
        assert pack.check(shown) == [], f"{locale}: {text!r}: {pack.check(shown)}"


def test_every_japanese_catalog_string_passes_the_keigo_checker(packs: PackSet) -> None:
    keigo = packs.get("ja").keigo
    assert keigo is not None
    findings = {text: keigo.check(text) for text in translations("ja").values()}
    assert {text: found for text, found in findings.items() if found} == {}


def test_compiled_catalogs_are_what_the_hub_reads(tmp_path: Path) -> None:
    folder = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, folder, ignore=shutil.ignore_patterns("*.mo"))
    stats = compile_catalogs(folder, LOCALES)
    assert all(s.untranslated == 0 and s.fuzzy == 0 and s.translated >= 30 for s in stats), stats
    for locale in LOCALES:
        assert po_path(folder, locale).with_suffix(".mo").stat().st_size > 0
    po_path(folder, "ja").unlink()  # only the compiled catalog is left
    catalogs = Catalogs.load(folder, LOCALES, "zh-CN")
    assert catalogs.gettext("ja", "shipped") == "発送済み"
    assert catalogs.gettext("ar", "Where is my order?") == "أين طلبي؟"
    assert catalogs.gettext("ja", "Hello! I'm the {shop} assistant. I can check your orders, returns, promotions "
                                  "and sizes. What can I do for you?", shop="S").count("ケフ") == 1, \
        "a translation may name the pack's persona"


def test_setup_compiles_the_catalogs() -> None:
    setup = (PROJECT_ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "scripts/catalogs.py compile" in setup
    assert (PROJECT_ROOT / "babel.cfg").exists()
