"""``features: auto``: does cross-validation on the labeled set pick what held-out tasks prefer, and at what cost?

Usage: python bench/bench_auto_features.py [--datasets rotten-tomatoes,digits] [--sizes 100,500,2000]
       [--seeds 5] [--out results.json]

For each dataset, labeled-set size and seed: a random labeled set; the
comparison ``backend.learning.auto_features.compare`` runs on it (timed,
one thread), ``choose`` decides from n-grams; then the same model is fitted
on the whole labeled set under each representation and scored on held-out
tasks (all the rest, up to 3,000).  It prints each representation's
cross-validated and held-out accuracy, the choice, and the held-out gain of
the choice over staying on n-grams (what the guard costs or buys), and
how often the choice is within :data:`~backend.learning.auto_features.MIN_GAIN`
of the best representation on held-out tasks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.learning import auto_features, featurizers  # noqa: E402
from backend.learning.model import SINGLE_CHOICE_CLASS_WEIGHT, ChoicesClassifier  # noqa: E402
from backend.simulation.datasets import load_dataset  # noqa: E402

HELD_OUT = 3000
MIN_HELD_OUT = 300


def run(dataset: str, sizes: list[int], seeds: int) -> list[dict]:
    ds = load_dataset(dataset)
    names = auto_features.candidates()
    rows = {name: featurizers.get(name).transform(ds.texts) for name in names}
    y_all = np.asarray(ds.labels)
    out = []
    for n in sizes:
        if len(y_all) - n < MIN_HELD_OUT:
            print(f"{dataset}: {n:,} labels leave {max(len(y_all) - n, 0)} held-out tasks; skipped", file=sys.stderr)
            continue
        for seed in range(seeds):
            idx = np.random.default_rng(seed).permutation(len(y_all))
            train, test = idx[:n], idx[n:n + HELD_OUT]
            estimator = ChoicesClassifier(class_weight=SINGLE_CHOICE_CLASS_WEIGHT)
            t0 = time.perf_counter()
            comparison = auto_features.compare({k: X[train] for k, X in rows.items()}, list(y_all[train]), estimator)
            seconds = time.perf_counter() - t0
            if comparison is None:
                continue
            choice = auto_features.choose(comparison, featurizers.DEFAULT)
            held_out = {}
            for name, X in rows.items():
                model = ChoicesClassifier(class_weight=SINGLE_CHOICE_CLASS_WEIGHT).fit(X[train], y_all[train])
                held_out[name] = float(np.mean(np.asarray(model.predict(X[test])) == y_all[test]))
            # The measurement is of the thing it names: every representation was really fitted and scored.
            assert set(held_out) == set(comparison.fold_accuracy) == set(names)
            out.append({"dataset": dataset, "labels": n, "seed": seed, "seconds": round(seconds, 2),
                        "cv": {k: round(comparison.mean(k), 4) for k in names},
                        "held_out": {k: round(v, 4) for k, v in held_out.items()}, "chosen": choice.chosen,
                        "gain_of_choice": round(held_out[choice.chosen] - held_out[featurizers.DEFAULT], 4),
                        "near_best": held_out[choice.chosen] >= max(held_out.values()) - auto_features.MIN_GAIN})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="rotten-tomatoes,crowdflower-tweets,digits")
    ap.add_argument("--sizes", default="100,500,2000")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with threadpool_limits(limits=1):
        for dataset in args.datasets.split(","):
            results += run(dataset, sizes, args.seeds)
    print("| dataset | labels | seeds | CV accuracy (mean) | held-out accuracy (mean) | chosen | held-out gain of "
          "the choice over ngrams, points (mean [min, max]) | choice within 0.5 of the held-out best | comparison s (median) |")
    print("| --- | ---: | ---: | --- | --- | --- | --- | ---: | ---: |")
    for dataset in args.datasets.split(","):
        for n in sizes:
            rs = [r for r in results if r["dataset"] == dataset and r["labels"] == n]
            if not rs:
                continue
            names = list(rs[0]["cv"])
            cv = " · ".join(f"{k} {100 * np.mean([r['cv'][k] for r in rs]):.1f}" for k in names)
            ho = " · ".join(f"{k} {100 * np.mean([r['held_out'][k] for r in rs]):.1f}" for k in names)
            chosen = ", ".join(f"{k} {sum(r['chosen'] == k for r in rs)}" for k in names if any(r["chosen"] == k for r in rs))
            gains = [100 * r["gain_of_choice"] for r in rs]
            agree = sum(r["near_best"] for r in rs)
            print(f"| {dataset} | {n:,} | {len(rs)} | {cv} | {ho} | {chosen} | {np.mean(gains):+.1f} "
                  f"[{min(gains):+.1f}, {max(gains):+.1f}] | {agree}/{len(rs)} | {np.median([r['seconds'] for r in rs]):.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
