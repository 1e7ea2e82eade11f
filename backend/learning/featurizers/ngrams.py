"""Hashed word and character n-grams: the default representation.

Hashing is stateless: the same text gives the same vector in every process,
for every model version, forever.  So features can be computed once per task
and cached (the worker keeps the pool's rows in Redis), and ``/predict`` can
compute them for a task it has never seen without loading any vocabulary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from backend.learning import ngram_hash
from backend.learning.featurizers.base import Featurizer, FeaturizerError

# Which hashing implementation a spec means.  "sklearn" is the original
# (scikit-learn's HashingVectorizer): models stored before "ngram-v2" keep
# being served with it until the worker retrains them.  "ngram-v2" hashes the
# same n-grams with vectorised numpy (5x faster on 1,000 texts; see
# docs/benchmarks.md), so the hash values, and therefore the columns, differ.
HASHERS = ("sklearn", "ngram-v2")


@dataclass(frozen=True)
class NgramFeaturizer(Featurizer):
    """L2-normalised hashed n-gram rows (float32 CSR).

    Word and character n-grams share one hashed space; the character part
    makes the model robust to typos and inflections on short texts.  Counts
    are sublinear (``log1p``).
    """

    name = "ngrams"
    sparse = True

    n_features: int = 2**18
    word_ngrams: tuple[int, int] = (1, 2)
    # Character 4-grams within words: +0.8 to +1.6 accuracy points over words
    # alone on real review/tweet data at 1,000 labels, at a third of the cost
    # of 3-4-grams (see docs/benchmarks.md, "Feature choice").
    char_ngrams: tuple[int, int] | None = (4, 4)
    hasher: str = "ngram-v2"

    @property
    def key(self) -> str:
        char = "none" if self.char_ngrams is None else f"{self.char_ngrams[0]}{self.char_ngrams[1]}"
        suffix = "" if self.hasher == "sklearn" else "v2"  # old caches keep their keys
        return f"h{self.n_features.bit_length() - 1}w{self.word_ngrams[0]}{self.word_ngrams[1]}c{char}{suffix}"

    def params(self) -> dict:
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict) -> NgramFeaturizer:
        char = params.get("char_ngrams")
        hasher = params.get("hasher", "sklearn")  # specs stored before the hasher was named
        if hasher not in HASHERS:
            raise FeaturizerError(f"unknown feature hasher {hasher!r}; expected one of {', '.join(HASHERS)}")
        try:
            return cls(
                n_features=int(params.get("n_features", cls.n_features)),
                word_ngrams=tuple(params.get("word_ngrams", cls.word_ngrams)),
                char_ngrams=None if char is None else tuple(char),
                hasher=hasher,
            )
        except (TypeError, ValueError) as exc:
            raise FeaturizerError(f"bad n-gram parameters {params}: {exc}") from None

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        if not texts:
            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        if self.hasher == "sklearn":
            return _sklearn_transform(self, texts)
        return ngram_hash.transform(texts, self.n_features, word_ngrams=self.word_ngrams, char_ngrams=self.char_ngrams)


def _sklearn_transform(spec: NgramFeaturizer, texts: list[str]) -> sp.csr_matrix:
    common = dict(n_features=spec.n_features, alternate_sign=False, norm=None, dtype=np.float32)
    X = HashingVectorizer(ngram_range=spec.word_ngrams, **common).transform(texts)
    if spec.char_ngrams:
        X = X + HashingVectorizer(analyzer="char_wb", ngram_range=spec.char_ngrams, **common).transform(texts)
    X.data = np.log1p(X.data)  # sublinear term frequency
    return normalize(X, copy=False).astype(np.float32, copy=False).tocsr()
