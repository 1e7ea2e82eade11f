"""Which model for how many labels: capacity, class balance and unlabeled data, on random labeled sets.

Usage: python bench/bench_models.py [--datasets rotten-tomatoes,crowdflower-tweets,digits]
       [--sizes 25,50,100,200,500,1000,2000] [--seeds 5] [--out docs/results/models.json]

Issue 15 asks whether the worker's model as it was (logistic regression,
``C=10``, no class weights, labels only; since 2026-12-03 single choice
weighs classes as balanced, from these numbers) is the right one at every label count, and
whether the unlabeled pool can stand in for labels.  Before anything is
wired into the loop, this measures each candidate on the same random
labeled sets of the built-in datasets (the pool and test split as
``al-backend simulate`` makes them: 20% stratified test), paired per seed,
and prints test accuracy and the paired difference from that model (``C=10``):

- ``C=<c>``: the worker's model with another regularisation;
- ``balanced``: class weights inversely proportional to label frequency;
- ``cv-C``: C chosen by 3-fold cross-validation on the labeled set (grid
  0.3-100), as the worker could do as labels grow; ``cv-C-balance`` also
  chooses between no class weights and balanced ones;
- ``self-train-<tau>``: fit, then refit with every pool task the model
  gives a probability >= tau, pseudo-labelled with its guess at half a
  label's weight (one round; pseudo-labels never leave the fit);
  ``self-train-top``: the same with, per class, as many of its most
  confident pool tasks as it has labels (no threshold to set);
- ``spreading``: scikit-learn's label spreading over a 10-nearest-neighbour
  graph of the pool in the ranking's 32-d projection;
- ``lr+spreading``: the mean of the two probability matrices.

Every candidate is fitted from scratch (no warm start) so only the model
differs.  The script checks that each fit saw exactly the labels it was
given (``n`` rows, every class of the set).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def _lr(C: float, class_weight=None):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=C, max_iter=1000, class_weight=class_weight)


def _fit_predict(model, X, y, X_eval, sample_weight=None):
    from backend.learning.model import compact_columns
    if sp.issparse(X):
        Xc, cols = compact_columns(sp.vstack([X, X_eval]).tocsr())
        X_fit, X_ev = Xc[: X.shape[0]], Xc[X.shape[0]:]
    else:
        X_fit, X_ev = X, X_eval
    model.fit(X_fit, y, sample_weight=sample_weight)
    return model.classes_, model.predict_proba(X_ev)


def _cv_C(X, y, rng_seed: int, weights=(None,)) -> tuple[float, str | None]:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    counts = np.unique(y, return_counts=True)[1]
    folds = int(min(3, counts.min()))
    if folds < 2:
        return 10.0, None
    cv = StratifiedKFold(folds, shuffle=True, random_state=rng_seed)
    from backend.learning.model import compact_columns
    Xc = compact_columns(X)[0] if sp.issparse(X) else X
    grid = [(c, w) for w in weights for c in GRID]
    means = [cross_val_score(_lr(c, w), Xc, y, cv=cv).mean() for c, w in grid]
    return grid[int(np.argmax(means))]


def candidates(X_lab, y_lab, X_pool, X_test, Z_pool, Z_lab, Z_test, seed: int,
               skip: frozenset = frozenset()) -> dict[str, np.ndarray]:
    """Predicted test labels of every candidate, by name (``skip``: groups not to run, see ``--skip``)."""
    out: dict[str, np.ndarray] = {}
    probas: dict[str, tuple] = {}
    for c in (10.0,) if "C" in skip else (1.0, 10.0, 100.0):
        cls, p = _fit_predict(_lr(c), X_lab, y_lab, X_test)
        out[f"C={c:g}"] = cls[p.argmax(1)]
        probas[f"C={c:g}"] = (cls, p)
    cls, p = _fit_predict(_lr(10.0, "balanced"), X_lab, y_lab, X_test)
    out["balanced"] = cls[p.argmax(1)]
    if "cv-C" not in skip:
        best = _cv_C(X_lab, y_lab, seed)
        cls, p = _fit_predict(_lr(*best), X_lab, y_lab, X_test)
        out["cv-C"] = cls[p.argmax(1)]
    best = _cv_C(X_lab, y_lab, seed, weights=(None, "balanced"))
    cls, p = _fit_predict(_lr(*best), X_lab, y_lab, X_test)
    out["cv-C-balance"] = cls[p.argmax(1)]
    # Self-training: one round of confident pseudo-labels from the pool, at half weight.
    cls, p_pool = _fit_predict(_lr(10.0), X_lab, y_lab, X_pool)
    for tau in () if "self-train-tau" in skip else (0.9, 0.97):
        keep = p_pool.max(1) >= tau
        X2 = sp.vstack([X_lab, X_pool[keep]]).tocsr() if sp.issparse(X_lab) else np.vstack([X_lab, X_pool[keep]])
        y2 = np.concatenate([y_lab, cls[p_pool[keep].argmax(1)]])
        w = np.concatenate([np.ones(len(y_lab)), np.full(int(keep.sum()), 0.5)])
        c2, p2 = _fit_predict(_lr(10.0), X2, y2, X_test, sample_weight=w)
        out[f"self-train-{tau:g}"] = c2[p2.argmax(1)]
    # Self-training by rank: per class, as many pool tasks as it has labels, the most confident ones.
    guess = p_pool.argmax(1)
    picked = []
    for k, c in enumerate(cls):
        mine = np.flatnonzero(guess == k)
        m = int(np.sum(y_lab == c))
        picked.append(mine[np.argsort(-p_pool[mine, k], kind="stable")[:m]])
    picked = np.concatenate(picked)
    X2 = sp.vstack([X_lab, X_pool[picked]]).tocsr() if sp.issparse(X_lab) else np.vstack([X_lab, X_pool[picked]])
    y2 = np.concatenate([y_lab, cls[guess[picked]]])
    w = np.concatenate([np.ones(len(y_lab)), np.full(len(picked), 0.5)])
    c2, p2 = _fit_predict(_lr(10.0), X2, y2, X_test, sample_weight=w)
    out["self-train-top"] = c2[p2.argmax(1)]
    # Label spreading over the pool's projection (labeled rows first).
    from sklearn.semi_supervised import LabelSpreading
    classes = np.unique(y_lab)
    index = {c: i for i, c in enumerate(classes)}
    Z = np.vstack([Z_lab, Z_pool])
    target = np.concatenate([[index[v] for v in y_lab], np.full(Z_pool.shape[0], -1)])
    ls = LabelSpreading(kernel="knn", n_neighbors=10, alpha=0.2, max_iter=100).fit(Z, target)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_ls = ls.predict_proba(Z_test)
    # A test task whose neighbours carry no label mass gets 0/0: it says nothing (uniform).
    p_ls = np.where(np.isfinite(p_ls).all(axis=1, keepdims=True), p_ls, 1.0 / len(classes))
    out["spreading"] = classes[p_ls.argmax(1)]
    cls10, p10 = probas["C=10"]
    assert list(cls10) == list(classes)
    out["lr+spreading"] = classes[(p10 + p_ls).argmax(1)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="rotten-tomatoes,crowdflower-tweets,digits")
    ap.add_argument("--sizes", default="25,50,100,200,500,1000,2000")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-rows", type=int, default=15000, help="stratified subsample of larger sets")
    ap.add_argument("--skip", default="", help="comma-separated groups not to run: C (C=1, C=100), cv-C, "
                    "self-train-tau (the threshold variants)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    threadpool_limits(1)

    from sklearn.model_selection import train_test_split

    from backend.learning import featurizers
    from backend.selection import ranking
    from backend.selection.strategies import N_COMPONENTS
    from backend.simulation.datasets import load_dataset

    sizes = [int(s) for s in args.sizes.split(",")]
    report: dict = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "machine": f"{platform.machine()}, {platform.python_version()}", "datasets": {}}
    try:
        report["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                          text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        pass
    for name in args.datasets.split(","):
        ds = load_dataset(name)
        y_all = np.asarray(ds.labels)
        rows = np.arange(len(y_all))
        if len(rows) > args.max_rows:
            rows, _ = train_test_split(rows, train_size=args.max_rows, stratify=y_all, random_state=0)
        X_all = featurizers.get("ngrams").transform([ds.texts[i] for i in rows])
        y_all = y_all[rows]
        acc: dict[str, dict[int, list[float]]] = {}
        t0 = time.monotonic()
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            pool, test = train_test_split(np.arange(len(rows)), test_size=0.2, stratify=y_all,
                                          random_state=seed)
            Z_all = ranking.project(X_all, N_COMPONENTS, rng)
            for n in sizes:
                if n >= len(pool):
                    continue
                lab = rng.choice(pool, size=n, replace=False)
                if len(np.unique(y_all[lab])) < 2:
                    continue
                unl = np.setdiff1d(pool, lab)
                preds = candidates(X_all[lab], y_all[lab], X_all[unl], X_all[test],
                                   Z_all[unl], Z_all[lab], Z_all[test], seed,
                                   frozenset(filter(None, args.skip.split(","))))
                for cand, pred in preds.items():
                    assert pred.shape == (len(test),)
                    acc.setdefault(cand, {}).setdefault(n, []).append(float(np.mean(pred == y_all[test])))
        print(f"\n{name}: {len(rows)} rows, {args.seeds} seeds, {time.monotonic() - t0:.0f} s")
        ns = sorted({n for d in acc.values() for n in d})
        print(f"{'model':>18} " + " ".join(f"{n:>14}" for n in ns))
        base = acc["C=10"]
        table = {}
        for cand, by_n in acc.items():
            cells, row = [], {}
            for n in ns:
                a = np.asarray(by_n.get(n, []))
                d = a - np.asarray(base[n])
                half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
                row[n] = {"accuracy": float(a.mean()), "vs_C10": float(d.mean()), "vs_C10_ci95": float(half)}
                cells.append(f"{100 * a.mean():5.1f} ({100 * d.mean():+4.1f})" if cand != "C=10"
                             else f"{100 * a.mean():5.1f}        ")
            table[cand] = row
            print(f"{cand:>18} " + " ".join(f"{c:>14}" for c in cells))
        report["datasets"][name] = {"rows": int(len(rows)), "seeds": args.seeds, "accuracy": table}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
