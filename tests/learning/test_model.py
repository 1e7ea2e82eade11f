"""Features and the per-control classifier, including its pickle-free storage."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from backend.learning.featurizers import decode_rows, encode_rows
from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.learning.model import ChoicesClassifier, NotEnoughLabelsError
from backend.simulation.datasets import load_dataset

POS = ["a wonderful moving film", "beautiful and wonderful", "moving, beautiful acting", "wonderful story"]
NEG = ["a dull boring mess", "awful and boring", "dull acting, awful plot", "boring story"]


@pytest.fixture(scope="module")
def featurizer():
    return NgramFeaturizer()


def test_features_are_stateless_and_normalised(featurizer):
    a = featurizer.transform(["Hello world", "hello there"])
    b = NgramFeaturizer().transform(["Hello world", "hello there"])
    assert (a != b).nnz == 0
    assert a.dtype == np.float32 and a.shape == (2, 2**18)
    assert np.allclose(np.sqrt(a.multiply(a).sum(axis=1)).A1, 1.0, atol=1e-5)


def test_feature_rows_round_trip_through_bytes(featurizer):
    X = featurizer.transform(["one text", "another, longer text with words", "x"])
    back = decode_rows(encode_rows(X), X.shape[1], sparse=True)
    assert (back != X).nnz == 0


def test_single_choice_learns_and_round_trips(featurizer):
    X = featurizer.transform(POS + NEG)
    y = ["pos"] * 4 + ["neg"] * 4
    model = ChoicesClassifier().fit(X, y)
    test = featurizer.transform(["wonderful beautiful film", "awful boring plot"])
    proba = model.predict_proba(test)
    assert list(model.classes_) == ["neg", "pos"]
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert model.predict(test) == ["pos", "neg"]
    loaded = ChoicesClassifier.from_bytes(model.to_bytes())
    assert np.allclose(loaded.predict_proba(test), proba, atol=1e-6)


def test_balanced_class_weights_lift_a_rare_label_and_round_trip(featurizer):
    X = featurizer.transform(POS + NEG[:1])  # four of one label, one of the other
    y = ["pos"] * 4 + ["neg"]
    test = featurizer.transform(["a film"])
    plain = ChoicesClassifier().fit(X, y)
    balanced = ChoicesClassifier(class_weight="balanced").fit(X, y)
    neg = list(plain.classes_).index("neg")
    assert balanced.predict_proba(test)[0, neg] > plain.predict_proba(test)[0, neg] + 0.01
    loaded = ChoicesClassifier.from_bytes(balanced.to_bytes())
    assert loaded.class_weight == "balanced"
    assert np.allclose(loaded.predict_proba(test), balanced.predict_proba(test), atol=1e-6)
    assert ChoicesClassifier.from_bytes(plain.to_bytes()).class_weight is None
    # A model stored before the field existed loads with no class weights.
    with np.load(io.BytesIO(plain.to_bytes()), allow_pickle=False) as z:
        old = {k: z[k] for k in z.files if k != "class_weight"}
    buf = io.BytesIO()
    np.savez(buf, **old)
    assert ChoicesClassifier.from_bytes(buf.getvalue()).class_weight is None
    with pytest.raises(ValueError, match="class_weight"):
        ChoicesClassifier(class_weight="heavy").fit(X, y)


def test_three_classes(featurizer):
    texts = POS + NEG + ["it was fine", "an average film", "fine, average"]
    y = ["pos"] * 4 + ["neg"] * 4 + ["meh"] * 3
    model = ChoicesClassifier().fit(featurizer.transform(texts), y)
    proba = model.predict_proba(featurizer.transform(["average fine film"]))
    assert proba.shape == (1, 3) and model.classes_[proba.argmax()] == "meh"


def test_multiple_choice_gives_independent_probabilities(featurizer):
    texts = ["goal and match", "election vote", "match and election", "new phone app", "vote on phone app"]
    y = [["sports"], ["politics"], ["sports", "politics"], ["tech"], ["politics", "tech"]]
    model = ChoicesClassifier(multiple=True).fit(featurizer.transform(texts), y)
    proba = model.predict_proba(featurizer.transform(["goal match", "election"]))
    assert proba.shape == (2, 3)
    assert not np.allclose(proba.sum(axis=1), 1.0)
    assert list(model.classes_) == ["politics", "sports", "tech"]
    assert "sports" in model.predict(featurizer.transform(["goal match"]))[0]
    loaded = ChoicesClassifier.from_bytes(model.to_bytes())
    assert np.allclose(loaded.predict_proba(featurizer.transform(["goal"])), model.predict_proba(featurizer.transform(["goal"])), atol=1e-6)


def test_multiple_choice_one_sided_label_is_a_constant_rate(featurizer):
    model = ChoicesClassifier(multiple=True).fit(featurizer.transform(["a", "b", "c"]), [["x"], ["x"], ["x"]])
    p = model.predict_proba(featurizer.transform(["anything", "else"]))
    assert p.shape == (2, 1) and np.allclose(p[:, 0], 3.5 / 4.0)


def test_one_class_is_not_enough(featurizer):
    with pytest.raises(NotEnoughLabelsError, match="same answer"):
        ChoicesClassifier().fit(featurizer.transform(POS), ["pos"] * 4)
    with pytest.raises(NotEnoughLabelsError):
        ChoicesClassifier().fit(featurizer.transform([]), [])


def test_stored_model_contains_no_pickle(featurizer):
    model = ChoicesClassifier().fit(featurizer.transform(POS + NEG), ["p"] * 4 + ["n"] * 4)
    raw = model.to_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        for name in z.namelist():
            header = z.read(name)[:128]
            assert b"'descr': '|O'" not in header and b"'descr': 'O'" not in header, name


def test_planted_pickle_is_refused():
    """Bytes someone wrote into Redis cannot make a serving process unpickle."""
    fields = dict(shape=np.array([1, 2]), rows=np.zeros(0, np.int32), cols=np.zeros(0, np.int32),
                  vals=np.zeros(0, np.float32), intercept=np.zeros(1, np.float32), multiple=np.asarray(False),
                  C=np.asarray(1.0))
    buf = io.BytesIO()
    np.savez(buf, classes=np.array([object()], dtype=object), **fields)
    with pytest.raises(ValueError, match="allow_pickle"):
        ChoicesClassifier.from_bytes(buf.getvalue())
    with pytest.raises(ValueError):
        ChoicesClassifier.from_bytes(b"garbage")


def _real_labels(n: int):
    ds = load_dataset("crowdflower-tweets")
    idx = np.random.default_rng(1).permutation(len(ds.texts))[:n]
    return [ds.texts[i] for i in idx], [ds.labels[i] for i in idx]


def test_a_warm_start_reaches_the_same_model_in_fewer_iterations(featurizer, monkeypatch):
    """Retraining from the serving model's weights (as stored) after a few new labels: same optimum, less work."""
    import backend.learning.model as model_module

    texts, labels = _real_labels(1_206)
    X = featurizer.transform(texts)
    before = ChoicesClassifier.from_bytes(ChoicesClassifier().fit(X[:1_200], labels[:1_200]).to_bytes())
    iterations = []
    real = model_module.LogisticRegression

    class Counting(real):
        def fit(self, *args, **kwargs):
            fitted = super().fit(*args, **kwargs)
            iterations.append(int(np.max(fitted.n_iter_)))
            return fitted

    monkeypatch.setattr(model_module, "LogisticRegression", Counting)
    cold = ChoicesClassifier().fit(X, labels)
    warm = ChoicesClassifier().fit(X, labels, init=before)
    assert iterations[1] < iterations[0] / 2, iterations
    held_out, truth = _held_out(featurizer)
    p_cold, p_warm = cold.predict_proba(held_out), warm.predict_proba(held_out)
    assert np.abs(p_cold - p_warm).mean() < 0.01
    acc = [float(np.mean(np.asarray(m.predict(held_out)) == truth)) for m in (cold, warm)]
    assert abs(acc[0] - acc[1]) < 0.01, acc


