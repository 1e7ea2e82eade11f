"""Error figures of a number-predicting model (``backend/progress/regression.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from backend.learning.regressor import CommitteeRegressor
from backend.progress import estimators, regression


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:200].astype(np.float32), y[:200]


def test_cross_validation_reports_the_error_against_always_guessing_the_mean(diabetes):
    X, y = diabetes
    cv, pred = regression.cross_validate(CommitteeRegressor(), X, y)
    assert cv["n"] == 200 and cv["folds"] == 5 and pred.shape == (200,)
    assert cv["mae"] == pytest.approx(np.abs(pred - y).mean())
    assert cv["mae"] < cv["baseline_mae"] and cv["skill"] == pytest.approx(1 - cv["mae"] / cv["baseline_mae"])
    # Features that carry nothing: no skill (around 0, never well above).
    noise = np.random.default_rng(0).normal(size=X.shape).astype(np.float32)
    assert regression.cross_validate(CommitteeRegressor(), noise, y)[0]["skill"] < 0.05


def test_too_few_or_equal_numbers_give_a_reason_not_a_figure():
    X = np.eye(3, dtype=np.float32)
    assert "needs 4 labeled tasks" in regression.cross_validate(CommitteeRegressor(), X, [1.0, 2.0, 3.0])[0]["reason"]
    X = np.eye(6, dtype=np.float32)
    assert "reason" in regression.cross_validate(CommitteeRegressor(), X, [2.0] * 6)[0]


def test_the_held_out_error_uses_only_the_control_tasks_and_brackets_itself(diabetes):
    X, y = diabetes
    picks = np.zeros(200, dtype=bool)
    picks[::4] = True
    hold = regression.random_pick_holdout(CommitteeRegressor(), X, y, picks)
    assert hold["n"] == 50 and hold["low"] <= hold["mae"] <= hold["high"] and hold["mae"] < hold["baseline_mae"]
    assert regression.random_pick_holdout(CommitteeRegressor(), X, y, picks & False)["reason"].startswith("0 labeled")


def test_target_mae_stops_and_the_plateau_reads_skill():
    rules = estimators.StopRules(target_mae=40.0)
    rec = estimators.recommend(rules, labels=100, accuracy=None, macro_f1_score=None, scores=[], kappas=[], mae=39.5)
    assert rec.action == estimators.STOP and "mean absolute error 39.5 <= 40" in rec.reason
    rec = estimators.recommend(rules, labels=100, accuracy=None, macro_f1_score=None, scores=[], kappas=[], mae=41)
    assert rec.action == estimators.KEEP_GOING and not rec.signals["target_mae_reached"]
