"""Hashed word and character n-gram features for text.

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

# Which hashing implementation a spec means.  "sklearn" is the original
# (scikit-learn's HashingVectorizer): models stored before "ngram-v2" keep
# being served with it until the worker retrains them.  "ngram-v2" hashes the
# same n-grams with vectorised numpy (5x faster on 1,000 texts; see
# docs/benchmarks.md), so the hash values, and therefore the columns, differ.
HASHERS = ("sklearn", "ngram-v2")


@dataclass(frozen=True)
class FeatureSpec:
    """What a feature row means; stored with every model and cache entry."""

    n_features: int = 2**18
    word_ngrams: tuple[int, int] = (1, 2)
    # Character 4-grams within words: +0.8 to +1.6 accuracy points over words
    # alone on real review/tweet data at 1,000 labels, at a third of the cost
    # of 3-4-grams (see docs/benchmarks.md, "Feature choice").
    char_ngrams: tuple[int, int] | None = (4, 4)
    hasher: str = "ngram-v2"

    @property
    def key(self) -> str:
        """A short id for cache keys: a different spec is a different cache."""
        char = "none" if self.char_ngrams is None else f"{self.char_ngrams[0]}{self.char_ngrams[1]}"
        suffix = "" if self.hasher == "sklearn" else "v2"  # old caches keep their keys
        return f"h{self.n_features.bit_length() - 1}w{self.word_ngrams[0]}{self.word_ngrams[1]}c{char}{suffix}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        char = d.get("char_ngrams")
        hasher = d.get("hasher", "sklearn")  # specs stored before the hasher was named
        if hasher not in HASHERS:
            raise ValueError(f"unknown feature hasher {hasher!r}; expected one of {', '.join(HASHERS)}")
        return cls(
            n_features=int(d["n_features"]),
            word_ngrams=tuple(d["word_ngrams"]),
            char_ngrams=None if char is None else tuple(char),
            hasher=hasher,
        )


class TextFeaturizer:
    """Turn texts into L2-normalised hashed n-gram rows (float32 CSR).

    Word and character n-grams share one hashed space; the character part
    makes the model robust to typos and inflections on short texts.  Counts
    are sublinear (``log1p``).
    """

    def __init__(self, spec: FeatureSpec | None = None) -> None:
        self.spec = spec or FeatureSpec()

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        """Features for ``texts``, shape ``(len(texts), spec.n_features)``."""
        if not texts:
            return sp.csr_matrix((0, self.spec.n_features), dtype=np.float32)
        if self.spec.hasher == "sklearn":
            return _sklearn_transform(self.spec, texts)
        return ngram_hash.transform(
            texts, self.spec.n_features, word_ngrams=self.spec.word_ngrams, char_ngrams=self.spec.char_ngrams
        )


def warm_up() -> None:
    """Build the hasher's per-process tables now (~0.2 s), e.g. before a worker forks."""
    TextFeaturizer().transform(["warm up"])


def _sklearn_transform(spec: FeatureSpec, texts: list[str]) -> sp.csr_matrix:
    common = dict(n_features=spec.n_features, alternate_sign=False, norm=None, dtype=np.float32)
    X = HashingVectorizer(ngram_range=spec.word_ngrams, **common).transform(texts)
    if spec.char_ngrams:
        X = X + HashingVectorizer(analyzer="char_wb", ngram_range=spec.char_ngrams, **common).transform(texts)
    X.data = np.log1p(X.data)  # sublinear term frequency
    return normalize(X, copy=False).astype(np.float32, copy=False).tocsr()


def encode_row(X: sp.csr_matrix, i: int) -> bytes:
    """One row as bytes (int32 indices then float32 values), for the Redis cache."""
    start, end = X.indptr[i], X.indptr[i + 1]
    idx = X.indices[start:end].astype(np.int32, copy=False)
    val = X.data[start:end].astype(np.float32, copy=False)
    return idx.tobytes() + val.tobytes()


def decode_rows(rows: list[bytes], n_features: int) -> sp.csr_matrix:
    """Inverse of :func:`encode_row` for many rows at once, without a Python loop over values.

    Both halves of a row are 4-byte numbers, so all rows are read as one
    int32 buffer and gathered by computed positions; a million rows decode
    in about a second instead of several.
    """
    lengths = np.fromiter((len(raw) // 8 for raw in rows), dtype=np.int64, count=len(rows))
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    nnz = int(indptr[-1])
    if nnz == 0:
        return sp.csr_matrix((len(rows), n_features), dtype=np.float32)
    words = np.frombuffer(b"".join(rows), dtype=np.int32)
    row_start = np.repeat(2 * indptr[:-1], lengths)  # where each row begins, in 4-byte words
    within = np.arange(nnz, dtype=np.int64) - np.repeat(indptr[:-1], lengths)
    idx_pos = row_start + within
    indices = words[idx_pos]
    data = words.view(np.float32)[idx_pos + np.repeat(lengths, lengths)]
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_features))
