#!/usr/bin/env python
"""Every registered featurizer: time to featurise, to load, and accuracy from random labels.

Usage: python bench/bench_featurizers.py [--repeat 7] [--seeds 5]

For each built-in text dataset and each featurizer of
``backend.learning.featurizers.FEATURIZERS``:

1. times featurising 1 text (mean of 300 calls) and 1,000 texts (one
   call), ``--repeat`` rounds taking turns, and reports medians;
2. times its first call in a fresh process that imported it (tables, weights);
3. trains the project's classifier on 200 and 1,000 random labels and scores
   3,000 other texts (mean over ``--seeds``).  The active-learning
   comparison is ``al-backend simulate --features ...``.
Prints the load average before and after, as the numbers depend on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.learning import featurizers
from backend.learning.model import ChoicesClassifier
from backend.simulation.datasets import load_dataset


def timed(f, texts: list[str], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        f.transform(texts)
    return (time.perf_counter() - t0) / calls


def load_seconds(name: str, repeat: int) -> float:
    code = ("import time; from backend.learning import featurizers; t = time.perf_counter(); "
            f"featurizers.get({name!r}).transform(['warm up']); print(time.perf_counter() - t)")
    root = Path(__file__).resolve().parents[1]
    runs = [float(subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                                 check=True).stdout) for _ in range(repeat)]
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    names = [n for n in featurizers.FEATURIZERS if featurizers.get(n).unavailable() is None]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    loads = {n: load_seconds(n, 3) for n in names}
    for ds_name in ("rotten-tomatoes", "crowdflower-tweets"):
        ds = load_dataset(ds_name)
        texts, y = ds.texts, np.asarray(ds.labels)
        fs = {n: featurizers.get(n) for n in names}
        for f in fs.values():
            f.transform(texts[:10])  # warm up
        one, batch = {n: [] for n in names}, {n: [] for n in names}
        for r in range(args.repeat):
            for n in (names if r % 2 == 0 else names[::-1]):
                one[n].append(timed(fs[n], texts[r:r + 1], 300))
                batch[n].append(timed(fs[n], texts[1000 * r % 9000:][:1000], 1))
        acc = {}
        for n, f in fs.items():
            X = f.transform(texts)
            for labels in (200, 1000):
                scores = []
                for seed in range(args.seeds):
                    order = np.random.default_rng(seed).permutation(len(y))
                    train, test = order[:labels], order[-3000:]
                    model = ChoicesClassifier().fit(X[train], y[train])
                    scores.append(float(np.mean(np.asarray(model.predict(X[test])) == y[test])))
                acc[n, labels] = statistics.mean(scores)
        print(f"\n{ds_name}: {len(texts):,} texts, mean {np.mean([len(t) for t in texts]):.0f} characters")
        print(f"{'featurizer':12}{'columns':>9}{'load, s':>9}{'1 text, ms':>12}{'1,000 texts, ms':>17}"
              f"{'acc@200':>9}{'acc@1,000':>11}")
        for n in names:
            print(f"{n:12}{fs[n].n_features:9d}{loads[n]:9.2f}{1e3 * statistics.median(one[n]):12.3f}"
                  f"{1e3 * statistics.median(batch[n]):17.1f}{acc[n, 200]:9.4f}{acc[n, 1000]:11.4f}")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
