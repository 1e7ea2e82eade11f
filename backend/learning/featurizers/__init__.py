"""Representations (featurizers): the registry, and reading one back from a stored dict.

A project picks one by name in its extra params (``{"features": "embeddings"}``);
every model version stores the full dict (``feature_spec``), so a version is
always served with the representation it was trained on.  Adding a
featurizer: a module with a :class:`Featurizer` subclass, and one line in
``FEATURIZERS`` below.
"""

from __future__ import annotations

from backend.learning.featurizers.base import (
    Featurizer,
    FeaturizerError,
    Matrix,
    decode_rows,
    encode_rows,
    vstack,
)
from backend.learning.featurizers.concat import ConcatFeaturizer
from backend.learning.featurizers.embeddings import EmbeddingFeaturizer
from backend.learning.featurizers.ngrams import NgramFeaturizer

__all__ = [
    "DEFAULT", "FEATURIZERS", "Featurizer", "FeaturizerError", "Matrix", "check", "decode_rows", "encode_rows",
    "from_dict", "get", "vstack",
]

FEATURIZERS: dict[str, type[Featurizer]] = {
    NgramFeaturizer.name: NgramFeaturizer,
    EmbeddingFeaturizer.name: EmbeddingFeaturizer,
    ConcatFeaturizer.name: ConcatFeaturizer,
}

#: The representation of a project that names none (and of every version stored before featurizers had names).
DEFAULT = NgramFeaturizer.name


def get(name: str = DEFAULT) -> Featurizer:
    """The featurizer called ``name``, with its default parameters."""
    if name not in FEATURIZERS:
        raise FeaturizerError(f"unknown featurizer {name!r}; known: {', '.join(FEATURIZERS)}")
    return FEATURIZERS[name].default()


def from_dict(d: dict) -> Featurizer:
    """Inverse of :meth:`Featurizer.to_dict`; a dict without a name is an n-gram spec stored before names."""
    if not isinstance(d, dict):
        raise FeaturizerError(f"expected a featurizer dict, got {type(d).__name__}")
    params = dict(d)
    name = params.pop("featurizer", DEFAULT)
    if name not in FEATURIZERS:
        raise FeaturizerError(f"unknown featurizer {name!r}; known: {', '.join(FEATURIZERS)}")
    return FEATURIZERS[name].from_params(params)


def check(name: str) -> str:
    """``name`` if it is known and can run here; else :class:`FeaturizerError` saying what to do."""
    problem = get(name).unavailable()
    if problem:
        raise FeaturizerError(problem)
    return name
