"""The bootstrap-committee regressor behind ``<Number>``/``<Rating>``, and its pickle-free storage.

Real data throughout: scikit-learn's bundled diabetes set (442 patients, 10
numeric features, a continuous disease-progression target).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_diabetes

from backend.learning.model import ChoicesClassifier, NotEnoughLabelsError
from backend.learning.regressor import CommitteeRegressor


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))
    train, test = idx[:300], idx[300:]
    return X[train].astype(np.float32), y[train], X[test].astype(np.float32), y[test]


@pytest.fixture(scope="module")
def fitted(diabetes):
    X, y, _, _ = diabetes
    return CommitteeRegressor().fit(X, y)


def _arrays(model: CommitteeRegressor) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# -- learning -------------------------------------------------------------------
def test_it_beats_predicting_the_mean_on_held_out_patients(diabetes, fitted):
    _, y, X_test, y_test = diabetes
    r2 = fitted.score(X_test, y_test)
    assert r2 > 0.3, r2
    baseline = 1 - np.mean((y_test - y.mean()) ** 2) / np.var(y_test)
    assert r2 > baseline + 0.3


def test_the_committee_disagrees_most_far_from_the_labeled_data(diabetes, fitted):
    X, _, X_test, _ = diabetes
    far = X_test * 8.0  # the same directions, eight times further out than any patient
    on_train, held_out, off = fitted.predict_std(X), fitted.predict_std(X_test), fitted.predict_std(far)
    assert (on_train > 0).all()
    assert off.mean() > 3 * on_train.mean()
    assert np.median(off) > np.median(held_out)
    # Per point: moving a point away from the data raises the spread for nearly every point.
    assert np.mean(off > held_out) > 0.9


def test_predict_is_the_committee_mean_and_std_its_spread(diabetes, fitted):
    _, _, X_test, _ = diabetes
    members = fitted.predict_members(X_test)
    assert members.shape == (len(X_test), 8)
    assert np.allclose(fitted.predict(X_test), members.mean(axis=1))
    assert np.allclose(fitted.predict_std(X_test), members.std(axis=1))
    assert members.std(axis=1).min() > 0  # the members differ: each saw its own resample


def test_sparse_input_gives_the_dense_model(diabetes, fitted):
    X, y, X_test, _ = diabetes
    sparse = CommitteeRegressor().fit(sp.csr_matrix(X), y)
    assert np.allclose(sparse.predict(sp.csr_matrix(X_test)), fitted.predict(X_test), atol=1e-4)
    assert np.allclose(sparse.predict_std(sp.csr_matrix(X_test)), fitted.predict_std(X_test), atol=1e-4)
    assert np.allclose(sparse.predict(X_test), fitted.predict(X_test), atol=1e-4)


def test_hashed_width_input_uses_only_the_used_columns(diabetes, fitted):
    """The 10 features scattered over 2^18 columns, as hashed n-grams are: the same model, weights only there."""
    X, y, X_test, _ = diabetes
    width = 2**18
    where = np.random.default_rng(3).choice(width, size=X.shape[1], replace=False)

    def wide(A: np.ndarray) -> sp.csr_matrix:
        rows, cols = np.nonzero(A)
        return sp.csr_matrix((A[rows, cols], (rows, where[cols])), shape=(A.shape[0], width), dtype=np.float32)

    model = CommitteeRegressor().fit(wide(X), y)
    assert model.coef_.shape == (8, width) and model.n_features_in_ == width
    assert set(np.flatnonzero(np.abs(model.coef_).sum(axis=0))) <= set(where.tolist())
    assert np.allclose(model.predict(wide(X_test)), fitted.predict(X_test), atol=1e-4)


def test_targets_are_standardised_so_alpha_means_the_same_in_any_units(diabetes, fitted):
    X, y, X_test, _ = diabetes
    scaled = CommitteeRegressor().fit(X, y * 1000.0 + 7.0)
    assert np.allclose(scaled.predict(X_test), fitted.predict(X_test) * 1000.0 + 7.0, rtol=1e-5)
    assert np.allclose(scaled.predict_std(X_test), fitted.predict_std(X_test) * 1000.0, rtol=1e-5)
    assert scaled.y_scale_ == pytest.approx(fitted.y_scale_ * 1000.0)


def test_the_seed_fixes_the_committee(diabetes, fitted):
    X, y, X_test, _ = diabetes
    again = CommitteeRegressor().fit(X, y)
    other = CommitteeRegressor(seed=1).fit(X, y)
    assert np.array_equal(again.predict_members(X_test), fitted.predict_members(X_test))
    assert not np.allclose(other.predict_std(X_test), fitted.predict_std(X_test))


def test_init_is_accepted_and_changes_nothing(diabetes, fitted):
    X, y, X_test, _ = diabetes
    warm = CommitteeRegressor().fit(X, y, init=CommitteeRegressor(seed=5).fit(X[:50], y[:50]))
    assert np.array_equal(warm.predict(X_test), fitted.predict(X_test))


def test_get_params_and_clone_follow_scikit_learn(diabetes, fitted):
    X, y, X_test, _ = diabetes
    model = CommitteeRegressor(n_members=5, alpha=3.0, seed=2)
    assert model.get_params() == {"n_members": 5, "alpha": 3.0, "seed": 2}
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert not hasattr(copy, "coef_")
    fitted_copy = clone(fitted)
    assert not hasattr(fitted_copy, "coef_")
    assert np.array_equal(fitted_copy.fit(X, y).predict(X_test), fitted.predict(X_test))
    assert model.set_params(alpha=0.5).alpha == 0.5


# -- refusals -------------------------------------------------------------------
def test_too_few_or_identical_numbers_are_not_enough(diabetes):
    X, y, _, _ = diabetes
    with pytest.raises(NotEnoughLabelsError, match="at least two"):
        CommitteeRegressor().fit(X[:1], y[:1])
    with pytest.raises(NotEnoughLabelsError):
        CommitteeRegressor().fit(X[:0], y[:0])
    with pytest.raises(NotEnoughLabelsError, match="same number"):
        CommitteeRegressor().fit(X[:20], np.full(20, 3.0))
    # Two rows with two different numbers are enough.
    assert CommitteeRegressor().fit(X[:2], [1.0, 2.0]).predict(X[:2]).shape == (2,)


def test_bad_targets_and_shapes_are_value_errors_that_say_what_is_wrong(diabetes):
    X, y, _, _ = diabetes
    for bad in (np.nan, np.inf, -np.inf):
        target = y[:10].copy()
        target[4] = bad
        with pytest.raises(ValueError, match=r"finite.*y\[4\]"):
            CommitteeRegressor().fit(X[:10], target)
    with pytest.raises(ValueError, match="10 rows but y has 9"):
        CommitteeRegressor().fit(X[:10], y[:9])
    with pytest.raises(ValueError, match="numbers"):
        CommitteeRegressor().fit(X[:3], ["a", "b", "c"])
    with pytest.raises(ValueError, match="n_members"):
        CommitteeRegressor(n_members=1).fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        CommitteeRegressor(alpha=0.0).fit(X, y)
    model = CommitteeRegressor().fit(X, y)
    with pytest.raises(ValueError, match="fitted on 10"):
        model.predict(X[:, :5])


# -- storage --------------------------------------------------------------------
def test_round_trip_gives_identical_predictions(diabetes, fitted):
    _, _, X_test, _ = diabetes
    loaded = CommitteeRegressor.from_bytes(fitted.to_bytes())
    assert loaded.get_params() == fitted.get_params()
    assert np.array_equal(loaded.predict_members(X_test), fitted.predict_members(X_test))
    assert np.array_equal(loaded.predict_std(sp.csr_matrix(X_test)), fitted.predict_std(sp.csr_matrix(X_test)))


def test_weights_are_stored_sparsely(diabetes):
    X, y, _, _ = diabetes
    wide = sp.hstack([sp.csr_matrix(X), sp.csr_matrix((len(X), 2**18 - X.shape[1]), dtype=np.float32)]).tocsr()
    model = CommitteeRegressor().fit(wide, y)
    stored = _arrays(model)
    assert len(stored["vals"]) <= 8 * X.shape[1]
    assert len(model.to_bytes()) < 20_000  # not 8 x 2^18 floats


def test_stored_model_contains_no_pickle(fitted):
    with zipfile.ZipFile(io.BytesIO(fitted.to_bytes())) as z:
        for name in z.namelist():
            header = z.read(name)[:128]
            assert b"'descr': '|O'" not in header and b"'descr': 'O'" not in header, name


def test_from_bytes_refuses_garbage_and_truncated_bytes(fitted):
    raw = fitted.to_bytes()
    for bad in (b"", b"garbage", raw[: len(raw) // 2], raw[:-10], b"PK\x03\x04" + b"\0" * 40):
        with pytest.raises(ValueError, match="not a stored regressor"):
            CommitteeRegressor.from_bytes(bad)
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    with pytest.raises(ValueError, match="not a stored regressor"):
        CommitteeRegressor.from_bytes(buf.getvalue())


def test_from_bytes_never_unpickles_an_object_array(fitted):
    """Bytes someone wrote into Redis cannot make a serving process unpickle."""
    arrays = _arrays(fitted)
    arrays["y_mean"] = np.array([object()], dtype=object)
    with pytest.raises(ValueError, match="allow_pickle"):
        CommitteeRegressor.from_bytes(_npz(**arrays))


def test_from_bytes_refuses_missing_arrays_and_wrong_shapes(fitted):
    good = _arrays(fitted)
    assert CommitteeRegressor.from_bytes(_npz(**good)).n_members == 8  # the helper itself writes loadable models

    def refused(match: str, **changes) -> None:
        arrays = {**good, **changes}
        arrays = {k: v for k, v in arrays.items() if v is not None}
        with pytest.raises(ValueError, match=match):
            CommitteeRegressor.from_bytes(_npz(**arrays))

    refused("missing intercept", intercept=None)
    refused("missing kind, y_scale", kind=None, y_scale=None)
    refused("intercept has shape", intercept=np.zeros(7))
    refused("outside the coefficient shape", cols=good["cols"] + 10)
    refused("one length", vals=good["vals"][:-1])
    refused("coefficient shape", shape=np.array([8, 10, 1]))
    refused("coefficient shape", shape=np.array([8, 2**40]))
    refused("y_scale", y_scale=np.asarray(0.0))
    refused("finite", vals=np.full_like(good["vals"], np.nan))
    refused("must be a scalar", y_mean=np.zeros(2))
    refused("integers", rows=good["rows"].astype(np.float64))
    refused("kind is", kind=np.asarray("choices_classifier"))


def test_a_classifier_is_not_a_regressor(diabetes):
    X, y, _, _ = diabetes
    clf = ChoicesClassifier().fit(X, np.where(y > np.median(y), "high", "low"))
    with pytest.raises(ValueError, match="not a stored regressor"):
        CommitteeRegressor.from_bytes(clf.to_bytes())
