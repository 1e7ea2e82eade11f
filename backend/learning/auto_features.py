"""``features: "auto"``: the representation chosen from the project's own labels.

Why
---
No representation wins everywhere.  Hashed n-grams beat sentence embeddings
on every text set measured so far, once a few hundred labels are in, yet
embeddings know that "superb" and "excellent" are alike before any label
says so, and a set of pixel tokens (``digits``) means nothing to them.  So a
project that says ``auto`` lets its labels decide: every available
representation is cross-validated with the project's own estimator, and the
best one is used.

The guard against switching on noise
------------------------------------
Every candidate is scored on the *same* folds (repeated stratified k-fold),
so their per-fold accuracies can be compared pairwise.  The project leaves
its current representation only when another one is better by at least
:data:`MIN_GAIN` *and* by a one-sided corrected resampled t-test at
:data:`CONFIDENCE` (Nadeau and Bengio 2003: the variance of the fold
differences is inflated by ``1/J + n_test/n_train``, because overlapping
training sets make folds far from independent, so a plain t-test switches
far too often).  A comparison is rerun only when the labels have grown by
:data:`GROWTH` since the last one, so a project pays for about twenty
comparisons between 30 and 5,000 labels.

Both the worker (``worker/feature_choice.py``, in the low-priority evaluate
job, then read by the next refresh) and the simulator (``al-backend simulate
--features auto``) call :func:`compare`, :func:`choose` and :func:`due`.

References
----------
Nadeau, C. and Bengio, Y. (2003), "Inference for the Generalization Error",
Machine Learning 52, 239-281.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score

from backend.learning import featurizers
from backend.learning.featurizers import Matrix

#: The value of the ``features`` project option (and of ``simulate --features``) that turns this on.
AUTO = "auto"
#: No comparison below this many labels: the default representation serves until then.
MIN_LABELS = 30
#: A comparison is rerun once the labels grew by this share since the last one.
GROWTH = 0.25
#: Smallest mean accuracy gain over the current representation that is worth a switch.
MIN_GAIN = 0.005
#: One-sided confidence of the corrected resampled t-test a switch needs.
CONFIDENCE = 0.9
FOLDS = 5
REPEATS = 3


def candidates(kind: str = "text") -> list[str]:
    """The registered representations of ``kind`` data that can run here (some need an optional package).

    Representations fitted on the pool (numbers) are left out: they are
    the only one of their kind.
    """
    return [name for name in featurizers.for_kind(kind)
            if not featurizers.FEATURIZERS[name].fitted_on_pool and featurizers.get(name).unavailable() is None]


def due(labels: int, last_labels: int | None) -> bool:
    """Whether a comparison is worth running at ``labels`` labels (``last_labels``: the last one's, or None)."""
    if labels < MIN_LABELS:
        return False
    return last_labels is None or labels >= (1 + GROWTH) * last_labels


@dataclass(frozen=True)
class Comparison:
    """The candidates' accuracies on the same folds of one labeled set."""

    labels: int
    fold_accuracy: dict[str, list[float]]
    test_share: float  # n_test / n_train of one fold, for the variance correction

    def mean(self, name: str) -> float:
        return float(np.mean(self.fold_accuracy[name]))

    def gain(self, name: str, over: str) -> tuple[float, float]:
        """Mean paired accuracy gain of ``name`` over ``over``, and its one-sided p-value (corrected t-test)."""
        d = np.asarray(self.fold_accuracy[name]) - np.asarray(self.fold_accuracy[over])
        mean, var, j = float(d.mean()), float(d.var(ddof=1)) if d.size > 1 else 0.0, d.size
        se = np.sqrt((1.0 / j + self.test_share) * var)
        if se == 0.0:
            return mean, 0.0 if mean > 0 else 1.0
        return mean, float(stats.t.sf(mean / se, df=j - 1))


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` decided, as stored with each model version and shown on the dashboard."""

    chosen: str
    previous: str
    labels: int
    accuracy: dict[str, float] = field(default_factory=dict)  # mean CV accuracy per candidate
    reason: str = ""

    @property
    def switched(self) -> bool:
        return self.chosen != self.previous

    def to_dict(self) -> dict:
        return asdict(self)


def compare(rows: Mapping[str, Matrix], y: Sequence[str], estimator: BaseEstimator, *,
            seed: int = 0) -> Comparison | None:
    """Cross-validate clones of ``estimator`` on each candidate's rows of the same labeled tasks.

    ``rows[name]`` holds the labeled tasks in the same order under every
    representation.  ``None`` when the labels cannot be split in two
    stratified folds (a label seen once).
    """
    y_arr = np.asarray(y, dtype=str)
    _, counts = np.unique(y_arr, return_counts=True)
    folds = int(min(FOLDS, counts.min())) if counts.size >= 2 else 0
    if folds < 2:
        return None
    # The same folds for every candidate: their per-fold scores are paired.
    splits = list(RepeatedStratifiedKFold(n_splits=folds, n_repeats=REPEATS, random_state=seed).split(
        np.zeros(len(y_arr)), y_arr))
    accuracy = {name: cross_val_score(estimator, X, y_arr, cv=splits, scoring="accuracy",
                                      error_score="raise").tolist()
                for name, X in rows.items()}
    return Comparison(labels=len(y_arr), fold_accuracy=accuracy, test_share=1.0 / (folds - 1))


def choose(comparison: Comparison, current: str, kind: str = "text") -> Choice:
    """Keep ``current`` unless a candidate beats it by :data:`MIN_GAIN` at :data:`CONFIDENCE`.

    Of several that do, the best, or a cheaper one within :data:`MIN_GAIN`
    of it (the order of ``comparison.fold_accuracy``, which is the
    registry's: n-grams, embeddings, their concatenation).
    """
    means = {name: round(comparison.mean(name), 4) for name in comparison.fold_accuracy}
    base = current if current in comparison.fold_accuracy else featurizers.default_for(kind)
    winners = []
    for name in comparison.fold_accuracy:
        if name == base:
            continue
        gain, p = comparison.gain(name, base)
        if gain >= MIN_GAIN and p <= 1 - CONFIDENCE:
            winners.append((gain, name, p))
    if not winners:
        return Choice(chosen=base, previous=current, labels=comparison.labels, accuracy=means,
                      reason=f"no representation beats {base} by {MIN_GAIN:.1%} at {CONFIDENCE:.0%} confidence")
    # Winners are in registry order: the first within MIN_GAIN of the best is the cheapest such.
    best = max(gain for gain, _, _ in winners)
    gain, name, p = next(w for w in winners if w[0] >= best - MIN_GAIN)
    return Choice(chosen=name, previous=current, labels=comparison.labels, accuracy=means,
                  reason=f"{name} beats {base} by {gain:+.1%} accuracy (one-sided p = {p:.3f})")


def read_choice(raw: object) -> Choice | None:
    """A :class:`Choice` from a stored dict (Redis is shared: a value that does not fit is no choice)."""
    chosen = raw.get("chosen") if isinstance(raw, dict) else None
    if not isinstance(chosen, str) or chosen not in featurizers.FEATURIZERS:
        return None
    try:
        choice = Choice(chosen=raw["chosen"], previous=str(raw.get("previous", "")), labels=int(raw.get("labels", 0)),
                        accuracy={str(k): float(v) for k, v in dict(raw.get("accuracy") or {}).items()},
                        reason=str(raw.get("reason", "")))
    except (TypeError, ValueError):
        return None
    if choice.labels < 0 or not all(0.0 <= a <= 1.0 for a in choice.accuracy.values()):  # NaN fails too
        return None
    return choice
