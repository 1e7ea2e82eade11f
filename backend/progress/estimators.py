"""How a project is going and when to stop: pure estimators, no I/O.

The worker (``worker/progress.py``) feeds these functions what it recorded
per model version; the dashboard and ``/metrics`` read the results.  Three
kinds of evidence, each with its own bias:

* **Control-share outcomes** -- a task the random control share put in the
  queue (``backend/selection/strategies.py::with_control_share``) is a uniform sample
  of the pool; the serving model's prediction for it, made before the
  label existed, compared with the label is one unbiased accuracy sample.
* **Cross-validation on the labeled set** -- many samples, but the labeled
  set was chosen by the strategy (uncertain, diverse tasks), so it is
  biased (usually pessimistic) as an estimate of accuracy on the pool.
* **Stabilising predictions** -- agreement of successive models on a fixed
  stop set of tasks; needs no labels at all.

References
----------
.. [1] M. Bloodgood and K. Vijay-Shanker, "A Method for Stopping Active
   Learning Based on Stabilizing Predictions and the Need for User-Adjustable
   Stopping", CoNLL 2009. https://aclanthology.org/W09-1107/
.. [2] R. L. Figueroa et al., "Predicting sample size required for
   classification performance", BMC Med. Inform. Decis. Mak. 12:8, 2012
   (inverse power law learning curves). https://doi.org/10.1186/1472-6947-12-8
.. [3] E. B. Wilson, "Probable inference, the law of succession, and
   statistical inference", JASA 22(158), 1927.
   https://doi.org/10.1080/01621459.1927.10502953
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score, f1_score

KEEP_GOING, CONSIDER_STOPPING, STOP = "keep going", "consider stopping", "stop"
# Prometheus encodes the recommendation as a number.
RECOMMENDATION_LEVEL = {KEEP_GOING: 0, CONSIDER_STOPPING: 1, STOP: 2}


def accuracy_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Accuracy with a Wilson score interval [3]_: ``(estimate, low, high)``.

    Wilson's interval stays inside [0, 1] and keeps its coverage for the
    small counts the control share gives (a few per version), where the
    normal approximation does not.
    """
    if n < 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n, got correct={correct}, n={n}")
    if n == 0:
        return float("nan"), 0.0, 1.0
    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return correct / n, float(ci.low), float(ci.high)


def macro_f1(y_true: Sequence, y_pred: Sequence) -> float:
    """Macro-averaged F1 over the labels present in either list (rare labels count as much as common ones)."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels, y_pred {len(y_pred)}; expected the same number")
    if not len(y_true):
        return float("nan")
    return float(f1_score([str(v) for v in y_true], [str(v) for v in y_pred], average="macro", zero_division=0))


def kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa between two models' predictions on the same tasks (the stop set) [1]_.

    Two identical constant prediction lists agree perfectly: kappa is
    undefined there (0/0), and 1.0 is what "nothing changed" means.
    """
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} and {len(b)} predictions; expected the same tasks in the same order")
    if not len(a):
        return float("nan")
    a, b = [str(v) for v in a], [str(v) for v in b]
    if a == b:
        return 1.0
    value = cohen_kappa_score(a, b)
    return float(value) if np.isfinite(value) else 0.0


# -- learning curves ----------------------------------------------------------

def inverse_power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """``acc(n) = a - b * n**-c``: rises towards the asymptote ``a`` ever more slowly [2]_."""
    return a - b * np.power(n, -c)


@dataclass(frozen=True)
class CurveFit:
    """A fitted learning curve ``acc(n) = a - b * n**-c``."""

    a: float
    b: float
    c: float

    def accuracy(self, n: float | np.ndarray) -> float | np.ndarray:
        return inverse_power_law(np.asarray(n, dtype=float), self.a, self.b, self.c)

    def labels_for(self, accuracy: float) -> float | None:
        """Labels the curve needs to reach ``accuracy``; ``None`` if it never does (at or above ``a``)."""
        if accuracy >= self.a or self.b <= 0:
            return None
        return float((self.b / (self.a - accuracy)) ** (1.0 / self.c))


