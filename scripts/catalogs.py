"""Message catalogs: extract the bot's strings, merge them into every .po, compile the .mo files.

    .venv/bin/python scripts/catalogs.py update    # after adding or changing t("...") strings
    .venv/bin/python scripts/catalogs.py compile   # run by scripts/setup.sh

`update` writes locales/kefu.pot and merges it into locales/<lang>/LC_MESSAGES/kefu.po: new strings
arrive untranslated, and tests/test_locale_catalogs.py fails until each has a translation.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import ShopConfig  # noqa: E402
from core.i18n_tools import compile_catalogs, update_catalogs  # noqa: E402

LOCALES_DIR = ROOT / "locales"


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "compile"
    locales = ShopConfig.model_fields["locales"].default
    if command == "update":
        template = update_catalogs(ROOT, LOCALES_DIR, locales)
        print(f"{len(template)} strings extracted into {LOCALES_DIR / 'kefu.pot'} and merged into {', '.join(locales)}")
        return 0
    if command == "compile":
        stats = compile_catalogs(LOCALES_DIR, locales)
        for s in stats:
            print(f"{s.locale:6} {s.translated} translated, {s.fuzzy} fuzzy, {s.untranslated} untranslated")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
