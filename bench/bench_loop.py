"""Annotation saved in Label Studio → /next follows the retrained order: how long?

Usage: python bench/bench_loop.py [--tasks 10000] [--annotations 12] [--head 200]

Starts a real Label Studio 1.23 (the test harness: installed from PyPI into
.cache/), the backend and one worker on loopback, imports ``--tasks`` real
texts (CrowdFlower tweets, 3 classes), connects the backend, waits for the
cold-start queue, then ``--annotations`` times: takes the task ``/next``
serves, saves its true label, and measures until Label Studio's project
points at a version trained on that label and ``/next`` serves that
version's lowest score.  Prints p50/p90/max and writes JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.datasets import load_dataset  # noqa: E402
from tests.e2e.conftest import Stack, wait_for  # noqa: E402
from tests.e2e.label_studio import FAST_IMPORT_FLAG, LabelStudio  # noqa: E402

CONFIG = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
          '<Choice value="negative"/><Choice value="neutral"/><Choice value="positive"/></Choices></View>')


def choice(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def head_argmin(ls: LabelStudio, pid: int, version: str) -> int | None:
    """The unlabeled task with the lowest score among the version's predictions (Label Studio's order)."""
    with ls.client() as c:
        preds = c.get("/api/predictions/", params={"project": pid}).json()
    best = None
    for p in preds:
        if p.get("model_version") == version and (best is None or p["score"] < best[0]):
            best = (p["score"], p["task"])
    return best[1] if best else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--annotations", type=int, default=12)
    ap.add_argument("--head", type=int, default=200)
    ap.add_argument("--out", default=None)
    ap.add_argument("--fast-import", action="store_true",
                    help=f"start Label Studio with {FAST_IMPORT_FLAG}=true (see docs/benchmarks.md)")
    args = ap.parse_args()

    ds = load_dataset("crowdflower-tweets")
    n = len(ds.texts)
    # Beyond the dataset's size, texts repeat with a suffix (as in bench_ranking.py).
    idx = np.random.default_rng(0).permutation(max(n, args.tasks))[: args.tasks]
    text = {int(i): ds.texts[i % n] + ("" if i < n else f" #{i // n}") for i in idx}
    started = dt.datetime.now(dt.timezone.utc)
    ls_env = {FAST_IMPORT_FLAG: "true"} if args.fast_import else None
    with LabelStudio(env=ls_env) as ls, tempfile.TemporaryDirectory() as tmp:
        stack = Stack(ls, Path(tmp), extra_env={"AL_HEAD_SIZE": str(args.head)}).start()
        try:
            project = ls.create_project("loop benchmark", CONFIG)
            pid = project["id"]
            t = time.perf_counter()
            ids = []
            for start in range(0, len(idx), 5_000):
                ids += ls.import_tasks(pid, [{"text": text[int(i)]} for i in idx[start:start + 5_000]])
            import_s = time.perf_counter() - t
            truth = {tid: ds.labels[i % n] for tid, i in zip(ids, idx)}
            t = time.perf_counter()
            ls.connect_ml_backend(pid, stack.url, title="active learning")

            def synced(n: int):
                status = stack.status(pid)
                cur = status.get("current") or {}
                ok = cur.get("labeled_tasks") == n and ls.project(pid)["model_version"] == status["current_version"]
                return ok and status

            wait_for(lambda: synced(0), 900, 1.0, "the cold-start queue")
            cold_s = time.perf_counter() - t
            print(f"{args.tasks} tasks imported in {import_s:.1f}s; cold-start queue in Label Studio {cold_s:.1f}s")
            latencies = []
            labeled = 0
            for k in range(1, args.annotations + 1):
                task = ls.next_task(pid)
                ls.annotate(task["id"], choice(truth[task["id"]]))
                labeled += 1
                t = time.perf_counter()
                status = wait_for(lambda: synced(labeled), 300, 0.1, f"a version trained on {labeled} labels")
                expected = head_argmin(ls, pid, status["current_version"])
                served = ls.next_task(pid)
                latency = time.perf_counter() - t
                assert served["id"] == expected, (served["id"], expected)
                latencies.append(latency)
                print(f"annotation {k}: /next follows {status['current_version']} after {latency:.2f}s "
                      f"(refresh {status['current'].get('timings')}, "
                      f"push {status['status'].get('last_summary', {}).get('push', {}).get('timings')})")
                ls.annotate(served["id"], choice(truth[served["id"]]))  # /next locks it to us: label it
                labeled += 1
                wait_for(lambda: synced(labeled), 300, 0.1, "the follow-up version")
        finally:
            stack.stop()
            stack.cleanup_redis()
    result = {
        "command": " ".join(sys.argv), "date": started.isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "tasks": args.tasks, "head": args.head, "fast_import": args.fast_import, "import_s": import_s, "cold_start_s": cold_s,
        "latencies_s": latencies, "p50_s": statistics.median(latencies),
        "p90_s": float(np.quantile(latencies, 0.9)), "max_s": max(latencies),
    }
    print(f"annotation → /next follows the retrained order: p50 {result['p50_s']:.2f}s, "
          f"p90 {result['p90_s']:.2f}s, max {result['max_s']:.2f}s over {len(latencies)}")
    out = Path(args.out or f"bench/results/loop-{args.tasks}-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