def fit_learning_curve(
    n: Sequence[float], accuracy: Sequence[float], sigma: Sequence[float] | None = None
) -> CurveFit | None:
    """Fit the inverse power law [2]_ to learning-curve points; ``None`` if it cannot be fitted.

    Parameters
    ----------
    n : sequence of float, shape (m,)
        Labels used (positive).
    accuracy : sequence of float, shape (m,)
        Accuracy measured at each ``n``.
    sigma : sequence of float, shape (m,), optional
        Standard error of each point (weights the fit).

    Needs at least three points at two or more distinct ``n``.  The
    asymptote is bounded to [0, 1] and the exponent to (0, 3], so the fit
    cannot promise an accuracy above 100 %.
    """
    x = np.asarray(n, dtype=float)
    y = np.asarray(accuracy, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"n has {x.size} points, accuracy {y.size}; expected the same number")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    s = None
    if sigma is not None:
        s = np.asarray(sigma, dtype=float)
        ok &= np.isfinite(s)
        s = np.maximum(s[ok], 1e-3)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.unique(x).size < 2:
        return None
    a0 = min(1.0, float(y.max()) + 0.02)
    b0 = max(1e-3, (a0 - float(y.min())) * float(x.min()) ** 0.5)
    try:
        with warnings.catch_warnings():  # a covariance that cannot be estimated does not matter here
            warnings.simplefilter("ignore", OptimizeWarning)
            (a, b, c), _ = curve_fit(
                inverse_power_law, x, y, p0=(a0, b0, 0.5), sigma=s,
                bounds=([0.0, 0.0, 1e-3], [1.0, np.inf, 3.0]), maxfev=20000,
            )
    except (RuntimeError, ValueError):
        return None
    return CurveFit(float(a), float(b), float(c))


def labels_saved(random_curve: CurveFit | None, labels_used: int, accuracy: float,
                 measured_up_to: float | None = None, max_extrapolation: float = 10.0) -> dict:
    """How many labels random selection would have needed for ``accuracy``, read off its fitted curve.

    Returns ``{"random_labels": …, "saved": …, "ratio": …, "reason": …}``;
    ``random_labels`` is ``None`` (with the reason) when the random curve
    never reaches ``accuracy`` (the strategy did better than random
    selection could on the fitted curve), or when reading it off would mean
    extrapolating more than ``max_extrapolation`` times beyond the largest
    measured training size ``measured_up_to``: a power law fitted on a few
    dozen labels says little about thousands.
    """
    none = {"random_labels": None, "saved": None, "ratio": None}
    if random_curve is None or not np.isfinite(accuracy):
        return {**none, "reason": "no random-selection curve yet"}
    needed = random_curve.labels_for(accuracy)
    if needed is None:
        return {**none, "reason": f"the random-selection curve levels off at {random_curve.a:.3f}, "
                                  f"below {accuracy:.3f}"}
    if measured_up_to and needed > max_extrapolation * measured_up_to:
        return {**none, "reason": f"random selection would need over {max_extrapolation:g}x the "
                                  f"{measured_up_to:g} random labels its curve was measured on"}
    return {"random_labels": round(needed, 1), "saved": round(needed - labels_used, 1),
            "ratio": round(needed / labels_used, 3) if labels_used else None, "reason": None}


def curve_rises(points: Sequence[tuple[float, float, float]], z: float = 2.0) -> bool:
    """Whether a measured learning curve ``[(n, accuracy, standard error), …]`` rises beyond its noise.

    The last point must beat the first by ``z`` combined standard errors;
    a curve still flat within its noise (a few random labels, accuracy near
    the majority rate) cannot be inverted meaningfully.
    """
    if len(points) < 2:
        return False
    pts = sorted(points)
    (_, a0, s0), (_, a1, s1) = pts[0], pts[-1]
    return bool(a1 - a0 > z * float(np.hypot(s0, s1)))


# -- stopping -----------------------------------------------------------------

@dataclass(frozen=True)
class StopRules:
    """When to stop (per project, from ``extra_params``; 0 turns a rule off)."""

    label_budget: int = 0
    target_accuracy: float = 0.0
    target_macro_f1: float = 0.0
    target_mae: float = 0.0  # numbers to predict: stop at or below this mean absolute error
    target_entity_f1: float = 0.0  # named entities: stop once the entity-level F1 reaches this
    plateau_versions: int = 5
    plateau_min_gain: float = 0.005
    stop_kappa: float = 0.99
    kappa_window: int = 3


def plateaued(scores: Sequence[float], k: int, min_gain: float) -> bool:
    """The last ``k - 1`` versions did not beat the best score before them by ``min_gain``.

    ``scores`` are per trained version, oldest first (NaN where unknown).
    Fires only with at least ``k`` known scores, so a young project never
    "plateaus".
    """
    s = np.asarray([v for v in scores if v is not None and np.isfinite(v)], dtype=float)
    if k < 2 or s.size < k:
        return False
    before, recent = s[: s.size - k + 1], s[s.size - k + 1:]
    return bool(recent.max() - before.max() < min_gain)


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of each value and the ``window - 1`` known values before it (NaN stays NaN).

    The held-out accuracy moves by a few points from version to version
    by chance; the plateau rule compares smoothed values so that one lucky
    early estimate does not make every later version look like no gain.
    """
    out, known = [], []
    for v in values:
        if v is None or not np.isfinite(v):
            out.append(float("nan"))
            continue
        known.append(float(v))
        out.append(float(np.mean(known[-window:])))
    return out


def predictions_stable(kappas: Sequence[float], threshold: float, window: int) -> bool:
    """Bloodgood & Vijay-Shanker's rule [1]_: mean kappa of the last ``window`` model pairs >= ``threshold``."""
    k = [v for v in kappas if v is not None and np.isfinite(v)]
    return window >= 1 and len(k) >= window and float(np.mean(k[-window:])) >= threshold


