"""Records of named numbers (a ``<Table>`` row, a list of measurements) as standardised rows.

Why fitted
----------
Fields of a record come in their own units (an age in years beside an
income in dollars), so they are standardised, each with the mean and
standard deviation of the pool, before a linear model or a cosine sees them.
Those statistics are the featurizer's parameters: :meth:`NumberFeaturizer.fit`
learns them from a sample of the pool, they are stored with every model
version (``to_dict``), and ``key`` names them, so rows of two fits never mix
in the worker's cache.

Each row is
* the standardised value of every field, clipped to ±:data:`CLIP` (a typo of
  1e9 does not swamp the rest), a missing value at the mean (0);
* a 0/1 indicator per field that was ever missing in the fit sample
  (missingness often means something);
* a constant :data:`BIAS` column, then the row scaled to unit length, as every
  featurizer's rows are.  The constant keeps the direction of a row
  informative about its size: without it, a record and its double would be
  the same unit vector.

Fields not seen at fit time are ignored until the next fit.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from backend.learning.featurizers.base import Featurizer, FeaturizerError, normalise_rows

#: Standardised values are clipped to this many standard deviations.
CLIP = 10.0
#: The constant column, in standard deviations (about a typical field's spread).
BIAS = 1.0
#: Most fields a record may have (more: the fit keeps the first ones seen).
MAX_COLUMNS = 2_000


@dataclass(frozen=True)
class NumberFeaturizer(Featurizer):
    """Standardised numbers, missing-value indicators and a constant, L2-normalised (dense)."""

    name = "numbers"
    sparse = False
    input = "numbers"
    fitted_on_pool = True
    # Distinct records of a few standardised fields are often close (two similar tumours): only near-copies count.
    duplicate_cosine = 0.99

    columns: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    #: Columns (indices into ``columns``) that get a missing-value indicator.
    missing: tuple[int, ...] = ()
    #: Records the statistics were computed from (the worker refits when the pool has grown well past it).
    fitted_rows: int = 0

    def __post_init__(self) -> None:
        if not (len(self.columns) == len(self.mean) == len(self.scale)):
            raise FeaturizerError("numbers: columns, mean and scale must have the same length")
        if len(set(self.columns)) != len(self.columns) or len(self.columns) > MAX_COLUMNS:
            raise FeaturizerError(f"numbers: columns must be distinct, at most {MAX_COLUMNS}")
        if any(not (math.isfinite(s) and s > 0) for s in self.scale) or any(not math.isfinite(m) for m in self.mean):
            raise FeaturizerError("numbers: means must be finite and scales positive")
        if any(not 0 <= i < len(self.columns) for i in self.missing):
            raise FeaturizerError("numbers: missing-value indicators must name columns")

    @property
    def n_features(self) -> int:
        return len(self.columns) + len(self.missing) + 1

    @property
    def key(self) -> str:
        digest = hashlib.sha1(repr(self.params()).encode()).hexdigest()[:10]
        return f"num{len(self.columns)}-{digest}"

    def params(self) -> dict:
        return {"columns": list(self.columns), "mean": list(self.mean), "scale": list(self.scale),
                "missing": list(self.missing), "fitted_rows": self.fitted_rows}

    @classmethod
    def from_params(cls, params: dict) -> NumberFeaturizer:
        try:
            return cls(columns=tuple(str(c) for c in params.get("columns", ())),
                       mean=tuple(float(m) for m in params.get("mean", ())),
                       scale=tuple(float(s) for s in params.get("scale", ())),
                       missing=tuple(int(i) for i in params.get("missing", ())),
                       fitted_rows=int(params.get("fitted_rows", 0)))
        except (TypeError, ValueError) as exc:
            raise FeaturizerError(f"bad numbers parameters: {exc}") from None

    def _values(self, records: list[dict[str, float]], columns: tuple[str, ...]) -> np.ndarray:
        X = np.full((len(records), len(columns)), np.nan)
        for i, rec in enumerate(records):
            X[i] = [rec.get(c, math.nan) for c in columns]
        return X

    def fit(self, contents: list[dict[str, float]]) -> NumberFeaturizer:
        """Columns in order of first appearance, with their mean and spread over ``contents``."""
        seen: dict[str, None] = {}
        for rec in contents:
            for c, v in rec.items():
                if not math.isnan(v) and len(seen) < MAX_COLUMNS:
                    seen.setdefault(c, None)
        columns = tuple(seen)
        X = self._values(contents, columns)
        present = ~np.isnan(X)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(X, axis=0) if len(contents) else np.zeros(len(columns))
            std = np.nanstd(X, axis=0) if len(contents) else np.ones(len(columns))
        scale = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        missing = tuple(int(i) for i in np.flatnonzero(~present.all(axis=0)))
        return NumberFeaturizer(columns=columns, mean=tuple(np.nan_to_num(mean).tolist()), scale=tuple(scale.tolist()),
                                missing=missing, fitted_rows=len(contents))

    def transform(self, texts: list[dict[str, float]]) -> np.ndarray:
        X = self._values(texts, self.columns)
        absent = np.isnan(X)
        Z = np.clip((X - np.asarray(self.mean)) / np.asarray(self.scale), -CLIP, CLIP) if self.columns else X
        Z[absent] = 0.0
        parts = [Z, absent[:, list(self.missing)].astype(np.float64), np.full((len(texts), 1), BIAS)]
        return np.ascontiguousarray(normalise_rows(np.hstack(parts).astype(np.float32)))
