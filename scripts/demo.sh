#!/usr/bin/env bash
# `make demo`: Redis (already ensured by make), the backend and one worker,
# in the foreground; Ctrl-C stops what this started.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-9090}"
BIN=.venv/bin
mkdir -p run
pids=()
cleanup() { trap - INT TERM EXIT; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; echo "stopped"; }
trap cleanup INT TERM EXIT

"$BIN/al-backend" serve --host 0.0.0.0 --port "$PORT" > run/backend.log 2>&1 & pids+=($!)
"$BIN/al-backend" worker > run/worker.log 2>&1 & pids+=($!)

for _ in $(seq 1 100); do
  if "$BIN/python" - "$PORT" <<'PY' 2>/dev/null
import sys, httpx
r = httpx.get(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1)
sys.exit(0 if r.status_code == 200 and r.json().get("redis") else 1)
PY
  then break; fi
  sleep 0.2
done
health=$(curl -s "http://127.0.0.1:$PORT/health" || true)
ip=$(hostname -I 2>/dev/null | awk '{print $1}')
cat <<MSG

  Active-learning backend is up: $health

  In Label Studio: Project → Settings → Model → Connect Model, URL:
      http://${ip:-127.0.0.1}:$PORT
  (Label Studio refuses loopback/private URLs unless it runs with
   ML_BLOCK_LOCAL_IP=false and SSRF_PROTECTION_ENABLED=false.)

  Logs: run/backend.log, run/worker.log.   Ctrl-C stops everything.
MSG
wait
