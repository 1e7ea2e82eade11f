"""Several featurizers side by side: e.g. hashed n-grams ⊕ sentence embeddings.

Each part's rows are unit vectors; part ``i`` is scaled by
``w_i / sqrt(sum w^2)``, so a row stays a unit vector and the dot product of
two rows is the weighted mean of the parts' cosines.  N-grams catch exact
wording, embeddings catch meaning; the linear model weighs both.  With any
sparse part the result is CSR (a dense part of 256 columns adds 256 stored
values per row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from backend.learning.featurizers.base import Featurizer, FeaturizerError, Matrix


@dataclass(frozen=True)
class ConcatFeaturizer(Featurizer):
    """The columns of ``parts``, each scaled by its weight."""

    name = "concat"

    parts: tuple[Featurizer, ...] = ()
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.parts) < 2:
            raise FeaturizerError(f"concat needs at least two parts, got {len(self.parts)}")
        if len(self.weights) != len(self.parts) or any(not w > 0 for w in self.weights):
            raise FeaturizerError(f"concat needs one positive weight per part, got {list(self.weights)}")

    @classmethod
    def default(cls) -> ConcatFeaturizer:
        """Hashed n-grams ⊕ embeddings, equal weights."""
        from backend.learning.featurizers.embeddings import EmbeddingFeaturizer
        from backend.learning.featurizers.ngrams import NgramFeaturizer

        return cls(parts=(NgramFeaturizer(), EmbeddingFeaturizer()), weights=(1.0, 1.0))

    @property
    def sparse(self) -> bool:  # type: ignore[override]
        return any(p.sparse for p in self.parts)

    @property
    def n_features(self) -> int:
        return sum(p.n_features for p in self.parts)

    @property
    def key(self) -> str:
        return "cat-" + "-".join(f"{p.key}x{w:g}" for p, w in zip(self.parts, self.weights)).replace(".", "p")

    def _scales(self) -> np.ndarray:
        w = np.asarray(self.weights, dtype=np.float64)
        return w / np.sqrt(np.sum(w**2))

    def params(self) -> dict:
        return {"parts": [p.to_dict() for p in self.parts], "weights": list(self.weights)}

    @classmethod
    def from_params(cls, params: dict) -> ConcatFeaturizer:
        from backend.learning.featurizers import from_dict

        if "parts" not in params:
            return cls.default()
        try:
            parts = tuple(from_dict(p) for p in params["parts"])
            weights = tuple(float(w) for w in params.get("weights", [1.0] * len(parts)))
        except (TypeError, ValueError, AttributeError) as exc:
            raise FeaturizerError(f"bad concat parameters {params}: {exc}") from None
        return cls(parts=parts, weights=weights)

    def unavailable(self) -> str | None:
        return next((why for why in (p.unavailable() for p in self.parts) if why), None)

    def warm_up(self) -> None:
        for p in self.parts:
            p.warm_up()

    def transform(self, texts: list[str]) -> Matrix:
        blocks = [p.transform(texts) * np.float32(s) for p, s in zip(self.parts, self._scales())]
        if self.sparse:
            return sp.hstack([sp.csr_matrix(b) for b in blocks], format="csr", dtype=np.float32)
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)
