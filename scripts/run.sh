#!/usr/bin/env bash
# Installs what the hub needs, starts Rasa NLU servers (training the model when nlu/ changed), then the
# hub with bot_config.yaml: embedded defaults, no API keys, no Redis needed.
# Extra arguments go to `python -m core run` (e.g. --port 9000). KEFU_NLU=off skips Rasa;
# KEFU_NLU_SERVERS=N sets how many Rasa servers (default: one per core, at most 4), on ports from
# KEFU_NLU_PORT (default 5005) up.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

if [ "${KEFU_NLU:-on}" != "off" ]; then
  first_port="${KEFU_NLU_PORT:-5005}"
  # One Rasa server per core (at most 4): a server parses on one core, the router spreads over them.
  servers="${KEFU_NLU_SERVERS:-$(nproc)}"
  [ "$servers" -ge 1 ] 2>/dev/null || { echo "KEFU_NLU_SERVERS must be a whole number >= 1" >&2; exit 2; }
  [ "$servers" -le 4 ] || servers=4
  export KEFU_NLU_TOKEN="${KEFU_NLU_TOKEN:-$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')}"
  mkdir -p var
  echo "starting $servers Rasa NLU server(s) from 127.0.0.1:$first_port (the first run installs and trains: several minutes) ..."
  ports=() starters=() urls=()
  # Train (or find the cached model) once, then start the servers side by side.
  if model="$(scripts/nlu_train.sh 2>var/nlu-start.log)"; then
    for ((i = 0; i < servers; i++)); do
      port=$((first_port + i))
      scripts/nlu_serve.sh --background --port "$port" --model "$model" --timeout 120 \
        >"var/nlu-start-$port.log" 2>&1 &
      ports+=("$port") starters+=("$!")
    done
  fi
  trap 'for p in "${ports[@]}"; do scripts/nlu_serve.sh --stop --port "$p" >/dev/null 2>&1 || true; done' EXIT
  for i in "${!ports[@]}"; do
    if wait "${starters[$i]}"; then
      urls+=("http://127.0.0.1:${ports[$i]}")
    else
      echo "Rasa NLU on port ${ports[$i]} did not start (see var/nlu-start-${ports[$i]}.log)." >&2
    fi
  done
  if [ "${#urls[@]}" -gt 0 ]; then
    KEFU_NLU_URLS="$(IFS=,; echo "${urls[*]}")"
    export KEFU_NLU_URLS
  else
    echo "Rasa NLU did not start (see var/nlu-start*.log): the hub runs with its keyword router." >&2
  fi
fi
.venv/bin/python -m core run "$@"
