#!/usr/bin/env bash
# `make bench`: start a private backend (2 processes) and worker, run
# bench/bench_backend.py against them, stop them and remove their Redis keys.
# Extra arguments go to the benchmark, e.g. `make bench ARGS="--repeat 1"`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT="${BENCH_PORT:-9393}"
export AL_KEY_PREFIX="bench-$$" AL_QUEUE="bench-q-$$"
mkdir -p run
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$BIN/python" - <<'PY'
import os
from rq import Queue
from backend.settings import get_settings
from backend.state.store import connect
s = get_settings()
r = connect(s.redis_url)
q = Queue(s.queue_name, connection=r)
for registry in (q.finished_job_registry, q.failed_job_registry):
    for job_id in registry.get_job_ids():
        registry.remove(job_id, delete_job=True)
q.delete(delete_jobs=True)
keys = list(r.scan_iter(f"{s.key_prefix}:*"))
if keys:
    r.delete(*keys)
PY
}
trap cleanup EXIT INT TERM
"$BIN/al-backend" serve --host 127.0.0.1 --port "$PORT" --workers 2 > run/bench-backend.log 2>&1 & pids+=($!)
"$BIN/al-backend" worker > run/bench-worker.log 2>&1 & pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
"$BIN/python" bench/bench_backend.py --url "http://127.0.0.1:$PORT" ${ARGS:-} "$@"
