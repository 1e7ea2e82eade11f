"""The progress estimators on synthetic curves whose answers are known (backend/progress/estimators.py)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.progress import estimators
from backend.progress.estimators import CONSIDER_STOPPING, KEEP_GOING, STOP, CurveFit, StopRules


def test_wilson_interval_matches_the_closed_form():
    est, lo, hi = estimators.accuracy_interval(8, 10)
    z, n, p = 1.959963984540054, 10, 0.8
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert est == 0.8
    assert lo == pytest.approx(centre - half, abs=1e-9) and hi == pytest.approx(centre + half, abs=1e-9)
    # all correct: the interval still has room below 1, and stays in [0, 1]
    est, lo, hi = estimators.accuracy_interval(5, 5)
    assert est == 1.0 and 0.5 < lo < 1.0 and hi == pytest.approx(1.0)
    assert estimators.accuracy_interval(0, 0)[1:] == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= correct <= n"):
        estimators.accuracy_interval(3, 2)


def test_wilson_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true, n = 0.7, 40
    hits = [lo <= true <= hi for lo, hi in
            (estimators.accuracy_interval(int(k), n)[1:] for k in rng.binomial(n, true, size=2000))]
    assert 0.93 <= np.mean(hits) <= 0.98


def test_macro_f1_weighs_rare_labels_like_common_ones():
    y_true = ["a"] * 90 + ["b"] * 10
    y_pred = ["a"] * 100  # 90 % accurate, never finds "b"
    assert estimators.macro_f1(y_true, y_pred) == pytest.approx((2 * 90 / 190 + 0) / 2)
    assert estimators.macro_f1(["a", "b"], ["a", "b"]) == 1.0
    with pytest.raises(ValueError, match="expected the same number"):
        estimators.macro_f1(["a"], [])


def test_kappa():
    assert estimators.kappa(list("aabb"), list("aabb")) == 1.0
    assert estimators.kappa(list("aaaa"), list("aaaa")) == 1.0  # constant and identical: nothing changed
    # 4 of 6 agree; chance agreement 0.5 for balanced labels -> kappa (4/6 - 0.5) / 0.5 = 1/3
    assert estimators.kappa(list("aaabbb"), list("aabbba")) == pytest.approx(1 / 3)
    assert estimators.kappa(list("abab"), list("baba")) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same tasks"):
        estimators.kappa(["a"], ["a", "b"])


@pytest.mark.parametrize("a,b,c", [(0.9, 0.8, 0.5), (0.82, 1.5, 0.7), (0.95, 0.6, 0.3)])
def test_fit_recovers_a_known_inverse_power_law(a, b, c):
    n = np.array([10, 20, 40, 80, 160, 320, 640], dtype=float)
    fit = estimators.fit_learning_curve(n, estimators.inverse_power_law(n, a, b, c))
    assert fit is not None
    assert (fit.a, fit.b, fit.c) == pytest.approx((a, b, c), rel=1e-3)


def test_fit_with_noise_stays_close_and_bounded():
    rng = np.random.default_rng(1)
    n = np.repeat([20, 40, 80, 160, 320], 4).astype(float)
    acc = estimators.inverse_power_law(n, 0.88, 0.9, 0.5) + rng.normal(0, 0.01, n.size)
    fit = estimators.fit_learning_curve(n, acc, sigma=np.full(n.size, 0.01))
    assert abs(fit.a - 0.88) < 0.03
    assert 0 <= fit.a <= 1
    # the asymptote is bounded even for a curve that would run above 100 %
    steep = estimators.fit_learning_curve([10, 20, 40], [0.9, 0.97, 0.999])
    assert steep is None or steep.a <= 1.0


def test_fit_refuses_too_few_points():
    assert estimators.fit_learning_curve([10, 20], [0.6, 0.7]) is None
    assert estimators.fit_learning_curve([10, 10, 10], [0.6, 0.7, 0.65]) is None
    with pytest.raises(ValueError, match="expected the same number"):
        estimators.fit_learning_curve([10, 20, 30], [0.6, 0.7])


def test_savings_invert_the_random_curve_at_the_current_accuracy():
    random_curve = CurveFit(a=0.9, b=1.0, c=0.5)  # acc(n) = 0.9 - n^-0.5
    # random selection reaches 0.8 at n = (1 / 0.1)^2 = 100 labels
    assert random_curve.labels_for(0.8) == pytest.approx(100.0)
    out = estimators.labels_saved(random_curve, labels_used=40, accuracy=0.8)
    assert out["random_labels"] == pytest.approx(100.0) and out["saved"] == pytest.approx(60.0)
    assert out["ratio"] == pytest.approx(2.5)
    # the strategy got further than the random curve ever goes
    beyond = estimators.labels_saved(random_curve, labels_used=40, accuracy=0.93)
    assert beyond["random_labels"] is None and "levels off at 0.900" in beyond["reason"]
    assert estimators.labels_saved(None, 40, 0.8)["reason"] == "no random-selection curve yet"


def test_savings_from_points_of_a_known_curve():
    """End to end: fit a random curve from its points, then invert it."""
    n = np.array([10, 15, 20, 30, 40], dtype=float)
    fit = estimators.fit_learning_curve(n, estimators.inverse_power_law(n, 0.85, 1.2, 0.6))
    out = estimators.labels_saved(fit, labels_used=50, accuracy=0.80)
    expected = (1.2 / 0.05) ** (1 / 0.6)  # about 200 labels
    assert out["random_labels"] == pytest.approx(expected, rel=0.01)


def test_savings_refuse_far_extrapolation():
    random_curve = CurveFit(a=0.9, b=1.0, c=0.5)  # 0.85 needs 400 labels
    assert estimators.labels_saved(random_curve, 100, 0.85, measured_up_to=40)["random_labels"] == pytest.approx(400)
    out = estimators.labels_saved(random_curve, 100, 0.85, measured_up_to=30)
    assert out["random_labels"] is None and "over 10x the 30 random labels" in out["reason"]


def test_a_curve_flat_within_its_noise_does_not_rise():
    assert estimators.curve_rises([(10, 0.60, 0.02), (20, 0.66, 0.02), (40, 0.72, 0.02)])
    assert not estimators.curve_rises([(10, 0.60, 0.05), (20, 0.63, 0.05), (40, 0.64, 0.05)])
    assert not estimators.curve_rises([(10, 0.70, 0.01), (40, 0.60, 0.01)])  # falling
    assert not estimators.curve_rises([(10, 0.6, 0.0)])


def test_plateau_fires_on_a_plateau_and_not_before():
    rising = [0.60, 0.66, 0.70, 0.73, 0.75, 0.765, 0.775]
    flat = [0.776, 0.774, 0.777, 0.775, 0.776]
    scores = rising + flat
    k, gain = 4, 0.005
    fired = [estimators.plateaued(scores[:i], k, gain) for i in range(1, len(scores) + 1)]
    # the last rising step (+0.010) is followed by 3 flat versions only at index len(rising) + 2
    first = fired.index(True)
    assert first == len(rising) + k - 2
    assert not any(fired[:first]) and all(fired[first:])


def test_plateau_needs_k_versions_and_ignores_unknown_scores():
    assert not estimators.plateaued([0.7, 0.7, 0.7], 4, 0.005)  # too young, even if flat
    assert estimators.plateaued([0.7, 0.7, 0.7, 0.7], 4, 0.005)
    assert not estimators.plateaued([np.nan, 0.7, 0.7, 0.7], 4, 0.005)
    assert not estimators.plateaued([0.5, 0.6, 0.7, 0.8, 0.9], 4, 0.005)


def test_smoothing_keeps_one_lucky_estimate_from_faking_a_plateau():
    noisy = [0.60, 0.80, 0.64, 0.66, 0.70, 0.74, 0.78]  # rising, with one lucky early estimate
    assert estimators.plateaued(noisy, 4, 0.005)  # raw: nothing beats the lucky 0.80
    smoothed = estimators.trailing_mean(noisy, 3)
    assert smoothed[:3] == pytest.approx([0.60, 0.70, 0.68])
    assert not estimators.plateaued(smoothed, 4, 0.005)
    assert np.isnan(estimators.trailing_mean([0.5, np.nan, 0.7], 2)[1])
    assert estimators.trailing_mean([0.5, np.nan, 0.7], 2)[2] == pytest.approx(0.6)


def test_stable_predictions_rule():
    assert not estimators.predictions_stable([0.995, 0.999], 0.99, 3)
    assert estimators.predictions_stable([0.5, 0.995, 0.99, 0.999], 0.99, 3)
    assert not estimators.predictions_stable([0.995, 0.97, 0.999], 0.99, 3)


def _rec(rules=StopRules(), labels=100, accuracy=0.8, f1=0.8, scores=(), kappas=()):
    return estimators.recommend(rules, labels=labels, accuracy=accuracy, macro_f1_score=f1,
                              scores=list(scores), kappas=list(kappas))


def test_recommendation_walks_from_keep_going_to_stop():
    rules = StopRules(plateau_versions=3, plateau_min_gain=0.005, stop_kappa=0.99)
    assert _rec(rules).action == KEEP_GOING
    assert "too few model versions" in _rec(rules).reason
    r = _rec(rules, scores=[0.6, 0.7, 0.8], kappas=[0.8, 0.9])
    assert r.action == KEEP_GOING and "kappa" in r.reason
    r = _rec(rules, scores=[0.6, 0.8, 0.8, 0.8], kappas=[0.8, 0.9, 0.95])
    assert r.action == CONSIDER_STOPPING and "no gain" in r.reason and r.signals["plateau"]
    r = _rec(rules, scores=[0.6, 0.7, 0.8], kappas=[0.995, 0.996, 0.999])
    assert r.action == CONSIDER_STOPPING and "predictions stable" in r.reason
    r = _rec(rules, scores=[0.6, 0.8, 0.8, 0.8], kappas=[0.995, 0.996, 0.999])
    assert r.action == STOP and "stable" in r.reason and "no gain" in r.reason


def test_budget_and_targets_stop():
    assert _rec(StopRules(label_budget=100), labels=99).action == KEEP_GOING
    r = _rec(StopRules(label_budget=100), labels=100)
    assert r.action == STOP and "budget" in r.reason
    r = _rec(StopRules(target_accuracy=0.85), accuracy=0.86)
    assert r.action == STOP and "target accuracy" in r.reason
    assert _rec(StopRules(target_accuracy=0.85), accuracy=0.84).action == KEEP_GOING
    r = _rec(StopRules(target_macro_f1=0.7), f1=0.75)
    assert r.action == STOP and "macro-F1" in r.reason
    assert _rec(StopRules(target_accuracy=0.85), accuracy=None).action == KEEP_GOING


def test_stop_rules_come_from_extra_params(settings):
    from backend import project_options

    opts = project_options.resolve(settings, {"label_budget": 500, "target_accuracy": 0.9, "plateau_versions": 4})
    rules = opts.stop_rules()
    assert (rules.label_budget, rules.target_accuracy, rules.plateau_versions) == (500, 0.9, 4)
    with pytest.raises(project_options.InvalidOptionsError, match="target_accuracy"):
        project_options.resolve(settings, {"target_accuracy": 1.5})
    with pytest.raises(project_options.InvalidOptionsError, match="plateau_versions"):
        project_options.resolve(settings, {"plateau_versions": 1})
