"""Bring your own model: how long a refresh takes when another ML backend ranks the pool.

Usage: python bench/bench_remote.py [--pool 10000] [--per-call 1.0] [--batch 100] [--repeat 3]

The remote is ``harness/remote_backend.RemoteBackend``, a real server on
loopback speaking Label Studio's ML backend protocol, made to answer each
``/predict`` of ``--batch`` tasks in ``--per-call`` seconds (the issue's "a
remote that answers 100 tasks in 1 s").  The project is Label Studio's *Named
Entity Recognition* config over ``--pool`` real movie-review texts
(rotten-tomatoes); the remote answers one scored span per text, so the
geometry is the project's own n-grams.  Measured, ``build_version`` in this
process, each ``--repeat`` times on a fresh project (median reported):

1. **first refresh**: every task asked (``--pool / --batch`` calls), the
   predictions cached, the pool featurised, ranked and published;
2. **after one new label**: only the one-task version probe is sent; the
   ranking is rebuilt from the cache.

``AL_REMOTE_BUDGET`` is raised so that the first refresh asks for the whole
pool at once (the default, 60 s, would publish after 60 s with the tasks
asked so far and queue the rest).  Uses ``AL_BENCH_REDIS_URL`` (default
127.0.0.1:6379/10) under its own key prefix, deleted before and after.
Results: ``docs/results/remote.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BENCH_REDIS_URL = os.environ.get("AL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
PREFIX, QUEUE = "bench-remote", "bench-remote-queue"
CONFIG = ('<View><Labels name="label" toName="text"><Label value="PER"/><Label value="ORG"/></Labels>'
          '<Text name="text" value="$text"/></View>')


def _clean(r) -> None:
    for pattern in (f"{PREFIX}:*", f"*{QUEUE}*"):
        keys = list(r.scan_iter(pattern, count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i:i + 1000])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=10_000)
    ap.add_argument("--per-call", type=float, default=1.0, help="seconds the remote takes per /predict call")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "remote.json"))
    args = ap.parse_args()

    from harness.remote_backend import Behaviour, RemoteBackend

    with RemoteBackend(Behaviour(delay=args.per_call)) as remote:
        from backend.settings import host_port

        os.environ.update(REDIS_URL=BENCH_REDIS_URL, AL_KEY_PREFIX=PREFIX, AL_QUEUE=QUEUE, AL_LOG_LEVEL="WARNING",
                          AL_REMOTE_ALLOW_HOSTS=host_port(remote.url), AL_REMOTE_BUDGET="100000")
        from backend.service.predictor import Predictor
        from backend.settings import get_settings
        from backend.simulation.datasets import load_dataset
        from backend.state.store import ProjectStore, connect
        from worker.refresh import build_version

        get_settings.cache_clear()
        settings = get_settings()
        r = connect(BENCH_REDIS_URL)
        _clean(r)
        texts = load_dataset("rotten-tomatoes").texts
        texts = [texts[i % len(texts)] for i in range(args.pool)]
        confidence = [round(0.05 + 0.9 * ((i * 7919) % 1000) / 1000, 4) for i in range(args.pool)]
        first, cached, calls = [], [], []
        try:
            for rep in range(args.repeat):
                pid = rep + 1
                store = ProjectStore(r, PREFIX, pid)
                Predictor(r, settings).setup(pid, CONFIG, hostname="", extra_params={
                    "model": "remote", "remote_url": remote.url, "remote_batch": args.batch}, project_epoch=1)
                store.add_tasks((i + 1, {"text": t, "confidence": c})
                                for i, (t, c) in enumerate(zip(texts, confidence)))
                remote.behaviour.calls.clear()
                t0 = time.perf_counter()
                out = build_version(store, settings)
                first.append(time.perf_counter() - t0)
                assert out["published"] and out["ranked"] == args.pool, out
                calls.append(len(remote.behaviour.calls))
                ranking = store.ranking(out["version"])
                top = min(ranking, key=ranking.get)
                store.upsert_annotation({"id": 1, "task": top, "result": [], "was_cancelled": False,
                                         "completed_by": 1, "updated_at": "2026-12-07T00:00:00Z", "content": "x"})
                remote.behaviour.calls.clear()
                t0 = time.perf_counter()
                again = build_version(store, settings)
                cached.append(time.perf_counter() - t0)
                assert again["published"] and again["ranked"] == args.pool - 1, again
                assert remote.behaviour.calls == [1], remote.behaviour.calls
                print(f"repeat {rep + 1}: first refresh {first[-1]:.2f} s ({calls[-1]} calls), "
                      f"after one label {cached[-1]:.2f} s; timings {out['timings']} / {again['timings']}", flush=True)
        finally:
            _clean(r)
    result = {
        "pool": args.pool, "batch": args.batch, "remote_seconds_per_call": args.per_call, "repeat": args.repeat,
        "first_refresh_s": {"median": round(statistics.median(first), 2), "runs": [round(x, 2) for x in first]},
        "calls_first_refresh": calls[0],
        "after_one_label_s": {"median": round(statistics.median(cached), 2), "runs": [round(x, 2) for x in cached]},
        "calls_after_one_label": 1,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
