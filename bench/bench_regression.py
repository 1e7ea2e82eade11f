"""Numbers to predict: labels saved by ranking on the committee's spread, against random and a peer library.

Usage: python bench/bench_regression.py [--dataset diabetes|bikeshare] [--seeds 20] [--batch 5] [--budget 100]
                                        [--out docs/results/regression-<dataset>.json]

The data is real (``backend/simulation/datasets.load_regression``):
scikit-learn's diabetes set (442 patients, ten measurements, and the
disease's progression a year later) or ISLP's Bikeshare (8,645 hours of
weather and calendar, and the riders that hour).  Each row is read as a
``<Table>`` task's record is (``task_numbers.record``) and featurised by
the backend's own ``numbers`` featurizer, fitted on the data as the worker
fits it on the pool.  Per seed, a random 30% is the test set and the rest
the pool.

Every strategy starts from the same first batch of ``--batch`` random
tasks and adds ``--batch`` labels per round up to ``--budget``.  After
each round a :class:`CommitteeRegressor` (the backend's model) is trained
on the labels and its mean absolute error on the test set recorded.

* ``random``: the baseline;
* ``margin``: the backend's default strategy through ``strategies.rank_pool``
  (the worker's entry point), which reads the regressor's probability view:
  query-by-committee on the members' spread;
* ``kcenter``: the backend's k-center core-set for the batch (diversity);
* ``gsx``: scikit-activeml's ``GreedySamplingX`` (Wu, Lin & Huang 2019, a
  standard diversity baseline for regression active learning), on the same
  features, when scikit-activeml is installed (``pip install -e '.[compare]'``).

Reported per strategy, over the paired seeds: the area under the MAE curve
relative to random's (below 1: less error for the same labels), and the
share of the budget it saved to reach the MAE random reached at the budget
(on the curves averaged over seeds, which a single noisy seed cannot cut
short), with bootstrap 95% intervals over seeds.  The run checks what it measured:
every curve point is a model trained on exactly that many labels, and the
final models beat always guessing the mean.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.labelstudio.task_numbers import record  # noqa: E402
from backend.labelstudio.tasktypes.number import NumberTask  # noqa: E402
from backend.learning.featurizers.numbers import NumberFeaturizer  # noqa: E402
from backend.learning.regressor import CommitteeRegressor  # noqa: E402
from backend.selection import strategies  # noqa: E402
from backend.simulation.datasets import REGRESSION, load_regression  # noqa: E402

TASK = NumberTask()
NAME = "progression"


def _rank(strategy: str, X_pool: np.ndarray, model, labeled: list[int], pool: list[int], y: np.ndarray,
          batch: int, rng: np.random.Generator) -> list[int]:
    """The next ``batch`` pool rows by ``strategy``, as the worker would order them (no control share)."""
    X_open = X_pool[pool]
    view = TASK.probabilities(model, X_open)
    p = strategies.Pool(X=X_open, probas={NAME: view}, models={NAME: model},
                        labeled_X=X_pool[labeled], labeled_y=list(y[labeled]))
    params = strategies.SelectionParams(strategy=strategy, batch_size=batch, control_share=0.0,
                                        near_duplicate_threshold=0.99, head=batch)
    order = strategies.rank_pool(p, params, rng).order[:batch]
    return [pool[i] for i in order]


def _gsx(X_pool: np.ndarray, labeled: list[int], pool: list[int], batch: int, seed: int) -> list[int]:
    from skactiveml.pool import GreedySamplingX

    rows = labeled + pool
    y = np.full(len(rows), np.nan)
    y[:len(labeled)] = 0.0  # GSx looks at X only; the labels' values are not read
    picked = GreedySamplingX(random_state=seed).query(X_pool[rows], y, batch_size=batch)
    return [rows[i] for i in np.atleast_1d(picked)]


def run(strategy: str, seed: int, X: np.ndarray, y: np.ndarray, args) -> list[float]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_test = int(0.3 * len(y))
    test, pool_rows = perm[:n_test], perm[n_test:]
    X_pool, y_pool = X[pool_rows], y[pool_rows]
    first = np.random.default_rng([seed, 1]).choice(len(pool_rows), args.batch, replace=False).tolist()
    labeled = list(first)
    pool = [i for i in range(len(pool_rows)) if i not in set(labeled)]
    curve = []
    pick_rng = np.random.default_rng([seed, 2])
    while True:
        model = CommitteeRegressor().fit(X_pool[labeled], y_pool[labeled])
        assert model.n_features_in_ == X.shape[1] and len(labeled) == args.batch * (len(curve) + 1)
        curve.append(float(np.abs(model.predict(X[test]) - y[test]).mean()))
        if len(labeled) >= args.budget:
            baseline = float(np.abs(y_pool[labeled].mean() - y[test]).mean())
            assert curve[-1] < baseline, f"{strategy} seed {seed}: MAE {curve[-1]:.1f} not below the mean's {baseline:.1f}"
            return curve
        if strategy == "random":
            new = pick_rng.choice(pool, args.batch, replace=False).tolist()
        elif strategy == "gsx":
            new = _gsx(X_pool, labeled, pool, args.batch, seed)
        else:
            new = _rank(strategy, X_pool, model, labeled, pool, y_pool, args.batch, pick_rng)
        assert len(set(new)) == args.batch and not set(new) & set(labeled)
        labeled += new
        taken = set(new)
        pool = [i for i in pool if i not in taken]


BOOTSTRAP = 2000


def _ci(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    boot = rng.choice(values, size=(BOOTSTRAP, values.size), replace=True).mean(axis=1)
    return [round(float(np.quantile(boot, 0.025)), 3), round(float(np.quantile(boot, 0.975)), 3)]


def savings(curves: np.ndarray, random: np.ndarray, batch: int, budget: int) -> float:
    """Share of the budget saved reaching random's MAE at the budget, on the seeds' mean curves (< 0: more needed)."""
    need = labels_to_reach(list(curves.mean(axis=0)), float(random.mean(axis=0)[-1]), batch)
    return 1.0 - min(need, 2 * budget) / budget


def labels_to_reach(curve: list[float], target: float, batch: int) -> float:
    """Labels at which ``curve`` first reaches ``target`` (interpolated between rounds); inf if never."""
    for k, mae in enumerate(curve):
        if mae <= target:
            if k == 0:
                return float(batch)
            prev = curve[k - 1]
            frac = (prev - target) / (prev - mae) if prev > mae else 1.0
            return batch * (k + frac)
    return float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=REGRESSION, default="diabetes")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--strategies", default="random,margin,density,hybrid,kcenter",
                    help="the backend's strategies to run (random first); gsx is added when scikit-activeml is there")
    ap.add_argument("--out", default=None, help="default: docs/results/regression-<dataset>.json")
    args = ap.parse_args()
    rows, y = load_regression(args.dataset)
    records = [record(r, args.dataset) for r in rows]
    X = NumberFeaturizer().fit(records).transform(records).astype(np.float32)
    out_path = Path(args.out or f"docs/results/regression-{args.dataset}.json")
    names = args.strategies.split(",")
    if names[0] != "random":
        raise SystemExit("--strategies must start with random (the baseline the others are compared with)")
    try:
        import skactiveml  # noqa: F401
        names.append("gsx")
    except ImportError:
        print("scikit-activeml is not installed: the gsx peer is left out (pip install -e '.[compare]')")
    t0 = time.time()
    curves = {s: np.array([run(s, seed, X, y, args) for seed in range(args.seeds)]) for s in names}
    rng = np.random.default_rng(0)
    rnd = curves["random"]
    boot_seeds = rng.integers(0, args.seeds, size=(BOOTSTRAP, args.seeds))  # the same resamples for every strategy
    out = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d"),
           "machine": f"{platform.machine()}, {platform.python_version()}", "dataset": args.dataset,
           "n": len(y), "features": X.shape[1], "seeds": args.seeds, "batch": args.batch, "budget": args.budget,
           "runtime_s": round(time.time() - t0, 1), "strategies": {}}
    print(f"{args.dataset}, {args.seeds} paired seeds, batch {args.batch}, budget {args.budget}: mean MAE at the budget, "
          "AULC relative to random, budget saved reaching random's MAE at the budget")
    for s in names:
        c = curves[s]
        aulc_ratio = c.mean(axis=1) / rnd.mean(axis=1)
        saved = savings(c, rnd, args.batch, args.budget)
        boot = np.array([savings(c[b], rnd[b], args.batch, args.budget) for b in boot_seeds])
        row = {"mae_at_budget": round(float(c[:, -1].mean()), 2),
               "aulc_vs_random": round(float(aulc_ratio.mean()), 3), "aulc_ci": _ci(aulc_ratio, rng),
               "savings_vs_random": round(saved, 3),
               "reached_random_at_budget": bool(saved > -1.0),  # -1: not within twice the budget
               "savings_ci": [round(float(np.quantile(boot, q)), 3) for q in (0.025, 0.975)],
               "curve_mean": [round(float(v), 2) for v in c.mean(axis=0)]}
        out["strategies"][s] = row
        def pct(v: float) -> str:
            return "not reached" if v <= -1.0 else f"{100 * v:+.0f}%"

        print(f"  {s:8s} MAE {row['mae_at_budget']:6.2f}  AULC/random {row['aulc_vs_random']:.3f} "
              f"{row['aulc_ci']}  savings {pct(row['savings_vs_random'])} "
              f"[{pct(row['savings_ci'][0])}, {pct(row['savings_ci'][1])}]")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=1))
    print("wrote", out_path)


if __name__ == "__main__":
    main()
