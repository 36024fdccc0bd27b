#!/usr/bin/env bash
# Serve the NLU model over Rasa's HTTP API on loopback, with an auth token.
#
#   scripts/nlu_serve.sh                  train if needed, then run Rasa in the foreground
#   scripts/nlu_serve.sh --background     same, detached; waits until ready, prints the pid
#   scripts/nlu_serve.sh --wait           only wait until a server on the port is ready
#   scripts/nlu_serve.sh --stop           stop the server started with --background
#
# Options (each also from the environment):
#   --port N       KEFU_NLU_PORT   (default 5005)
#   --token T      KEFU_NLU_TOKEN  (required: the hub sends it as ?token=)
#   --model PATH   KEFU_NLU_MODEL  (default: the output of scripts/nlu_train.sh)
#   --timeout S    KEFU_NLU_READY_TIMEOUT (default 60) for --wait / --background
#
# Ready means: GET /status?token= names a loaded model and one warm-up
# POST /model/parse has answered (the first parse builds the TF graph).
# The hub calls POST http://127.0.0.1:PORT/model/parse?token=T with {"text": ...}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NLU="$ROOT/nlu"
PORT="${KEFU_NLU_PORT:-5005}"
TOKEN="${KEFU_NLU_TOKEN:-}"
MODEL="${KEFU_NLU_MODEL:-}"
TIMEOUT="${KEFU_NLU_READY_TIMEOUT:-60}"
MODE=foreground

while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT="$2"; shift 2 ;;
        --token) TOKEN="$2"; shift 2 ;;
        --model) MODEL="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --background) MODE=background; shift ;;
        --wait) MODE=wait; shift ;;
        --stop) MODE=stop; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "nlu_serve: unknown argument $1" >&2; exit 2 ;;
    esac
done

RUNDIR="$NLU/.work"
PIDFILE="$RUNDIR/rasa-$PORT.pid"
LOGFILE="$RUNDIR/rasa-$PORT.log"

wait_ready() {
    # stdlib only: runs with whatever python3 is on PATH (the hub's).
    python3 - "$PORT" "$TOKEN" "$TIMEOUT" "${1:-}" <<'PY'
import json, sys, time, urllib.error, urllib.parse, urllib.request
port, token, timeout, pid = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
base = f"http://127.0.0.1:{port}"
q = "?" + urllib.parse.urlencode({"token": token})
t0 = time.monotonic()
def alive():
    if not pid:
        return True
    try:
        import os; os.kill(int(pid), 0); return True
    except OSError:
        return False
while True:
    try:
        with urllib.request.urlopen(base + "/status" + q, timeout=2) as r:
            if json.load(r).get("model_file"):
                break
    except (urllib.error.URLError, OSError, ValueError):
        pass
    if not alive():
        sys.exit("nlu_serve: rasa exited before it was ready")
    if time.monotonic() - t0 > timeout:
        sys.exit(f"nlu_serve: not ready after {timeout:.0f}s on {base}")
    time.sleep(0.2)
req = urllib.request.Request(base + "/model/parse" + q, data=json.dumps({"text": "你好"}).encode(),
                             headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=30).read()
print(f"nlu_serve: ready on {base} after {time.monotonic() - t0:.1f}s", file=sys.stderr)
PY
}

case "$MODE" in
    stop)
        if [ -f "$PIDFILE" ]; then
            pid="$(cat "$PIDFILE")"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$PIDFILE"
            echo "nlu_serve: stopped $pid" >&2
        fi
        exit 0 ;;
    wait)
        [ -n "$TOKEN" ] || { echo "nlu_serve: set KEFU_NLU_TOKEN or pass --token" >&2; exit 2; }
        wait_ready; exit $? ;;
esac

[ -n "$TOKEN" ] || { echo "nlu_serve: set KEFU_NLU_TOKEN or pass --token (the hub sends it as ?token=)" >&2; exit 2; }
[ -n "$MODEL" ] || MODEL="$("$ROOT/scripts/nlu_train.sh")"
[ -f "$MODEL" ] || { echo "nlu_serve: no model at $MODEL" >&2; exit 1; }
# absolute: the server runs in nlu/, and Rasa serves nlu/models/ instead of a path it cannot find
MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"
PY="$("$ROOT/scripts/nlu_env.sh")"

export PYTHONPATH="$NLU${PYTHONPATH:+:$PYTHONPATH}"
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2 PYTHONWARNINGS=ignore
CMD=("$(dirname "$PY")/rasa" run --enable-api -m "$MODEL" -i 127.0.0.1 -p "$PORT"
     --auth-token "$TOKEN" --quiet)

if [ "$MODE" = foreground ]; then
    cd "$NLU"
    exec "${CMD[@]}"
fi

mkdir -p "$RUNDIR"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "nlu_serve: already running (pid $(cat "$PIDFILE")) on port $PORT" >&2
    exit 1
fi
(cd "$NLU" && exec setsid "${CMD[@]}" >"$LOGFILE" 2>&1 < /dev/null) &
pid=$!
echo "$pid" >"$PIDFILE"
if ! wait_ready "$pid"; then
    tail -n 20 "$LOGFILE" >&2
    kill "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    exit 1
fi
echo "$pid"
