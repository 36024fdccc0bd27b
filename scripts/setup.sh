#!/usr/bin/env bash
# Creates .venv with the hub and its dependencies; does nothing when pyproject.toml is unchanged.
# Usage: scripts/setup.sh [--test]   (--test adds the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 \
     && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "kefu needs Python 3.11 or newer: install python3.11 (e.g. apt-get install python3.11 python3.11-venv)" >&2
  exit 1
fi

# Message catalogs: locales/<lang>/LC_MESSAGES/kefu.po -> kefu.mo (cheap; done on every run so an edited .po
# is compiled even when the environment is up to date). scripts/catalogs.py update re-extracts the strings.
compile_catalogs() {
  .venv/bin/python scripts/catalogs.py compile >/dev/null
}

stamp=".venv/.setup-stamp"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)$extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  compile_catalogs
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv || { echo "cannot create a virtualenv: install the venv module (apt-get install python3-venv)" >&2; exit 1; }
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extras"
echo "$want" > "$stamp"
compile_catalogs
