"""Representations (featurizers): the registry, and reading one back from a stored dict.

A project picks one by name in its extra params (``{"features": "embeddings"}``),
or leaves ``default``: the first available of ``DEFAULTS`` for the kind of data
its label config reads (texts, images, records of numbers).  Every model
version stores the full dict (``feature_spec``), so a version is always served
with the representation it was trained on.  Adding a featurizer: a module with
a :class:`Featurizer` subclass, and one line in ``FEATURIZERS`` below (and in
``DEFAULTS`` if it should be a kind's default).
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
from backend.learning.featurizers.efficientnet import EfficientNetFeaturizer
from backend.learning.featurizers.embeddings import EmbeddingFeaturizer
from backend.learning.featurizers.hog import HogFeaturizer
from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.learning.featurizers.numbers import NumberFeaturizer

__all__ = [
    "DEFAULT", "DEFAULTS", "FEATURIZERS", "KIND_DEFAULT", "Featurizer", "FeaturizerError", "Matrix", "check",
    "decode_rows", "default_for", "encode_rows", "for_kind", "from_dict", "get", "resolve", "vstack",
]

FEATURIZERS: dict[str, type[Featurizer]] = {
    NgramFeaturizer.name: NgramFeaturizer,
    EmbeddingFeaturizer.name: EmbeddingFeaturizer,
    ConcatFeaturizer.name: ConcatFeaturizer,
    EfficientNetFeaturizer.name: EfficientNetFeaturizer,
    HogFeaturizer.name: HogFeaturizer,
    NumberFeaturizer.name: NumberFeaturizer,
}

#: The representation of a text project that names none (and of every version stored before featurizers had names).
DEFAULT = NgramFeaturizer.name
#: The ``features`` option's value for "the default for my data": the first available of ``DEFAULTS[kind]``.
KIND_DEFAULT = "default"
#: Per kind of data, the defaults in order of preference.  Images: the pretrained embedding when its optional
#: package is installed, else HOG + pixels (measured in docs/research/image-embeddings.md).
DEFAULTS: dict[str, tuple[str, ...]] = {
    "text": (NgramFeaturizer.name,),
    "image": (EfficientNetFeaturizer.name, HogFeaturizer.name),
    "numbers": (NumberFeaturizer.name,),
}


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
    if name == KIND_DEFAULT:
        return name
    problem = get(name).unavailable()
    if problem:
        raise FeaturizerError(problem)
    return name


def for_kind(kind: str) -> list[str]:
    """The registered featurizers that read ``kind`` content (available here or not)."""
    return [name for name, cls in FEATURIZERS.items() if cls.input == kind]


def default_for(kind: str) -> str:
    """The first of ``DEFAULTS[kind]`` that can run here."""
    names = DEFAULTS.get(kind, ())
    for name in names:
        if get(name).unavailable() is None:
            return name
    raise FeaturizerError(f"no featurizer for {kind} data can run here" + (f": {get(names[-1]).unavailable()}"
                                                                          if names else ""))


def resolve(option: str, kind: str) -> str:
    """The featurizer a project's ``features`` option names for ``kind`` data (``default``: ``default_for``).

    A name that reads another kind of data is refused with what would fit.
    """
    if option == KIND_DEFAULT:
        return default_for(kind)
    check(option)
    if FEATURIZERS[option].input != kind:
        raise FeaturizerError(f"features {option!r} reads {FEATURIZERS[option].input}, but the label config's "
                              f"controls read {kind}; use one of {', '.join(for_kind(kind))} or {KIND_DEFAULT!r}")
    return option
