"""How good a number-predicting model is: error instead of accuracy (``<Number>``, ``<Rating>``).

The counterparts of ``evaluation.cross_validate`` and
``evaluation.random_pick_holdout`` for regression.  Each reports the mean
absolute error (MAE, in the numbers' own units: "off by 0.6 stars"), the
MAE of always predicting the mean of the training labels (``baseline_mae``:
what a model that learned nothing achieves), and ``skill = 1 - mae /
baseline_mae`` (0: no better than the mean, 1: exact).  ``skill`` is
higher-is-better and has no units, so the plateau rule reads it as it
reads accuracy.

Why MAE rather than RMSE: annotators and leads read it directly, and one
far-off task (a typo of 50 for 5) moves it less.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import KFold

from backend.learning.model import NotEnoughLabelsError

#: Labeled tasks needed before an error is estimated (two per fold of a 2-fold split, with spread).
MIN_LABELS = 4
#: Bootstrap resamples of the held-out errors, for the MAE's 95% interval.
BOOTSTRAP = 1000


def _skill(mae: float, baseline: float) -> float | None:
    return None if baseline <= 0 else float(1.0 - mae / baseline)


def _figures(y: np.ndarray, pred: np.ndarray, baseline_pred: np.ndarray) -> dict:
    mae = float(mean_absolute_error(y, pred))
    baseline = float(mean_absolute_error(y, baseline_pred))
    return {"mae": mae, "baseline_mae": baseline, "skill": _skill(mae, baseline)}


def cross_validate(estimator: BaseEstimator, X, y) -> tuple[dict, np.ndarray | None]:
    """Out-of-fold predictions of a clone of the project's regressor: MAE, its spread over folds, skill.

    Returns the figures and the out-of-fold prediction of each labeled task
    (``None`` when there are too few labels, with the reason in the figures).
    """
    y = np.asarray(y, dtype=np.float64)
    folds = int(min(5, y.size // 2))
    if y.size < MIN_LABELS or np.unique(y).size < 2:
        return {"n": int(y.size), "reason": f"needs {MIN_LABELS} labeled tasks with two different numbers"}, None
    pred, base = np.empty_like(y), np.empty_like(y)
    fold_mae = []
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=0).split(y):
        base[test] = y[train].mean()
        try:
            pred[test] = clone(estimator).fit(X[train], y[train]).predict(X[test])
        except NotEnoughLabelsError:  # a fold whose training numbers are all equal predicts that number
            pred[test] = y[train].mean()
        fold_mae.append(float(mean_absolute_error(y[test], pred[test])))
    return {"n": int(y.size), "folds": folds, "mae_std": float(np.std(fold_mae)), **_figures(y, pred, base)}, pred


def random_pick_holdout(estimator: BaseEstimator, X, y, is_random_pick: np.ndarray, folds: int = 5,
                        seed: int = 0) -> dict:
    """MAE on the labeled random (control) tasks, each predicted by a model trained without it.

    As ``evaluation.random_pick_holdout``: the control tasks are a uniform
    sample of the pool, so this is unbiased, where cross-validation over
    the strategy's picks (the hard, uncertain tasks) is not.  ``low`` and
    ``high`` bound the MAE (95%, bootstrap over the control tasks).
    """
    y = np.asarray(y, dtype=np.float64)
    ctl = np.flatnonzero(is_random_pick)
    if ctl.size < folds:
        return {"n": int(ctl.size), "reason": f"{ctl.size} labeled control tasks; needs {folds}"}
    pred, base = np.empty(ctl.size), np.empty(ctl.size)
    for _, test_c in KFold(n_splits=folds, shuffle=True, random_state=0).split(ctl):
        train = np.ones(y.size, dtype=bool)
        train[ctl[test_c]] = False
        if np.unique(y[train]).size < 2:
            return {"n": int(ctl.size), "reason": "the training folds hold a single number"}
        pred[test_c] = clone(estimator).fit(X[train], y[train]).predict(X[ctl[test_c]])
        base[test_c] = y[train].mean()
    errors = np.abs(pred - y[ctl])
    boot = np.random.default_rng(seed).choice(errors, size=(BOOTSTRAP, errors.size), replace=True).mean(axis=1)
    return {"n": int(ctl.size), **_figures(y[ctl], pred, base),
            "low": float(np.quantile(boot, 0.025)), "high": float(np.quantile(boot, 0.975))}