def _held_out(featurizer):
    ds = load_dataset("crowdflower-tweets")
    idx = np.random.default_rng(1).permutation(len(ds.texts))[-2_000:]
    return featurizer.transform([ds.texts[i] for i in idx]), np.asarray([ds.labels[i] for i in idx])


def test_a_warm_start_from_another_problem_is_ignored(featurizer):
    """A new answer (other classes), another feature space or the other kind of control: fit from zero."""
    X = featurizer.transform(POS + NEG + ["it was fine", "fine, average"])
    y3 = ["pos"] * 4 + ["neg"] * 4 + ["meh"] * 2
    two = ChoicesClassifier().fit(X[:8], y3[:8])
    cold = ChoicesClassifier().fit(X, y3)
    for init in (two, ChoicesClassifier(multiple=True).fit(X, [[v] for v in y3])):
        warm = ChoicesClassifier().fit(X, y3, init=init)
        assert np.allclose(warm.coef_, cold.coef_) and list(warm.classes_) == list(cold.classes_)
    multi = ChoicesClassifier(multiple=True).fit(X, [[v] for v in y3])
    again = ChoicesClassifier(multiple=True).fit(X, [[v] for v in y3], init=multi)
    assert list(again.classes_) == list(multi.classes_)
    assert np.abs(again.predict_proba(X) - multi.predict_proba(X)).max() < 0.02
