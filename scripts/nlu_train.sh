#!/usr/bin/env bash
# Train the NLU-only Rasa model into nlu/models/, but only when the training
# inputs changed: their hash is stored beside the model (nlu/models/current.sha256)
# and is also part of the model's file name. Prints the model path on stdout.
#
#   scripts/nlu_train.sh          train if needed, print the model path
#   scripts/nlu_train.sh --force  retrain even if the hash matches
#
# Hashed inputs: nlu/config.yml, nlu/domain.yml, nlu/data/** (training data,
# regexes, lookups, synonyms), nlu/*.py (our custom components, whatever their
# module) and nlu/requirements.txt. The test split (nlu/tests/) is not an input.
# Builds the environment first (scripts/nlu_env.sh) if it is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NLU="$ROOT/nlu"
MODELS="$NLU/models"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

inputs_hash() {
    (
        cd "$NLU"
        find config.yml domain.yml *.py requirements.txt data -type f \
            \( -name '*.yml' -o -name '*.yaml' -o -name '*.py' -o -name '*.txt' \) \
            | LC_ALL=C sort \
            | while read -r f; do printf '%s\0' "$f"; sha256sum <"$f"; done
    ) | sha256sum | cut -c1-16
}

HASH="$(inputs_hash)"
MODEL="$MODELS/nlu-$HASH.tar.gz"
STAMP="$MODELS/current.sha256"

if [ "$FORCE" = 0 ] && [ -f "$MODEL" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
    echo "nlu_train: up to date ($HASH)" >&2
    echo "$MODEL"
    exit 0
fi

PY="$("$ROOT/scripts/nlu_env.sh")"
BIN="$(dirname "$PY")"
mkdir -p "$MODELS"

# One training at a time: a second caller waits, then finds the model cached.
exec 9>"$MODELS/.train.lock"
if ! flock -n 9; then
    echo "nlu_train: another training is running, waiting for it" >&2
    flock 9
fi
if [ "$FORCE" = 0 ] && [ -f "$MODEL" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
    echo "nlu_train: up to date ($HASH)" >&2
    echo "$MODEL"
    exit 0
fi
export PYTHONPATH="$NLU${PYTHONPATH:+:$PYTHONPATH}"
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2 PYTHONWARNINGS=ignore
export RASA_CACHE_DIRECTORY="$NLU/.rasa/cache" RASA_MAX_CACHE_SIZE=200
[ "$FORCE" = 1 ] && rm -rf "$NLU/.rasa/cache"

echo "nlu_train: training $MODEL" >&2
start=$(date +%s.%N)
(
    cd "$NLU"
    nice -n 10 "$BIN/rasa" train nlu --quiet \
        -c config.yml -d domain.yml -u data \
        --out "$MODELS" --fixed-model-name "nlu-$HASH" >&2
)
[ -f "$MODEL" ] || { echo "nlu_train: rasa did not write $MODEL" >&2; exit 1; }
echo "$HASH" >"$STAMP"
ln -sfn "$(basename "$MODEL")" "$MODELS/current.tar.gz"
# keep the three newest models
ls -1t "$MODELS"/nlu-*.tar.gz 2>/dev/null | tail -n +4 | xargs -r rm -f
awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "nlu_train: trained in %.1fs\n", e - s }' >&2
echo "$MODEL"