@dataclass
class Recommendation:
    action: str
    reason: str
    signals: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def recommend(
    rules: StopRules,
    *,
    labels: int,
    accuracy: float | None,
    macro_f1_score: float | None,
    scores: Sequence[float],
    kappas: Sequence[float],
    mae: float | None = None,
    entity_f1: float | None = None,
) -> Recommendation:
    """One recommendation -- keep going / consider stopping / stop -- with the reason.

    ``stop`` when the label budget or a target score is reached, or when
    predictions are stable *and* the score has plateaued; ``consider
    stopping`` when only one of those two signals is on.  For a number to
    predict, ``mae`` is its error (``target_mae`` reads it) and ``scores``
    its skill per version (higher is better, as accuracy).  For named
    entities, ``entity_f1`` is the headline F1 (``target_entity_f1`` reads
    it) and ``scores`` the F1 per version.
    """
    acc = accuracy if accuracy is not None and np.isfinite(accuracy) else None
    f1 = macro_f1_score if macro_f1_score is not None and np.isfinite(macro_f1_score) else None
    budget = bool(rules.label_budget) and labels >= rules.label_budget
    target_acc = bool(rules.target_accuracy) and acc is not None and acc >= rules.target_accuracy
    target_f1 = bool(rules.target_macro_f1) and f1 is not None and f1 >= rules.target_macro_f1
    mae = mae if mae is not None and np.isfinite(mae) else None
    target_mae = bool(rules.target_mae) and mae is not None and mae <= rules.target_mae
    entity_f1 = entity_f1 if entity_f1 is not None and np.isfinite(entity_f1) else None
    target_entity_f1 = bool(rules.target_entity_f1) and entity_f1 is not None and entity_f1 >= rules.target_entity_f1
    plateau = plateaued(scores, rules.plateau_versions, rules.plateau_min_gain)
    stable = predictions_stable(kappas, rules.stop_kappa, rules.kappa_window)
    known_k = [v for v in kappas if v is not None and np.isfinite(v)]
    recent_k = float(np.mean(known_k[-rules.kappa_window:])) if known_k else None
    signals = {"budget_reached": budget, "target_accuracy_reached": target_acc, "target_macro_f1_reached": target_f1,
               "target_mae_reached": target_mae, "target_entity_f1_reached": target_entity_f1, "plateau": plateau,
               "stable_predictions": stable, "recent_kappa": recent_k}
    if budget:
        return Recommendation(STOP, f"label budget reached: {labels} of {rules.label_budget} labels", signals)
    if target_acc:
        return Recommendation(STOP, f"target accuracy reached: {acc:.3f} >= {rules.target_accuracy}", signals)
    if target_f1:
        return Recommendation(STOP, f"target macro-F1 reached: {f1:.3f} >= {rules.target_macro_f1}", signals)
    if target_mae:
        return Recommendation(STOP, f"target error reached: mean absolute error {mae:.4g} <= {rules.target_mae:g}",
                              signals)
    if target_entity_f1:
        return Recommendation(STOP, f"target entity F1 reached: {entity_f1:.3f} >= {rules.target_entity_f1}", signals)
    plateau_text = (f"no gain over {rules.plateau_min_gain} in the last {rules.plateau_versions} versions")
    kappa_text = (f"kappa between successive models {recent_k:.3f} >= {rules.stop_kappa}" if recent_k is not None
                  else "")
    if plateau and stable:
        return Recommendation(STOP, f"predictions stable ({kappa_text}) and {plateau_text}", signals)
    if stable:
        return Recommendation(CONSIDER_STOPPING, f"predictions stable ({kappa_text}); the score still moves", signals)
    if plateau:
        return Recommendation(CONSIDER_STOPPING, f"{plateau_text}; predictions still change"
                              + (f" (kappa {recent_k:.3f} < {rules.stop_kappa})" if recent_k is not None else ""),
                              signals)
    if not known_k:
        return Recommendation(KEEP_GOING, "too few model versions to judge yet", signals)
    return Recommendation(KEEP_GOING, f"predictions still change (kappa {recent_k:.3f} < {rules.stop_kappa})"
                          " and the score is still rising", signals)
