"""A whole refresh on a large project, as the worker runs it: Redis in, Redis out.

Usage: python bench/bench_refresh.py [--pool 1000000] [--labels 1000] [--repeat 3] [--workers 1,2]

``bench_ranking.py`` times the ranking on arrays already in memory; this one
times ``worker.refresh.build_version`` itself on a project held in a real
Redis: reading the pool's cached features, training, predicting, ranking,
and publishing the ranking of every task.  The pool is real text
(CrowdFlower tweets, repeated with a suffix to reach ``--pool``).  The
first refresh featurises every task (cold cache, timed once); the measured
refreshes follow a new label each, with the cache warm, which is what every
training of a running project costs.  Peak RSS is the refresh process's.

With ``--workers 1,2,...`` each measured refresh runs once per worker count:
pools above ``AL_SHARD_THRESHOLD`` are scored in shards that every idle
worker (separate ``al-backend worker`` processes on the same Redis) helps
with, so the time should fall as workers are added.

Uses the Redis database ``AL_BENCH_REDIS_URL`` (default 127.0.0.1:6379/8),
which it flushes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BENCH_REDIS_URL = os.environ.get("AL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
PREFIX, QUEUE = "bench", "bench-queue"


def _env() -> dict[str, str]:
    return {**os.environ, "REDIS_URL": BENCH_REDIS_URL, "AL_KEY_PREFIX": PREFIX, "AL_QUEUE": QUEUE,
            "AL_WORKER_NICE": "0", "AL_LOG_LEVEL": "WARNING"}


def populate(pool: int) -> None:
    """Fill a project with ``pool`` real tweets and its label config."""
    from backend.labelstudio.label_config import parse_label_config
    from backend.simulation.datasets import load_dataset
    from backend.state.store import ProjectStore, connect
    from harness.payloads import LABEL_CONFIG

    r = connect(BENCH_REDIS_URL)
    r.flushdb()
    store = ProjectStore(r, PREFIX, 1)
    cfg = parse_label_config(LABEL_CONFIG)
    store.save_config({"schema": LABEL_CONFIG, "config_hash": cfg.config_hash, "parsed": cfg.to_dict(),
                       "hostname": "", "access_token": "", "extra_params": {}})
    ds = load_dataset("crowdflower-tweets")
    n, order = len(ds.texts), _order(len(ds.texts))
    for start in range(0, pool, 50_000):
        store.add_tasks(
            (i + 1, {"text": ds.texts[order[i % n]] + ("" if i < n else f" #{i // n}")})
            for i in range(start, min(pool, start + 50_000))
        )


def _order(n: int) -> list[int]:
    """A fixed shuffle of the dataset, which is sorted by label: every slice of the pool has every label."""
    import numpy as np

    return np.random.default_rng(0).permutation(n).tolist()


def label(first: int, count: int) -> None:
    """Record ``count`` annotations (real labels, two classes) as the webhook would.

    The labels are the config's own choices (``pos``/``neg``): a label the
    config does not have is dropped by training, and the refresh would
    measure cold-start ranking instead.
    """
    from backend.labelstudio.label_config import parse_label_config
    from backend.simulation.datasets import load_dataset
    from backend.state.store import ProjectStore, connect
    from harness.payloads import LABEL_CONFIG

    pos, neg = parse_label_config(LABEL_CONFIG).controls[0].labels[:2]
    ds = load_dataset("crowdflower-tweets")
    store = ProjectStore(connect(BENCH_REDIS_URL), PREFIX, 1)
    order = _order(len(ds.texts))
    for i in range(first, first + count):
        tid = i * 7 + 1
        lab = pos if ds.labels[order[(tid - 1) % len(ds.texts)]] == "positive" else neg  # vs negative, neutral
        store.upsert_annotation({"id": i + 1, "task": tid, "was_cancelled": False, "completed_by": 1,
                                 "updated_at": "2026-11-24T00:00:00Z", "content": f"{tid}:{lab}",
                                 "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                                             "value": {"choices": [lab]}}]})


def refresh_once() -> None:
    """Child process: one build_version; prints its summary and peak RSS as JSON."""
    from backend.settings import get_settings
    from backend.state.queueing import pending_key
    from backend.state.store import ProjectStore, connect
    from worker.jobs import project_lock
    from worker.refresh import build_version

    settings = get_settings()
    store = ProjectStore(connect(BENCH_REDIS_URL), PREFIX, 1)
    t = time.perf_counter()
    with project_lock(store, settings.lock_ttl):  # as the refresh job holds it: idle workers only help
        store.r.delete(pending_key(PREFIX, 1))
        meta = build_version(store, settings)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_rss_mb": rss, "ranked": meta.get("ranked"),
                      "kind": meta.get("kind"), "version": meta.get("version"), "trained_in": meta.get("trained_in"),
                      "controls": meta.get("controls"), "shards": meta.get("shards"),
                      "by_helpers": meta.get("shards_by_helpers"), "timings": meta.get("timings")}))


def check_trained(res: dict, n_labels: int) -> None:
    """The refresh retrained a real model on every label: what a running project pays per label."""
    control = (res.get("controls") or {}).get("sentiment") or {}
    if res.get("kind") != "model" or res.get("trained_in") != res.get("version") or "not_trained" in control:
        raise SystemExit(f"the refresh did not publish a model trained on its labels: kind={res.get('kind')}, "
                         f"trained_in={res.get('trained_in')}, version={res.get('version')}, control={control}")
    if sum((control.get("label_counts") or {}).values()) != n_labels:
        raise SystemExit(f"trained on {control.get('label_counts')}, expected {n_labels} labels")


def run_refresh(helpers: int) -> dict:
    """One refresh in a fresh process, with ``helpers`` extra worker processes listening."""
    from rq import Queue

    from backend.state.queueing import low_queue, pending_key
    from backend.state.store import connect

    env = _env()
    r = connect(BENCH_REDIS_URL)
    for name in (QUEUE, low_queue(QUEUE)):
        Queue(name, connection=r).empty()
    # "A refresh is queued": starting workers must not catch up on the project themselves.
    r.set(pending_key(PREFIX, 1), 1)
    procs = [subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(helpers)]
    try:
        time.sleep(2.0 if helpers else 0)  # let them import and listen
        out = subprocess.run([sys.executable, __file__, "--child"], env=env, cwd=REPO, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=int, default=1_000_000)
    ap.add_argument("--labels", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", default="1", help="comma-separated worker counts (the refresh's own included)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        refresh_once()
        return
    counts = [int(c) for c in args.workers.split(",")]
    t = time.perf_counter()
    populate(args.pool)
    label(0, args.labels)
    print(f"project of {args.pool:,} tasks and {args.labels} labels written in {time.perf_counter() - t:.1f}s")
    cold = run_refresh(0)
    check_trained(cold, args.labels)
    print(f"first refresh (featurises every task): {cold['wall_s']:.1f}s, peak RSS {cold['peak_rss_mb']:.0f} MB")
    results: dict[int, list[dict]] = {c: [] for c in counts}
    n_labels = args.labels
    for rep in range(args.repeat):
        for c in counts:
            label(n_labels, 1)
            n_labels += 1
            res = run_refresh(c - 1)
            check_trained(res, n_labels)
            results[c].append(res)
            print(f"  run {rep + 1}, {c} worker(s): {res['wall_s']:.2f}s, peak RSS {res['peak_rss_mb']:.0f} MB, "
                  f"trained on {n_labels} labels, shards {res['shards']} ({res['by_helpers']} by helpers), "
                  f"timings {res['timings']}")
    print(f"\nrefresh of {args.pool:,} tasks with retraining, warm feature cache (median of {args.repeat}):")
    base = statistics.median(r["wall_s"] for r in results[counts[0]])
    for c in counts:
        wall = statistics.median(r["wall_s"] for r in results[c])
        rss = statistics.median(r["peak_rss_mb"] for r in results[c])
        print(f"  {c} worker(s): {wall:6.2f}s  (x{base / wall:.2f} vs {counts[0]})  peak RSS {rss:6.0f} MB")


if __name__ == "__main__":
    main()
