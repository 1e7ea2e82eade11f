"""The vectorised n-gram hasher hashes exactly scikit-learn's n-grams, row by row."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from backend.learning import ngram_hash
from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.simulation.datasets import load_dataset

EDGE_CASES = [
    "", "   ", "a", "I", "ab cd e", "tab\there\n\nnew  line", "Ünïcödé naïve café — ÆØÅ 東京 x",
    "\ud800 a lone surrogate", "under_score snake_case_word", "emoji 🙂🙂 twice 🙂🙂", "x\x00y nul",
    "UPPER lower Upper", "don't can't won't", "hyphen-ated - words --", "12 345 6789",
]


def _sklearn_distinct(texts: list[str], word=(1, 2), char=(4, 4)) -> np.ndarray:
    """How many distinct word and char_wb n-grams scikit-learn's analyzers produce per text."""
    wa = HashingVectorizer(ngram_range=word).build_analyzer()
    ca = HashingVectorizer(analyzer="char_wb", ngram_range=char).build_analyzer() if char else (lambda t: [])
    return np.array([len(set(wa(t))) + len(set(ca(t))) for t in texts])


@pytest.mark.parametrize("word,char", [((1, 2), (4, 4)), ((1, 1), None), ((1, 3), (3, 5)), ((2, 2), (2, 5))])
def test_same_ngrams_as_scikit_learn(word, char):
    """With 2**30 columns (no collisions) every row has one column per distinct n-gram."""
    texts = load_dataset("crowdflower-tweets").texts[:1500] + EDGE_CASES
    X = ngram_hash.transform(texts, 2**30, word_ngrams=word, char_ngrams=char)
    expected = _sklearn_distinct(texts, word, char)
    got = np.diff(X.indptr)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, [(texts[i][:60], int(expected[i]), int(got[i])) for i in bad[:5]]


def test_rows_are_normalised_sublinear_float32():
    X = NgramFeaturizer().transform(["good good good film", "", "bad"])
    assert X.dtype == np.float32 and X.shape == (3, NgramFeaturizer().n_features)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    np.testing.assert_allclose(norms, [1.0, 0.0, 1.0], rtol=1e-5)
    row = X[0].toarray().ravel()
    # "good" appears 3 times: its word column weighs log1p(3) against log1p(1) for "film".
    assert row.max() / row[row > 0].min() == pytest.approx(np.log1p(3) / np.log1p(1), rel=1e-5)


def test_a_row_does_not_depend_on_its_batch(monkeypatch):
    """Hashing is stateless: alone, in a batch, or split into chunks, a text gets the same row."""
    texts = load_dataset("rotten-tomatoes").texts[:300]
    f = NgramFeaturizer()
    batch = f.transform(texts)
    alone = f.transform([texts[123]])
    assert (batch[123] != alone).nnz == 0
    monkeypatch.setattr(ngram_hash, "_CHUNK_CHARS", 1000)
    chunked = f.transform(texts)
    assert (batch != chunked).nnz == 0


def test_specs_stored_before_the_hasher_keep_their_meaning():
    old = NgramFeaturizer.from_dict({"n_features": 2**18, "word_ngrams": [1, 2], "char_ngrams": [4, 4]})
    assert old.hasher == "sklearn" and old.key == "h18w12c44"  # the old cache keys stay valid
    assert NgramFeaturizer().key != old.key
    assert NgramFeaturizer.from_dict(NgramFeaturizer().to_dict()) == NgramFeaturizer()
    texts = ["a small test", "another one"]
    X_old = old.transform(texts)
    common = dict(n_features=2**18, alternate_sign=False, norm=None)
    ref = HashingVectorizer(ngram_range=(1, 2), **common).transform(texts)
    ref = ref + HashingVectorizer(analyzer="char_wb", ngram_range=(4, 4), **common).transform(texts)
    assert set(X_old[0].indices) == set(ref[0].indices)
    with pytest.raises(ValueError, match="unknown feature hasher"):
        NgramFeaturizer.from_dict({**NgramFeaturizer().to_dict(), "hasher": "nope"})


def test_bad_ngram_orders_are_refused():
    with pytest.raises(ValueError, match="char_ngrams"):
        ngram_hash.transform(["x"], 2**10, char_ngrams=(1, 4))
    with pytest.raises(ValueError, match="word_ngrams"):
        ngram_hash.transform(["x"], 2**10, word_ngrams=(0, 2))
