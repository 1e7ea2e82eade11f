"""The regressor behind one ``<Number>`` or ``<Rating>`` control, and its safe storage format.

Regression's counterpart of :class:`backend.learning.model.ChoicesClassifier`:
a committee of ridge regressions, each fitted on a bootstrap resample of the
labeled tasks.  The committee's mean is the prediction; the spread of its
members (their standard deviation) is how unsure the model is about a task,
the quantity the default strategy ranks by (for choices it is the margin).

Why a bootstrap committee: a single least-squares fit has no notion of its
own uncertainty at a point, but members trained on different resamples of
the labels agree where the labels pin the answer down and disagree where
they do not (far from the labeled data, or where labels conflict).  Asking
for the task the committee disagrees on most is query-by-committee for
regression (RayChaudhuri & Hamey 1995; Burbidge, Rowland & King 2007).
Ridge members keep it as cheap as the classifier: they train in well under
a second on thousands of labels, over the same sparse hashed n-grams or
dense embeddings.

Models are stored as plain numeric arrays (``.npz`` loaded with
``allow_pickle=False``), never as pickles, like the classifier.
"""

from __future__ import annotations

import io
import numbers
import zipfile
import zlib
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge
from sklearn.utils.validation import check_is_fitted

from backend.learning.model import NotEnoughLabelsError, compact_columns, sparse_weights

#: Written into every stored model, so a classifier's bytes (or anything else) are refused.
KIND = "committee_regressor"
#: Bounds on what a stored model may declare, so a forged header cannot make ``from_bytes`` allocate terabytes.
MAX_MEMBERS = 1024
MAX_FEATURES = 2**26
#: The conjugate-gradient tolerance of the sparse ridge solver (scikit-learn's default is 1e-4): tight enough
#: that sparse and dense inputs give the same model, still a few dozen iterations.
RIDGE_TOL = 1e-8


