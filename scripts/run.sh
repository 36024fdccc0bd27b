#!/usr/bin/env bash
# Installs what the hub needs, starts the Rasa NLU server (training it when nlu/ changed), then the
# hub with bot_config.yaml: embedded defaults, no API keys, no Redis needed.
# Extra arguments go to `python -m core run` (e.g. --port 9000). KEFU_NLU=off skips Rasa.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

if [ "${KEFU_NLU:-on}" != "off" ]; then
  port="${KEFU_NLU_PORT:-5005}"
  export KEFU_NLU_TOKEN="${KEFU_NLU_TOKEN:-$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')}"
  mkdir -p var
  echo "starting Rasa NLU on 127.0.0.1:$port (the first run installs and trains it: several minutes) ..."
  if scripts/nlu_serve.sh --background --port "$port" --timeout 120 >var/nlu-start.log 2>&1; then
    export KEFU_NLU_URLS="http://127.0.0.1:$port"
    trap 'scripts/nlu_serve.sh --stop --port "$port" >/dev/null 2>&1 || true' EXIT
  else
    echo "Rasa NLU did not start (see var/nlu-start.log): the hub runs with its keyword router." >&2
  fi
fi
.venv/bin/python -m core run "$@"
