"""Dense static sentence embeddings (WordLlama), computed offline with numpy.

Why these embeddings
--------------------
A sentence embedding puts texts that mean the same near each other even when
they share no word ("superb" / "excellent"), which hashed n-grams cannot do;
that helps most while few tasks are labeled.  A transformer would need
torch and tens of milliseconds per text.  A *static* embedding is a
token-embedding table averaged over a text's tokens: a sparse product, about
17 ms for 1,000 short texts on one core.  WordLlama's ``l2_supercat`` table
(256 dimensions, 32,000 Llama-2 tokens, distilled from large language
models' embedding codebooks; MIT) ships *inside* the PyPI package
``wordllama``, so nothing is downloaded at run time.

Its files are read directly with ``tokenizers`` and ``safetensors`` (the
package's own dependencies) rather than through ``WordLlama.load``: that
loader looks for the bundled tokenizer in the wrong folder and then fetches
it from a model hub, its import configures the root logger, and its
padded mean-pooling is 3-4x slower than the sparse product here (the
results are the same to 1e-7).

Optional: ``pip install 'label-studio-active-learning[embeddings]'``.
Without it, choosing this featurizer is refused at ``/setup`` with that
command.

References
----------
Miller (2024), "WordLlama", https://github.com/dleemiller/WordLlama
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import pathlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from backend.learning.featurizers.base import Featurizer, FeaturizerError, normalise_rows

PACKAGE = "wordllama"
INSTALL_HINT = "pip install 'label-studio-active-learning[embeddings]'"
#: The table the package ships (other WordLlama models are downloaded: never used).
MODEL = "l2_supercat"
FULL_DIM = 256
#: Leading dimensions kept: WordLlama's tables are trained so that a prefix is itself an embedding (Matryoshka).
DIMS = (64, 128, 256)


def available() -> str | None:
    """``None`` when the package and its bundled files are installed, else why not."""
    try:
        _files()
    except FeaturizerError as exc:
        return str(exc)
    return None


def _files() -> tuple[pathlib.Path, pathlib.Path]:
    spec = importlib.util.find_spec(PACKAGE)  # found without importing it (its import configures logging)
    if spec is None or not spec.submodule_search_locations:
        raise FeaturizerError(f"the 'embeddings' featurizer needs the optional package {PACKAGE!r}: {INSTALL_HINT}")
    root = pathlib.Path(next(iter(spec.submodule_search_locations)))
    weights = root / "weights" / f"{MODEL}_{FULL_DIM}.safetensors"
    tokenizer = root / "tokenizers" / f"{MODEL}_tokenizer_config.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise FeaturizerError(f"{PACKAGE} is installed without its bundled {path.name}; reinstall it: {INSTALL_HINT}")
    return weights, tokenizer


@functools.cache
def _table() -> tuple[object, np.ndarray, str]:
    """The tokenizer, the float32 token table and a fingerprint of the weights; once per process (~0.1 s)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    weights, tokenizer_file = _files()
    raw = weights.read_bytes()
    table = load_file(str(weights))["embedding.weight"].astype(np.float32)
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer, np.ascontiguousarray(table), hashlib.sha256(raw).hexdigest()[:8]


def _clean(text: str) -> str:
    """Lone surrogates (invalid Unicode) become U+FFFD: the tokenizer refuses them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass(frozen=True)
class EmbeddingFeaturizer(Featurizer):
    """Mean of WordLlama token embeddings, L2-normalised (dense float32, ``dim`` columns).

    Tokens are counted per text (a sparse ``texts x vocabulary`` matrix) and
    multiplied by the token table: the mean pooling WordLlama does, without
    padding every text to the longest of its batch.  An empty text (no
    token) gives a zero row.
    """

    name = "embeddings"
    sparse = False

    dim: int = FULL_DIM

    def __post_init__(self) -> None:
        if self.dim not in DIMS:
            raise FeaturizerError(f"embedding dim must be one of {DIMS}, got {self.dim!r}")

    @property
    def n_features(self) -> int:
        return self.dim

    @property
    def key(self) -> str:
        # The weights' fingerprint: another release of the package is another cache.
        return f"wl{self.dim}-{_table()[2]}"

    def params(self) -> dict:
        return {"dim": self.dim}

    @classmethod
    def from_params(cls, params: dict) -> EmbeddingFeaturizer:
        try:
            return cls(dim=int(params.get("dim", FULL_DIM)))
        except (TypeError, ValueError) as exc:
            raise FeaturizerError(f"bad embedding parameters {params}: {exc}") from None

    def unavailable(self) -> str | None:
        return available()

    def warm_up(self) -> None:
        tokenizer, _, _ = _table()
        tokenizer.encode("warm up")  # one text: the tokenizer's thread pool stays unused before a fork

    def transform(self, texts: list[str]) -> np.ndarray:
        tokenizer, table, _ = _table()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = tokenizer.encode_batch([_clean(t) for t in texts], add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        counts = sp.csr_matrix((np.ones(ids.size, dtype=np.float32), ids, indptr), shape=(len(texts), table.shape[0]))
        # The mean and the sum have the same direction: normalising the sum is the normalised mean.
        X = np.asarray(counts @ table[:, : self.dim], dtype=np.float32)
        return np.ascontiguousarray(normalise_rows(X))
