"""The representation interface and its implementations, each on real content of its kind.

Texts (n-grams, embeddings, both), images (the pretrained embedding, HOG +
pixels: Fashion-MNIST from Debian's package) and records of numbers (the
standardised featurizer: scikit-learn's breast-cancer measurements).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from backend.learning import featurizers
from backend.learning.featurizers import FEATURIZERS, FeaturizerError, decode_rows, encode_rows, from_dict, get
from backend.learning.featurizers import embeddings as emb
from backend.learning.featurizers.concat import ConcatFeaturizer
from backend.learning.featurizers.embeddings import EmbeddingFeaturizer
from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.simulation.datasets import load_dataset, load_fashion_mnist

ODD = ["", "   ", "a", "\ud800 a lone surrogate", "emoji 🙂🙂", "x\x00y", "東京 café"]


def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return load_dataset("rotten-tomatoes").texts[:300] + ODD


def _records() -> tuple[list[dict], list[str]]:
    ds = load_dataset("breast-cancer")
    rows = [dict(r) for r in ds.texts[:360]]
    del rows[5]["mean radius"]  # a missing value
    return rows, ds.labels[:360]


ODD_IMAGES = [np.zeros((1, 1), np.uint8), np.full((3, 500), 200, np.uint8), np.zeros((60, 40, 3), np.uint8) + 90]


@pytest.fixture(scope="module")
def content() -> dict[str, tuple[list, list[str]]]:
    """Per kind of input: 360 real contents with their labels (text: rotten-tomatoes reviews)."""
    ds = load_dataset("rotten-tomatoes")
    return {"text": (ds.texts[:360], ds.labels[:360]), "image": load_fashion_mnist(limit=360), "numbers": _records()}


def _featurizer(name: str, content) -> featurizers.Featurizer:
    f = get(name)
    return f.fit(content[f.input][0]) if f.fitted_on_pool else f


@pytest.mark.parametrize("name", list(FEATURIZERS))
def test_every_featurizer_keeps_the_contract(name, texts, content):
    """float32 rows of unit norm (zero for a text without tokens), of the declared kind and width."""
    f = _featurizer(name, content)
    odd = {"text": ODD, "image": ODD_IMAGES, "numbers": [{"a": 1.0}, {"mean radius": 1e12}]}[f.input]
    data = (texts[:300] if f.input == "text" else content[f.input][0][:300]) + odd
    X = f.transform(data)
    assert sp.issparse(X) == f.sparse and X.dtype == np.float32 and X.shape == (len(data), f.n_features)
    norms = np.linalg.norm(_dense(X), axis=1)
    assert np.all(np.isfinite(norms))
    np.testing.assert_allclose(norms[:300], 1.0, rtol=1e-5)  # real contents
    if f.input == "text":
        assert norms[0 + 300] == 0.0  # "" has no token in any representation
    else:
        # Odd images and records are rows too; a blank (constant) image may be a zero row, like an empty text.
        assert np.all((np.abs(norms[300:] - 1.0) < 1e-5) | (norms[300:] == 0.0))
    assert f.transform([]).shape == (0, f.n_features)


@pytest.mark.parametrize("name", list(FEATURIZERS))
def test_a_row_does_not_depend_on_its_batch(name, texts, content):
    """What the worker's cache assumes: a task's row is the same alone or in any batch."""
    f = _featurizer(name, content)
    data = texts if f.input == "text" else content[f.input][0][:40]
    batch = _dense(f.transform(data))
    alone = _dense(f.transform([data[17]]))
    np.testing.assert_allclose(batch[17:18], alone, atol=1e-5)


@pytest.mark.parametrize("name", list(FEATURIZERS))
def test_rows_round_trip_through_the_cache_encoding(name, texts, content):
    f = _featurizer(name, content)
    X = f.transform(texts[:50] if f.input == "text" else content[f.input][0][:50])
    back = decode_rows(encode_rows(X), f.n_features, sparse=f.sparse)
    assert sp.issparse(back) == f.sparse
    assert np.array_equal(_dense(back), _dense(X))


@pytest.mark.parametrize("name", list(FEATURIZERS))
def test_stored_dict_rebuilds_the_same_featurizer(name):
    f = get(name)
    stored = f.to_dict()
    assert stored["featurizer"] == name
    assert from_dict(stored) == f and from_dict(stored).key == f.key


def test_keys_differ_so_caches_never_mix():
    keys = {name: get(name).key for name in FEATURIZERS}
    assert len(set(keys.values())) == len(keys), keys
    assert get("ngrams").key == "h18w12c44v2"  # the key every existing cache was written under
    assert EmbeddingFeaturizer(dim=128).key != EmbeddingFeaturizer().key


def test_a_spec_stored_before_featurizers_had_names_is_an_ngram_spec():
    old = from_dict({"n_features": 2**18, "word_ngrams": [1, 2], "char_ngrams": [4, 4], "hasher": "ngram-v2"})
    assert old == NgramFeaturizer() and old.key == "h18w12c44v2"
    older = from_dict({"n_features": 2**18, "word_ngrams": [1, 2], "char_ngrams": [4, 4]})
    assert older.hasher == "sklearn" and older.key == "h18w12c44"


def test_unknown_names_and_bad_parameters_are_refused_with_the_known_names():
    with pytest.raises(FeaturizerError, match="unknown featurizer 'bert'; known: ngrams, embeddings, concat, "
                                              "efficientnet, hog, numbers"):
        get("bert")
    with pytest.raises(FeaturizerError, match="unknown featurizer"):
        from_dict({"featurizer": "bert"})
    with pytest.raises(FeaturizerError, match="dim must be one of"):
        from_dict({"featurizer": "embeddings", "dim": 300})
    with pytest.raises(FeaturizerError, match="at least two parts"):
        ConcatFeaturizer(parts=(NgramFeaturizer(),), weights=(1.0,))
    with pytest.raises(FeaturizerError, match="positive weight"):
        ConcatFeaturizer(parts=(NgramFeaturizer(), EmbeddingFeaturizer()), weights=(1.0, 0.0))


def test_embeddings_equal_wordllamas_own_mean_pooling(texts):
    """The sparse product gives what the package's own (padded) pooling gives."""
    import pathlib

    import wordllama

    model = wordllama.WordLlama.load(cache_dir=pathlib.Path(wordllama.__file__).parent, disable_download=True)
    clean = [t for t in texts if t.strip() and "\ud800" not in t]
    ours = get("embeddings").transform(clean)
    theirs = model.embed(clean, norm=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_embeddings_place_paraphrases_nearer_than_opposites():
    """What n-grams cannot do: texts sharing no word, close in meaning, get close rows."""
    X = get("embeddings").transform([
        "an excellent, wonderful film", "a superb and brilliant movie",
        "a dull, boring and awful movie", "the stock market fell sharply today",
    ])
    sim = X @ X.T
    assert sim[0, 1] > sim[0, 2] > sim[0, 3]
    N = get("ngrams").transform(["an excellent, wonderful film", "a superb and brilliant movie"])
    assert (N @ N.T).toarray()[0, 1] < 0.1


def test_embedding_prefixes_are_embeddings_too():
    full = get("embeddings").transform(["a short text", "another one"])
    small = EmbeddingFeaturizer(dim=64).transform(["a short text", "another one"])
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(small, expected, atol=1e-5)


def test_concat_is_the_weighted_mean_of_the_parts_cosines(texts):
    a, b = NgramFeaturizer(), EmbeddingFeaturizer()
    cat = ConcatFeaturizer(parts=(a, b), weights=(1.0, 2.0))
    pair = texts[:2]
    cos = lambda X: float(_dense(X[0:1]).ravel() @ _dense(X[1:2]).ravel())
    expected = (1 * cos(a.transform(pair)) + 4 * cos(b.transform(pair))) / 5
    assert cos(cat.transform(pair)) == pytest.approx(expected, rel=1e-5)
    assert cat.sparse and cat.n_features == a.n_features + b.n_features


def test_a_missing_optional_package_is_named_with_the_install_command(monkeypatch):
    monkeypatch.setattr(emb, "PACKAGE", "no_such_package_here")
    with pytest.raises(FeaturizerError, match=r"needs the optional package .*pip install"):
        featurizers.check("embeddings")
    with pytest.raises(FeaturizerError, match="optional package"):
        featurizers.check("concat")
    assert featurizers.check("ngrams") == "ngrams"


def _near_copy(item):
    """What near-duplicates look like for each kind: a text with a mark, a brightened image, a record 0.1% off."""
    if isinstance(item, str):
        return item + " !"
    if isinstance(item, np.ndarray):
        return np.clip(item.astype(int) + 6, 0, 255).astype(np.uint8)
    return {k: v * 1.001 for k, v in item.items()}


@pytest.mark.parametrize("name", list(FEATURIZERS))
def test_near_duplicates_are_found_in_every_geometry(name, texts, content):
    """The queue's near-duplicate collapse reads cosines off any featurizer's rows, sparse, dense or mixed."""
    from backend.selection import ranking

    small = {"ngrams": NgramFeaturizer(n_features=2**12),
             "concat": ConcatFeaturizer(parts=(NgramFeaturizer(n_features=2**12), EmbeddingFeaturizer()),
                                        weights=(1.0, 1.0))}.get(name) or _featurizer(name, content)
    base = texts[:200] if small.input == "text" else content[small.input][0][:200]
    pool = base + [_near_copy(t) for t in base[:40]]  # 40 near-copies at the end
    X = small.transform(pool)
    order = np.arange(len(pool))
    # As the strategies do: dense rows are compared around the pool's mean, at the featurizer's threshold.
    centre = None if sp.issparse(X) else X.mean(axis=0)
    t = small.duplicate_cosine
    got, demoted = ranking.collapse_near_duplicates(order, X, chunk=64, centre=centre, threshold=t)
    exact, exact_demoted = ranking.collapse_near_duplicates(order, _dense(X), chunk=64, centre=centre, threshold=t)
    assert demoted == exact_demoted >= 35 and np.array_equal(got, exact)
    assert set(got[-demoted:].tolist()) <= set(range(200, 240))  # the copies go, the originals stay


@pytest.mark.parametrize("name", list(FEATURIZERS))
def test_every_strategy_ranks_on_every_featurizers_rows(name, content):
    """Scores, clustering, density, core-sets and the committee read whatever rows the featurizer gives."""
    from backend.learning.model import ChoicesClassifier
    from backend.selection.strategies import STRATEGIES, Pool, SelectionParams, rank_pool

    f = _featurizer(name, content)
    data, labels = content[f.input]
    X = f.transform(data)
    y = labels[:60]
    model = ChoicesClassifier().fit(X[:60], y)
    pool_X = X[60:]
    for strategy in STRATEGIES:
        pool = Pool(X=pool_X, probas={"c": model.predict_proba(pool_X)}, models={"c": model},
                    labeled_X=X[:60], labeled_y=y)
        ranked = rank_pool(pool, SelectionParams(strategy=strategy, batch_size=50), np.random.default_rng(0))
        assert sorted(ranked.order.tolist()) == list(range(300)), (name, strategy)
