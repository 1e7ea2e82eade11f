"""Retraining from zero vs from the previous model's weights, along a growing labeled set.

Usage: python bench/bench_warm_start.py [--start 5000] [--step 6] [--steps 30]

The worker retrains after every few labels; ``ChoicesClassifier.fit(init=...)``
starts L-BFGS from the serving model's weights (as stored in Redis, float32)
instead of from zero.  The objective is strictly convex, so both reach the
same optimum up to the solver's tolerance.  This script checks that on real
data (CrowdFlower tweets, 3 classes, 10,000 held-out tweets): per step, the
time of each fit, held-out accuracy, and how far the two models'
probabilities are apart; at the end, both against the exact optimum (a fit
to ``tol=1e-8``).  The warm starts chain, as in the worker.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", type=int, default=5000, help="labels before the first step")
    ap.add_argument("--step", type=int, default=6, help="labels added per retraining")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    threadpool_limits(1)  # as the worker (AL_WORKER_THREADS=1)

    from sklearn.linear_model import LogisticRegression

    from backend.learning.featurizers.ngrams import NgramFeaturizer
    from backend.learning.model import ChoicesClassifier, compact_columns
    from backend.simulation.datasets import load_dataset

    ds = load_dataset("crowdflower-tweets")
    idx = np.random.default_rng(0).permutation(len(ds.texts))
    n_max = args.start + args.step * args.steps
    test = idx[-10_000:]
    if n_max > len(idx) - len(test):
        raise SystemExit(f"--start + --step * --steps must be at most {len(idx) - len(test)}")
    featurizer = NgramFeaturizer()
    X_all = featurizer.transform([ds.texts[i] for i in idx[:n_max]])
    y_all = [ds.labels[i] for i in idx[:n_max]]
    X_test = featurizer.transform([ds.texts[i] for i in test])
    y_test = np.asarray([ds.labels[i] for i in test])
    prev = ChoicesClassifier().fit(X_all[: args.start], y_all[: args.start])
    rows = []
    for k in range(1, args.steps + 1):
        n = args.start + k * args.step
        X, y = X_all[:n], y_all[:n]
        t = time.perf_counter()
        cold = ChoicesClassifier().fit(X, y)
        t_cold = time.perf_counter() - t
        init = ChoicesClassifier.from_bytes(prev.to_bytes())  # as the worker loads it from Redis
        t = time.perf_counter()
        warm = ChoicesClassifier().fit(X, y, init=init)
        t_warm = time.perf_counter() - t
        p_cold, p_warm = cold.predict_proba(X_test), warm.predict_proba(X_test)
        acc_cold = float((np.asarray(cold.predict(X_test)) == y_test).mean())
        acc_warm = float((np.asarray(warm.predict(X_test)) == y_test).mean())
        gap = float(np.abs(p_cold - p_warm).max())
        rows.append((t_cold, t_warm, acc_cold, acc_warm, gap))
        print(f"{n} labels: from zero {t_cold:.2f}s, warm {t_warm:.2f}s; held-out accuracy {acc_cold:.4f} / "
              f"{acc_warm:.4f}; max |p_zero - p_warm| {gap:.4f}", flush=True)
        prev = warm
    r = np.asarray(rows)
    print(f"\nmedian fit: from zero {np.median(r[:, 0]):.2f}s, warm {np.median(r[:, 1]):.2f}s "
          f"(x{np.median(r[:, 0]) / np.median(r[:, 1]):.1f}); mean held-out accuracy {r[:, 2].mean():.4f} / "
          f"{r[:, 3].mean():.4f}")
    Xc, cols = compact_columns(X)
    exact = LogisticRegression(C=cold.C, max_iter=20_000, tol=1e-8).fit(Xc, np.asarray(y, dtype=str))
    coef = np.zeros((exact.coef_.shape[0], X.shape[1]))
    coef[:, cols] = exact.coef_
    z = np.asarray(X_test @ coef.T) + exact.intercept_
    z -= z.max(axis=1, keepdims=True)
    p_exact = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    acc_exact = float((exact.classes_[p_exact.argmax(axis=1)] == y_test).mean())
    for name, model in (("from zero", cold), ("warm (chained)", warm)):
        p = model.predict_proba(X_test)
        print(f"{n} labels, {name}: accuracy {(np.asarray(model.predict(X_test)) == y_test).mean():.4f} "
              f"(exact optimum {acc_exact:.4f}); |p - p_exact| max {np.abs(p - p_exact).max():.4f}, "
              f"mean {np.abs(p - p_exact).mean():.5f}")


if __name__ == "__main__":
    main()