class CommitteeRegressor(RegressorMixin, BaseEstimator):
    """A bootstrap committee of ridge regressions for one numeric control.

    Parameters
    ----------
    n_members : int
        How many ridge regressions, each on its own bootstrap resample of
        the labeled rows (at least 2: one member has no spread).
    alpha : float
        Ridge regularisation strength, applied to the *standardised*
        targets (``(y - mean) / std``), so it means the same whether the
        numbers are ratings from 1 to 5 or prices in the thousands.
    seed : int
        Seeds the bootstrap resamples: the same labels give the same model.

    Attributes
    ----------
    coef_ : ndarray of float32, shape (n_members, n_features)
        Each member's weights, in standardised target units.
    intercept_ : ndarray of float64, shape (n_members,)
    y_mean_, y_scale_ : float
        The mean and standard deviation of the training targets: a member's
        prediction is ``y_mean_ + y_scale_ * (X @ coef_[k] + intercept_[k])``.
        ``y_scale_`` is also the model's yardstick for its own spread
        (``backend/labelstudio/tasktypes/number.py``).
    n_features_in_ : int

    Notes
    -----
    Training needs at least two labeled tasks with two *different* numbers,
    mirroring the classifier's "two different answers": with a single
    distinct value the targets have no spread to standardise by, every
    member (every resample) would predict that constant, and their spread
    would be zero on every task, so there would be no uncertainty to rank
    by and nothing learned from the features.  A constant is what the
    annotators see without a model anyway.

    Sparse input (hashed n-grams, 2^18 columns) is fitted on the columns the
    labeled rows use (:func:`~backend.learning.model.compact_columns`): a
    ridge penalty gives a column no row uses zero weight, so the model is
    the same, found faster.  The bootstrap is drawn as per-row counts
    (``sample_weight``), which is the same fit as repeating rows.

    References
    ----------
    .. [1] T. RayChaudhuri and L. G. C. Hamey, "Minimisation of data collection
       by active learning", Proc. IEEE ICNN 1995, vol. 3, pp. 1338-1341.
    .. [2] R. Burbidge, J. J. Rowland and R. D. King, "Active learning for
       regression based on query by committee", IDEAL 2007, LNCS 4881,
       pp. 209-218. https://doi.org/10.1007/978-3-540-77226-2_22

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(20, dtype=np.float32).reshape(10, 2)
    >>> model = CommitteeRegressor(n_members=4).fit(X, X[:, 0] * 2.0)
    >>> model.predict(X[:2]).shape, model.predict_std(X[:2]).shape
    ((2,), (2,))
    """

    def __init__(self, *, n_members: int = 8, alpha: float = 1.0, seed: int = 0) -> None:
        self.n_members = n_members
        self.alpha = alpha
        self.seed = seed

    # -- training ---------------------------------------------------------
    def _check_params(self) -> None:
        if isinstance(self.n_members, bool) or not isinstance(self.n_members, numbers.Integral) \
                or not 2 <= self.n_members <= MAX_MEMBERS:
            raise ValueError(f"n_members must be an integer from 2 to {MAX_MEMBERS}, got {self.n_members!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real) \
                or not np.isfinite(self.alpha) or self.alpha <= 0:
            raise ValueError(f"alpha must be a positive finite number, got {self.alpha!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    def fit(self, X: sp.spmatrix | np.ndarray, y: Sequence[float], *, init: Any = None) -> "CommitteeRegressor":
        """Fit the committee on features ``X`` and numbers ``y``.

        Parameters
        ----------
        X : sparse matrix or ndarray, shape (n, n_features)
        y : sequence of float, shape (n,)
            Finite numbers.
        init : ignored
            Accepted for the classifier's call shape (its warm start); each
            ridge is solved directly, so there is nothing to start from.

        Raises
        ------
        ValueError
            ``y`` is not one finite number per row of ``X``.
        NotEnoughLabelsError
            Fewer than two labeled rows, or all with the same number.
        """
        self._check_params()
        try:
            target = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("y must be numbers, one per labeled task") from None
        if target.ndim != 1:
            raise ValueError(f"y must be one number per task (1-D), got an array of shape {target.shape}")
        if not sp.issparse(X):
            X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D feature matrix (one row per task), got {X.ndim} dimension(s)")
        n = X.shape[0]
        if n != len(target):
            raise ValueError(f"X has {n} rows but y has {len(target)} numbers; expected the same number")
        if not np.isfinite(target).all():
            bad = int(np.flatnonzero(~np.isfinite(target))[0])
            raise ValueError(f"y must be finite numbers; y[{bad}] is {target[bad]}")
        if n < 2:
            raise NotEnoughLabelsError(f"{n} labeled task(s); need at least two with different numbers")
        values = np.unique(target)
        if len(values) < 2:
            raise NotEnoughLabelsError(
                f"all {n} labeled tasks have the same number ({values[0]:g}); need two different ones"
            )
        Xc, cols = compact_columns(X)
        Xc = Xc.astype(np.float64) if sp.issparse(Xc) else np.asarray(Xc, dtype=np.float64)
        y_mean, y_scale = float(target.mean()), float(target.std())
        z = (target - y_mean) / y_scale
        rng = np.random.default_rng(self.seed)
        coef = np.zeros((self.n_members, X.shape[1]), dtype=np.float32)
        intercept = np.zeros(self.n_members, dtype=np.float64)
        for k in range(self.n_members):
            counts = np.bincount(rng.integers(0, n, size=n), minlength=n)
            rows = np.flatnonzero(counts)
            ridge = Ridge(alpha=float(self.alpha), tol=RIDGE_TOL)
            ridge.fit(Xc[rows], z[rows], sample_weight=counts[rows].astype(np.float64))
            coef[k, cols] = ridge.coef_
            intercept[k] = float(ridge.intercept_)
        self.coef_, self.intercept_ = coef, intercept
        self.y_mean_, self.y_scale_ = y_mean, y_scale
        self.n_features_in_ = X.shape[1]
        return self

    # -- prediction -------------------------------------------------------
    def predict_members(self, X: sp.spmatrix | np.ndarray) -> np.ndarray:
        """Each member's prediction, shape ``(n, n_members)``, in the targets' units."""
        check_is_fitted(self, "coef_")
        if getattr(X, "ndim", 2) != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1] if getattr(X, 'ndim', 0) == 2 else 'no'} feature columns but the model was "
                f"fitted on {self.n_features_in_}; featurize the tasks the way the training tasks were"
            )
        z = np.asarray(X @ self.coef_.T, dtype=np.float64) + self.intercept_
        return self.y_mean_ + self.y_scale_ * z

    def predict(self, X: sp.spmatrix | np.ndarray) -> np.ndarray:
        """The committee's mean prediction, shape ``(n,)``."""
        return self.predict_members(X).mean(axis=1)

    def predict_std(self, X: sp.spmatrix | np.ndarray) -> np.ndarray:
        """The standard deviation across members, shape ``(n,)``: the committee's disagreement."""
        return self.predict_members(X).std(axis=1)

    # -- storage ----------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Arrays only: the nonzero weights (sparse), intercepts, target scale and parameters."""
        check_is_fitted(self, "coef_")
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            kind=np.asarray(KIND),
            **sparse_weights(self.coef_),
            intercept=self.intercept_.astype(np.float64),
            y_mean=np.asarray(self.y_mean_, dtype=np.float64),
            y_scale=np.asarray(self.y_scale_, dtype=np.float64),
            n_members=np.asarray(self.n_members, dtype=np.int64),
            alpha=np.asarray(self.alpha, dtype=np.float64),
            seed=np.asarray(self.seed, dtype=np.int64),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CommitteeRegressor":
        """Load without unpickling anything (``allow_pickle=False``).

        Raises ``ValueError`` for anything that is not a model written by
        :meth:`to_bytes`: other bytes, truncated bytes, a missing array,
        arrays that would need unpickling, or shapes that do not fit
        together.
        """
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise ValueError(f"not a stored regressor: expected bytes, got {type(raw).__name__}")
        try:
            loaded = np.load(io.BytesIO(bytes(raw)), allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
                raise ValueError("a single array, not an .npz archive")
            with loaded as z:
                arrays = {name: z[name] for name in z.files}
        # ValueError: numpy's own refusals ("Object arrays cannot be loaded when allow_pickle=False", ...).
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"not a stored regressor: {exc}") from None
        return cls._from_arrays(arrays)

    @classmethod
    def _from_arrays(cls, a: dict[str, np.ndarray]) -> "CommitteeRegressor":
        missing = {"kind", "shape", "rows", "cols", "vals", "intercept", "y_mean", "y_scale", "n_members",
                   "alpha", "seed"} - set(a)
        if missing:
            raise ValueError(f"not a stored regressor: missing {', '.join(sorted(missing))}")
        if a["kind"].shape != () or a["kind"].dtype.kind != "U" or str(a["kind"]) != KIND:
            raise ValueError(f"not a stored regressor: kind is {a['kind']!r}, expected {KIND!r}")
        for name in ("shape", "rows", "cols", "n_members", "seed"):
            if a[name].dtype.kind not in "iu":
                raise ValueError(f"not a stored regressor: {name} must be integers, got {a[name].dtype}")
        for name in ("vals", "intercept", "y_mean", "y_scale", "alpha"):
            if a[name].dtype.kind != "f" or not np.isfinite(a[name]).all():
                raise ValueError(f"not a stored regressor: {name} must be finite floats")
        shape = a["shape"]
        if shape.shape != (2,) or not (2 <= shape[0] <= MAX_MEMBERS and 1 <= shape[1] <= MAX_FEATURES):
            raise ValueError(f"not a stored regressor: coefficient shape {shape.tolist()} is not "
                             f"(2..{MAX_MEMBERS} members, 1..{MAX_FEATURES} features)")
        n_members, n_features = int(shape[0]), int(shape[1])
        rows, cols, vals = a["rows"], a["cols"], a["vals"]
        if not (rows.ndim == cols.ndim == vals.ndim == 1 and len(rows) == len(cols) == len(vals)):
            raise ValueError("not a stored regressor: rows, cols and vals must be 1-D arrays of one length")
        if len(rows) and (rows.min() < 0 or rows.max() >= n_members or cols.min() < 0 or cols.max() >= n_features):
            raise ValueError("not a stored regressor: a weight lies outside the coefficient shape")
        if a["intercept"].shape != (n_members,):
            raise ValueError(f"not a stored regressor: intercept has shape {a['intercept'].shape}, "
                             f"expected ({n_members},)")
        for name in ("y_mean", "y_scale", "n_members", "alpha", "seed"):
            if a[name].shape != ():
                raise ValueError(f"not a stored regressor: {name} must be a scalar, got shape {a[name].shape}")
        if int(a["n_members"]) != n_members or float(a["y_scale"]) <= 0:
            raise ValueError("not a stored regressor: n_members or y_scale does not fit the weights")
        model = cls(n_members=n_members, alpha=float(a["alpha"]), seed=int(a["seed"]))
        try:
            model._check_params()
        except ValueError as exc:
            raise ValueError(f"not a stored regressor: {exc}") from None
        coef = np.zeros((n_members, n_features), dtype=np.float32)
        coef[rows, cols] = vals
        model.coef_ = coef
        model.intercept_ = a["intercept"].astype(np.float64)
        model.y_mean_, model.y_scale_ = float(a["y_mean"]), float(a["y_scale"])
        model.n_features_in_ = n_features
        return model
