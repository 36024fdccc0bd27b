#!/usr/bin/env bash
# Build the Rasa NLU environment: .nlu-venv/ at the repo root, Python 3.10,
# with the packages pinned in nlu/requirements.txt (rasa==3.6.21, jieba, ...).
#
# Idempotent: a stamp file holding the hash of nlu/requirements.txt and of the
# interpreter's version makes a second run instant; a changed requirements file
# reinstalls into the same venv.  Works unattended (CI): no prompts.
#
#   scripts/nlu_env.sh            build or check the venv; prints its python path
#   NLU_VENV=/some/dir scripts/nlu_env.sh   build elsewhere
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NLU_VENV:-$ROOT/.nlu-venv}"
REQ="$ROOT/nlu/requirements.txt"
STAMP="$VENV/.kefu-nlu-stamp"

find_python310() {
    local cand
    # A pyenv shim named python3.10 may exist yet fail when 3.10 is not the
    # selected version, so each candidate is run, not just looked up.
    for cand in python3.10 "${PYTHON310:-}"; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 \
            && "$cand" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then
            command -v "$cand"; return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        local root; root="$(pyenv root 2>/dev/null || true)"
        for cand in $(ls -d "$root"/versions/3.10*/bin/python3.10 2>/dev/null | sort -V -r); do
            if "$cand" -c 'import venv' >/dev/null 2>&1; then echo "$cand"; return 0; fi
        done
    fi
    return 1
}

want_stamp() {
    # requirements + interpreter identity: a change to either rebuilds.
    { cat "$REQ"; "$1" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] \
    && [ "$(cat "$STAMP")" = "$(want_stamp "$VENV/bin/python")" ]; then
    echo "$VENV/bin/python"
    exit 0
fi

PY310="$(find_python310)" || {
    echo "nlu_env: Python 3.10 not found: install it (e.g. 'pyenv install 3.10' or 'apt-get install python3.10 python3.10-venv') and re-run" >&2
    exit 1
}

start=$(date +%s)
echo "nlu_env: building $VENV with $PY310 (several minutes on first run)" >&2
if [ ! -x "$VENV/bin/python" ]; then
    "$PY310" -m venv "$VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
nice -n 10 "$VENV/bin/python" -m pip install --quiet --upgrade "pip==24.0" "setuptools<70" wheel >&2
nice -n 10 "$VENV/bin/python" -m pip install --quiet -r "$REQ" >&2
# Check that what the NLU pipeline loads imports, before stamping.
"$VENV/bin/python" -c 'import rasa, jieba, tensorflow; from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer' >&2
want_stamp "$VENV/bin/python" >"$STAMP"
echo "nlu_env: ready in $(( $(date +%s) - start ))s" >&2
echo "$VENV/bin/python"
