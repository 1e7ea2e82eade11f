"""Ranking alone, on a large pool: how long does ordering every unlabeled task take?

Usage: python bench/bench_ranking.py [--pool 100000] [--labels 1000] [--repeat 3]

The pool is real text (CrowdFlower tweets, 37,243, repeated with a suffix to
reach ``--pool``), featurised once (the worker caches features per task).
Timed, with a model trained on ``--labels`` labels: probabilities, margin
uncertainty, the low-dimensional projection, k-means, the cluster-coverage
order and the queue scores — what ``worker.refresh.build_version`` does per
training besides reading Redis.  Median of ``--repeat`` runs, per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.learning.featurizers.ngrams import NgramFeaturizer  # noqa: E402
from backend.learning.model import ChoicesClassifier  # noqa: E402
from backend.selection import (
    ranking,  # noqa: E402
    scores,  # noqa: E402
)
from backend.simulation.datasets import load_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=int, default=100_000)
    ap.add_argument("--labels", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ds = load_dataset("crowdflower-tweets")
    n = len(ds.texts)
    texts = [ds.texts[i % n] + ("" if i < n else f" #{i // n}") for i in range(args.pool)]
    t = time.perf_counter()
    X = NgramFeaturizer().transform(texts)
    print(f"pool {args.pool:,} texts featurised once in {time.perf_counter() - t:.1f}s (cached by the worker)")
    idx = np.random.default_rng(0).permutation(n)[: args.labels]
    model = ChoicesClassifier().fit(X[idx], [ds.labels[i] for i in idx])
    ranking.random_projection(X.shape[1])  # built once per worker process
    steps: dict[str, list[float]] = {}
    for r in range(args.repeat):
        rng = np.random.default_rng(r)
        tracemalloc.start()
        times = {}
        t = time.perf_counter()
        proba = model.predict_proba(X)
        times["predict_proba"] = time.perf_counter() - t
        t = time.perf_counter()
        utility = scores.margin_uncertainty(proba)
        times["margin"] = time.perf_counter() - t
        t = time.perf_counter()
        Z = ranking.project(X, 32, rng)
        times["projection"] = time.perf_counter() - t
        t = time.perf_counter()
        labels, _ = ranking.cluster(Z, int(np.clip(round(np.sqrt(args.pool)), 1, 100)), rng)
        times["kmeans"] = time.perf_counter() - t
        t = time.perf_counter()
        order = ranking.cluster_coverage_order(utility, labels)
        ranking.queue_scores(order)
        ranking.utility_quantiles(utility)
        times["order+scores"] = time.perf_counter() - t
        times["total"] = sum(times.values())
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        times["peak_python_mb"] = peak
        for k, v in times.items():
            steps.setdefault(k, []).append(v)
        print(f"run {r + 1}: total {times['total']:.2f}s")
    print(f"\nranking {args.pool:,} tasks (median of {args.repeat}):")
    for k, v in steps.items():
        unit = "MB" if k.endswith("_mb") else "s"
        print(f"  {k:16} {statistics.median(v):8.3f} {unit}")


if __name__ == "__main__":
    main()
