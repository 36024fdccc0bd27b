#!/usr/bin/env bash
# Installs what the tests need (Python packages, redis-server, Chromium), starts Redis when none
# answers, then runs the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

apt_install() {  # apt_install <package>...: Debian packages, installed once
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "please install: $* (no apt-get on this machine)" >&2; exit 1
  fi
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing $* ..."
  $sudo apt-get update -qq >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v redis-server >/dev/null 2>&1 || apt_install redis-server
command -v chromium >/dev/null 2>&1 || apt_install chromium

export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
redis_port="$(.venv/bin/python -c 'import os,urllib.parse as u; print(u.urlparse(os.environ["REDIS_URL"]).port or 6379)')"
if ! .venv/bin/python -c 'import os,redis,sys; redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=1).ping()' 2>/dev/null; then
  echo "no Redis answers at $REDIS_URL: starting redis-server on port $redis_port"
  mkdir -p var
  redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
    --dir /tmp --logfile "$(pwd)/var/redis-test.log"
  for _ in $(seq 50); do
    .venv/bin/python -c 'import os,redis; redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=1).ping()' 2>/dev/null && break
    sleep 0.1
  done
fi

# The Rasa environment (Python 3.10, its own venv); the tests start and train a server from it.
scripts/nlu_env.sh >/dev/null

.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
