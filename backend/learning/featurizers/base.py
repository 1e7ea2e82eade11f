"""The representation interface: task contents in (texts, images, records of numbers), one feature row each out.

Why an interface
----------------
Everything after featurising (the per-control model, the strategies, the
diversity geometry, the worker's feature cache) only needs a matrix whose
rows are L2-normalised, so the representation can change per project
without touching them.  A featurizer is a small immutable object that is at
once *what the rows mean* (``to_dict``, stored with every model version, and
``key``, which names the worker's cache) and *how to compute them*
(``transform``).

Rules every featurizer keeps:

* **Deterministic and per-row**: a text's row does not depend on the batch it
  is in, so rows are computed once per task and cached under ``key``; two
  featurizers whose rows may differ must have different keys, so switching a
  project's featurizer never mixes rows.  A featurizer fitted on data (a
  vocabulary, a PCA) would have to put a fingerprint of its fitted state in
  ``key`` and in ``to_dict``.  Most here are stateless (hashing, or
  weights shipped inside a package); the numeric one standardises with the
  pool's statistics, learned by :meth:`Featurizer.fit` and stored in its
  parameters.
* **L2-normalised rows** (an empty text may give a zero row): near-duplicate
  detection reads cosine similarity as a plain dot product.
* **Sparse CSR or dense**: ``sparse`` says which; :func:`vstack`,
  :func:`encode_rows` and :func:`decode_rows` handle both, and the model,
  the strategies and the geometry (:func:`backend.ranking.reduce_dim`) accept
  both.
* **Nothing downloaded at run time**: weights come from an installed package.

Adding one: a module in this package with a subclass, and one line in
``FEATURIZERS`` (``backend/learning/featurizers/__init__.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

#: What ``transform`` returns: float32 CSR rows, or a float32 C-contiguous array.
Matrix = sp.csr_matrix | np.ndarray


#: One small content of each kind, featurised by ``warm_up``.
WARM_UP = {"text": "warm up", "image": np.zeros((8, 8), np.uint8), "numbers": {}}


class FeaturizerError(ValueError):
    """A featurizer cannot be built (unknown name, bad parameters, missing optional package)."""


class Featurizer(ABC):
    """Texts to a feature matrix; immutable, comparable, stored as a plain dict."""

    #: Registry name, stored with every model version (``"featurizer"`` in ``to_dict``).
    name: ClassVar[str]
    #: True: ``transform`` returns ``scipy.sparse.csr_matrix``; False: a dense ``np.ndarray``.
    sparse: ClassVar[bool]
    #: The kind of content ``transform`` takes: ``text`` (str), ``image`` (uint8 arrays) or ``numbers`` (dicts).
    input: ClassVar[str] = "text"
    #: Rows cost enough (an image fetched and run through a network) that ``/predict`` reads the worker's cache.
    costly: ClassVar[bool] = False
    #: Contents read and featurised at a time by the worker (decoded images are large).
    batch: ClassVar[int] = 50_000
    #: ``fit`` learns from the pool (``key`` then names the fitted state): the worker calls it before featurising.
    fitted_on_pool: ClassVar[bool] = False
    #: Two tasks whose rows have at least this cosine (dense rows: around the pool's mean) are near-duplicates,
    #: and only one stays in the queue's head (``SelectionParams.near_duplicate_threshold``).
    duplicate_cosine: ClassVar[float] = 0.9

    @property
    @abstractmethod
    def n_features(self) -> int:
        """Number of columns."""

    @property
    @abstractmethod
    def key(self) -> str:
        """A short id for cache keys (letters, digits, ``-``): different rows, different key."""

    @abstractmethod
    def transform(self, texts: list) -> Matrix:
        """Rows for ``texts`` (contents of kind ``input``), shape ``(len(texts), n_features)``, float32, L2-normalised."""

    def fit(self, contents: list) -> Featurizer:
        """A featurizer fitted on a sample of the pool's contents (``fitted_on_pool``); stateless ones are themselves."""
        return self

    @abstractmethod
    def params(self) -> dict:
        """JSON-able parameters; ``from_params(params())`` rebuilds an equal featurizer."""

    @classmethod
    @abstractmethod
    def from_params(cls, params: dict) -> Featurizer:
        """Inverse of :meth:`params`; raises :class:`FeaturizerError` on bad values."""

    @classmethod
    def default(cls) -> Featurizer:
        """The featurizer a project gets when it names only this kind."""
        return cls()

    @classmethod
    def from_dict(cls, d: dict) -> Featurizer:
        """Inverse of :meth:`to_dict` for this kind (``featurizers.from_dict`` reads any kind)."""
        params = dict(d)
        name = params.pop("featurizer", cls.name)
        if name != cls.name:
            raise FeaturizerError(f"a {name!r} featurizer dict, expected {cls.name!r}")
        return cls.from_params(params)

    def to_dict(self) -> dict:
        """What is stored with a model version (``feature_spec``)."""
        return {"featurizer": self.name, **self.params()}

    def unavailable(self) -> str | None:
        """Why this featurizer cannot run here (e.g. an optional package is missing), or ``None``."""
        return None

    def warm_up(self) -> None:
        """Load tables or weights now, e.g. before a worker forks its jobs: one content of its kind."""
        self.transform([WARM_UP[self.input]])

    def empty(self) -> Matrix:
        """A matrix of no rows."""
        return decode_rows([], self.n_features, sparse=self.sparse)


def vstack(parts: list[Matrix], n_features: int, *, sparse: bool) -> Matrix:
    """Stack row blocks of one featurizer (sparse or dense)."""
    if not parts:
        return decode_rows([], n_features, sparse=sparse)
    if len(parts) == 1:
        return parts[0]
    return sp.vstack(parts, format="csr") if sparse else np.concatenate(parts)


def encode_rows(X: Matrix) -> list[bytes]:
    """Each row as bytes, for the worker's Redis cache.

    Sparse rows: int32 column indices then float32 values.  Dense rows: the
    float32 values.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        idx = X.indices.astype(np.int32, copy=False)
        val = X.data.astype(np.float32, copy=False)
        ptr = X.indptr
        return [idx[ptr[i]:ptr[i + 1]].tobytes() + val[ptr[i]:ptr[i + 1]].tobytes() for i in range(X.shape[0])]
    X = np.ascontiguousarray(X, dtype=np.float32)
    return [row.tobytes() for row in X]


def decode_rows(rows: list[bytes], n_features: int, *, sparse: bool) -> Matrix:
    """Inverse of :func:`encode_rows` for many rows at once."""
    if not sparse:
        if not rows:
            return np.zeros((0, n_features), dtype=np.float32)
        X = np.frombuffer(b"".join(rows), dtype=np.float32)
        if X.size != len(rows) * n_features:
            raise ValueError(f"cached dense rows hold {X.size} values; expected {len(rows)} x {n_features}")
        return X.reshape(len(rows), n_features).copy()
    return _decode_sparse(rows, n_features)


def _decode_sparse(rows: list[bytes], n_features: int) -> sp.csr_matrix:
    """Sparse rows without a Python loop over values.

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


def normalise_rows(X: np.ndarray) -> np.ndarray:
    """Dense rows scaled to unit L2 norm in place (zero rows stay zero)."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    X /= norms
    return X
