"""The classifier behind one ``<Choices>`` control, and its safe storage format.

A linear probabilistic model over the project's features (hashed n-grams,
sparse, by default; dense embeddings work alike): it trains in well under a
second on thousands of labels, predicts a task in microseconds, and its
probabilities are what the selection strategies need.  Models are stored as
plain numeric arrays (``.npz`` loaded with ``allow_pickle=False``), never as
pickles, so whoever can write to Redis cannot make a serving process run code.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted


def compact_columns(X: sp.spmatrix | np.ndarray) -> tuple[sp.csr_matrix | np.ndarray, np.ndarray]:
    """Keep only the hashed columns the rows use; returns the matrix and their indices.

    An L2-regularised logistic regression gives zero weight to a feature no
    training row has, so fitting on the used columns (tens of thousands
    instead of 2^18) is the same model, found several times faster: L-BFGS's
    own work grows with the number of weights.  Dense rows (embeddings) use
    every column and are returned as they are.
    """
    if not sp.issparse(X):
        X = np.asarray(X)
        return X, np.arange(X.shape[1])
    X = sp.csr_matrix(X)
    cols, remapped = np.unique(X.indices, return_inverse=True)
    Xc = sp.csr_matrix((X.data, remapped.astype(np.int32), X.indptr), shape=(X.shape[0], len(cols)))
    return Xc, cols


def _warm(lr: LogisticRegression, init: "ChoicesClassifier | None", n_features: int, classes: Sequence,
          cols: np.ndarray, *, multiple: bool) -> LogisticRegression:
    """``lr`` set to start from ``init``'s weights on the columns ``cols``, when ``init`` fits this problem.

    Single choice: ``init`` must know exactly ``classes`` (a new answer
    changes the problem's shape).  Multiple choice: ``classes`` is the one
    label of this binary fit, which ``init`` must know.  Otherwise ``lr``
    starts from zero, as without ``init``.
    """
    if init is None or not hasattr(init, "coef_") or init.multiple != multiple or init.coef_.shape[1] != n_features:
        return lr
    known = list(init.classes_)
    if multiple:
        if classes[0] not in known:
            return lr
        rows = [known.index(classes[0])]
    else:
        if known != [str(c) for c in classes]:
            return lr
        rows = list(range(init.coef_.shape[0]))
    lr.set_params(warm_start=True)
    lr.coef_ = init.coef_[rows][:, cols].astype(np.float64)
    lr.intercept_ = init.intercept_[rows].astype(np.float64)
    return lr


def sparse_weights(coef: np.ndarray) -> dict[str, np.ndarray]:
    """A weight matrix as the arrays a stored model keeps: its shape and its nonzero entries.

    Over hashed n-grams most of a model's 2^18 columns are zero, so a
    stored model holds a few thousand weights, not a quarter of a million.
    """
    rows, cols = np.nonzero(coef)
    return {"shape": np.asarray(coef.shape, dtype=np.int64), "rows": rows.astype(np.int32),
            "cols": cols.astype(np.int32), "vals": coef[rows, cols].astype(np.float32)}


CLASS_WEIGHTS = (None, "balanced")
#: The class weights of a single-choice control's model, in the worker and the simulator: balanced
#: weights helped on ten-class digits (+1.5 AULC points in the loop) and were neutral on both text sets
#: (docs/label-efficiency.md, 2026-12-03).  Multiple choice keeps none: not measured there.
SINGLE_CHOICE_CLASS_WEIGHT = "balanced"


class NotEnoughLabelsError(ValueError):
    """Training needs at least two different answers for a control."""


class ChoicesClassifier(ClassifierMixin, BaseEstimator):
    """Linear model for one ``<Choices>`` control.

    Parameters
    ----------
    multiple : bool
        ``choice="multiple"``: one independent binary model per label, so a
        task may get several labels (or none).
    C : float
        Inverse regularisation strength of the logistic regression.
    class_weight : None or "balanced"
        ``"balanced"`` weighs each label inversely to how often it was
        given, so a rare label is not drowned out while labels are few
        (measured in ``docs/label-efficiency.md``; the total weight stays the
        number of labels, so ``C`` means the same).

    Attributes
    ----------
    classes_ : ndarray of str, shape (K,)
        The labels the model can predict (those seen in training).
    coef_ : ndarray of float32, shape (K or 1, n_features)
    intercept_ : ndarray of float32, shape (K or 1,)
    """

    def __init__(self, *, multiple: bool = False, C: float = 10.0, class_weight: str | None = None) -> None:
        self.multiple = multiple
        self.C = C
        self.class_weight = class_weight

    # -- training ---------------------------------------------------------
    def _logistic(self) -> LogisticRegression:
        """The one logistic regression behind every label (cross-validation clones this whole estimator)."""
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        return LogisticRegression(C=self.C, max_iter=1000, class_weight=self.class_weight)

    def fit(self, X: sp.spmatrix, y: Sequence, *, init: "ChoicesClassifier | None" = None) -> "ChoicesClassifier":
        """Fit on features ``X`` and answers ``y``.

        ``y[i]`` is a label (single choice) or a collection of labels
        (multiple choice).  ``init``, a model fitted before on the same
        features (the previous version's), is where L-BFGS starts: the
        objective is strictly convex, so the optimum is the same one, and
        a few new labels move it little, so it is reached in a fraction of
        the iterations (measured in ``docs/benchmarks.md``).
        """
        if X.shape[0] != len(y):
            raise ValueError(f"X has {X.shape[0]} rows but y has {len(y)} answers; expected the same number")
        if X.shape[0] == 0:
            raise NotEnoughLabelsError("no labeled tasks to train on")
        if self.multiple:
            return self._fit_multilabel(X, [set(v) for v in y], init)
        labels = np.asarray([str(v) for v in y])
        classes = np.unique(labels)
        if len(classes) < 2:
            raise NotEnoughLabelsError(
                f"all {len(labels)} labeled tasks have the same answer ({classes[0]!r}); need two different ones"
            )
        Xc, cols = compact_columns(X)
        lr = _warm(self._logistic(), init, X.shape[1], classes, cols, multiple=False)
        lr.fit(Xc, labels)
        self.classes_ = lr.classes_.astype(str)
        self.coef_ = np.zeros((lr.coef_.shape[0], X.shape[1]), dtype=np.float32)
        self.coef_[:, cols] = lr.coef_
        self.intercept_ = lr.intercept_.astype(np.float32)
        return self

    def _fit_multilabel(self, X: sp.spmatrix, y: list[set], init: "ChoicesClassifier | None" = None
                        ) -> "ChoicesClassifier":
        classes = sorted({label for labels in y for label in labels})
        if not classes:
            raise NotEnoughLabelsError("no label was ever chosen; need at least one")
        coef = np.zeros((len(classes), X.shape[1]), dtype=np.float32)
        intercept = np.zeros(len(classes), dtype=np.float32)
        Xc, cols = compact_columns(X)
        for k, label in enumerate(classes):
            target = np.fromiter((label in labels for labels in y), dtype=bool, count=len(y))
            rate = (target.sum() + 0.5) / (len(y) + 1.0)
            if target.all() or not target.any():
                # One-sided evidence: a constant, smoothed rate (no weights).
                intercept[k] = np.log(rate / (1 - rate))
                continue
            lr = _warm(self._logistic(), init, X.shape[1], [label], cols, multiple=True)
            lr.fit(Xc, target)
            coef[k, cols], intercept[k] = lr.coef_[0], lr.intercept_[0]
        self.classes_ = np.asarray(classes, dtype=str)
        self.coef_, self.intercept_ = coef, intercept
        return self

    # -- prediction -------------------------------------------------------
    def decision_function(self, X: sp.spmatrix) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def predict_proba(self, X: sp.spmatrix) -> np.ndarray:
        """Probabilities, shape ``(n, K)`` over ``classes_``.

        Single choice: rows sum to 1.  Multiple choice: each column is the
        independent probability that the label applies.
        """
        z = self.decision_function(X)
        if self.multiple:
            return 1.0 / (1.0 + np.exp(-z))
        if z.shape[1] == 1:  # binary: sklearn keeps one row of weights
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1.0 - p1, p1])
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: sp.spmatrix) -> list:
        """The most likely label (single) or the labels with p >= 0.5 (multiple)."""
        proba = self.predict_proba(X)
        if self.multiple:
            return [list(self.classes_[row >= 0.5]) for row in proba]
        return list(self.classes_[proba.argmax(axis=1)])

    # -- storage ----------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Arrays only: the nonzero weights (sparse), classes and flags."""
        check_is_fitted(self, "coef_")
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            **sparse_weights(self.coef_),
            intercept=self.intercept_,
            classes=self.classes_,
            multiple=np.asarray(self.multiple),
            C=np.asarray(self.C, dtype=np.float64),
            class_weight=np.asarray(self.class_weight or ""),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "ChoicesClassifier":
        """Load without unpickling anything (``allow_pickle=False``).

        Raises ``ValueError`` for anything that is not a model written by
        :meth:`to_bytes` (including arrays that would need unpickling).
        """
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                # Models stored before 2026-12-03 have no class_weight: unweighted.
                weight = (str(z["class_weight"]) or None) if "class_weight" in z.files else None
                if weight not in CLASS_WEIGHTS:
                    raise ValueError(f"not a stored model: unknown class_weight {weight!r}")
                model = cls(multiple=bool(z["multiple"]), C=float(z["C"]), class_weight=weight)
                coef = np.zeros(tuple(z["shape"]), dtype=np.float32)
                coef[z["rows"], z["cols"]] = z["vals"]
                model.coef_ = coef
                model.intercept_ = z["intercept"].astype(np.float32)
                model.classes_ = z["classes"].astype(str)
        except (KeyError, OSError, IndexError) as exc:
            raise ValueError(f"not a stored model: {exc}") from None
        return model
