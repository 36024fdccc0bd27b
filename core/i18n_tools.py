"""Catalog maintenance with babel: extract the bot's strings, merge them into each .po, compile .mo.

The same extraction as `pybabel extract -F babel.cfg -k t -k N_ -k gettext:2 --no-default-keywords .`,
through babel's API so that scripts/catalogs.py (run by scripts/setup.sh) and the catalog tests
agree on what a bot string is. Not used while the hub runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from core.locale import DOMAIN, EXTRACT_KEYWORDS

__all__ = ["CatalogStats", "compile_catalogs", "extract_template", "po_path", "update_catalogs"]


@dataclass(frozen=True, slots=True)
class CatalogStats:
    locale: str
    translated: int
    fuzzy: int
    untranslated: int


def po_path(locales_dir: Path, locale: str) -> Path:
    return locales_dir / locale.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


def extract_template(root: Path) -> Catalog:
    """Every bot string in the code under `root`, as a template catalog (what kefu.pot holds)."""
    with (root / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    template = Catalog(project="kefu", domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
        root, method_map, options_map, keywords=EXTRACT_KEYWORDS,
        directory_filter=lambda path: not Path(path).name.startswith("."),
    ):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context,
                     flags=("python-brace-format",) if "{" in message else ())
    return template


def read_catalog_file(path: Path, locale: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale.replace("-", "_"), domain=DOMAIN)


def write_catalog_file(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=120, sort_output=True)


def update_catalogs(root: Path, locales_dir: Path, locales: Iterable[str]) -> Catalog:
    """Merge the extracted strings into each locale's .po (new ones empty, vanished ones obsolete)."""
    template = extract_template(root)
    for locale in locales:
        path = po_path(locales_dir, locale)
        catalog = read_catalog_file(path, locale) if path.exists() else Catalog(locale=locale.replace("-", "_"),
                                                                                 domain=DOMAIN, project="kefu")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.fuzzy = False  # the header's flag: a fuzzy catalog would not be compiled at all
        write_catalog_file(path, catalog)
    with (locales_dir / f"{DOMAIN}.pot").open("wb") as handle:
        write_po(handle, template, width=120, sort_output=True)
    return template


def compile_catalogs(locales_dir: Path, locales: Iterable[str]) -> list[CatalogStats]:
    """kefu.po -> kefu.mo for each locale; fuzzy and empty translations are left out."""
    stats = []
    for locale in locales:
        path = po_path(locales_dir, locale)
        catalog = read_catalog_file(path, locale)
        messages = [m for m in catalog if m.id]
        fuzzy = sum(1 for m in messages if m.fuzzy)
        translated = sum(1 for m in messages if m.string and not m.fuzzy)
        with path.with_suffix(".mo").open("wb") as handle:
            write_mo(handle, catalog, use_fuzzy=False)
        stats.append(CatalogStats(locale, translated, fuzzy, len(messages) - translated - fuzzy))
    return stats
