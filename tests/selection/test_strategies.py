"""Named strategies through ``rank_pool``: every strategy, cold start, several controls, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.learning.model import ChoicesClassifier
from backend.selection import strategies
from backend.selection.strategies import RANDOM_PICK, Pool, SelectionParams, rank_pool
from backend.simulation.datasets import load_dataset

ALL = sorted(strategies.STRATEGIES)
MODEL_FREE = ["random"]


@pytest.fixture(scope="module")
def data():
    """300 real reviews: 60 labeled, 240 in the pool."""
    ds = load_dataset("rotten-tomatoes")
    texts, labels = ds.texts[:300], ds.labels[:300]
    X = NgramFeaturizer().transform(texts)
    return X, labels


@pytest.fixture(scope="module")
def large_data():
    """1,400 real reviews: more than one chunk of the near-duplicate pass."""
    ds = load_dataset("rotten-tomatoes")
    return NgramFeaturizer().transform(ds.texts[:1400]), ds.labels[:1400]


def make_pool(data, *, multiple=False, two_controls=False, n_labeled=60) -> Pool:
    X, labels = data
    Xl, yl, Xp = X[:n_labeled], labels[:n_labeled], X[n_labeled:]
    if multiple:
        yl = [[v] if i % 3 else [v, "extra"] for i, v in enumerate(yl)]
    model = ChoicesClassifier(multiple=multiple).fit(Xl, yl)
    probas = {"sentiment": model.predict_proba(Xp)}
    models = {"sentiment": model}
    if two_controls:
        other = ChoicesClassifier().fit(Xl, ["long" if Xl[i].nnz > 60 else "short" for i in range(n_labeled)])
        probas["length"], models["length"] = other.predict_proba(Xp), other
    return Pool(X=Xp, probas=probas, models=models, labeled_X=Xl, labeled_y=list(yl))


def is_permutation(order: np.ndarray, n: int) -> bool:
    return sorted(order.tolist()) == list(range(n))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("kind", ["single", "multiple", "two-controls"])
def test_every_strategy_ranks_the_whole_pool_deterministically(data, name, kind):
    pool = make_pool(data, multiple=kind == "multiple", two_controls=kind == "two-controls")
    params = SelectionParams(strategy=name, batch_size=20, weights={"margin": 1, "committee-kl": 1, "egl": 0.5}
                             if name == "hybrid" else {})
    a = rank_pool(pool, params, np.random.default_rng(7))
    b = rank_pool(pool, params, np.random.default_rng(7))
    assert is_permutation(a.order, pool.n)
    assert a.order.tolist() == b.order.tolist() and a.source.tolist() == b.source.tolist()
    assert a.clusters.shape == (pool.n,)


@pytest.mark.parametrize("name", [s for s in ALL if s not in MODEL_FREE])
def test_without_a_model_every_strategy_starts_cold(data, name):
    X, _ = data
    cold = Pool(X=X[60:])
    params = SelectionParams(strategy=name, control_share=0.0)
    order = rank_pool(cold, params, np.random.default_rng(3)).order
    typiclust = rank_pool(cold, SelectionParams(strategy="typiclust", control_share=0.0), np.random.default_rng(3))
    assert order.tolist() == typiclust.order.tolist()


def test_cold_start_prefers_typical_tasks_and_sinks_outliers():
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal([5, 0, 0, 0], 0.3, size=(60, 4)))
    b = np.abs(rng.normal([0, 5, 0, 0], 0.3, size=(60, 4)))
    outliers = np.array([[0, 0, 9.0, 0.1], [0.1, 0, 0, 9.0]])
    rows = np.vstack([a, b, outliers])
    X = sp.csr_matrix(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    params = SelectionParams(strategy="typiclust", control_share=0.0, near_duplicate_threshold=None)
    r = rank_pool(Pool(X=X), params, np.random.default_rng(1))
    head = r.order[:10]
    assert not set(head.tolist()) & {120, 121}
    assert {int(i >= 60) for i in head} == {0, 1}  # both groups in the head
    assert set(r.order[-2:].tolist()) == {120, 121}  # each alone in its cluster: last


def test_uncertainty_strategies_put_the_least_certain_task_first(data):
    pool = make_pool(data)
    p = pool.probas["sentiment"]
    most_uncertain = int(np.argmin(np.abs(p[:, 0] - p[:, 1])))
    for name in ("margin", "least-confidence", "entropy", "egl"):
        order = rank_pool(pool, SelectionParams(strategy=name, control_share=0.0), np.random.default_rng(0)).order
        assert order[0] == most_uncertain, name


def test_batch_strategies_spread_the_head_over_the_pool():
    """Four groups of similar tasks; the model is unsure only about group 0."""
    rng = np.random.default_rng(0)
    base = np.eye(8)[:4] * 3.0
    rows = np.abs(np.vstack([base[g] + rng.normal(0, 0.6, size=(30, 8)) for g in range(4)]))
    X = sp.csr_matrix(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    group = np.repeat(np.arange(4), 30)
    p0 = np.where(group == 0, 0.5, 0.95) + rng.uniform(-0.02, 0.02, size=120)
    model = ChoicesClassifier().fit(X[:60], ["a"] * 30 + ["b"] * 30)
    pool = Pool(X=X, probas={"c": np.column_stack([p0, 1 - p0])}, models={"c": model})
    heads = {}
    for name in ("margin", "kcenter", "ranked-batch", "badge"):
        params = SelectionParams(strategy=name, batch_size=8, control_share=0.0, near_duplicate_threshold=None)
        heads[name] = set(group[rank_pool(pool, params, np.random.default_rng(0)).order[:8]].tolist())
    assert heads["margin"] == {0}
    assert len(heads["kcenter"]) >= 3 and len(heads["ranked-batch"]) >= 3
    # BADGE starts where the gradient is longest (the unsure group) and spreads from there.
    assert 0 in heads["badge"] and len(heads["badge"]) >= 2


def test_batch_larger_than_the_pool(data):
    pool = make_pool(data)
    for name in ("kcenter", "ranked-batch", "badge"):
        r = rank_pool(pool, SelectionParams(strategy=name, batch_size=10_000), np.random.default_rng(0))
        assert is_permutation(r.order, pool.n)


def test_near_duplicates_leave_the_head(data):
    X, labels = data
    pool = make_pool(data)
    twin = pool.X[[0, 0, 0]]  # three copies of one task
    Xp = sp.vstack([twin, pool.X]).tocsr()
    probas = {"sentiment": np.vstack([np.full((3, 2), 0.5), pool.probas["sentiment"]])}  # the most uncertain
    dup_pool = Pool(X=Xp, probas=probas, models=pool.models, labeled_X=pool.labeled_X, labeled_y=pool.labeled_y)
    on = rank_pool(dup_pool, SelectionParams(strategy="margin", control_share=0.0), np.random.default_rng(0)).order
    copies = {0, 1, 2, 3}  # row 3 is the original
    assert len(copies & set(on[:20].tolist())) == 1
    pos = {t: i for i, t in enumerate(on.tolist())}
    assert sorted(pos[c] for c in copies)[1] > pool.n // 2  # the other three moved down
    off = rank_pool(dup_pool, SelectionParams(strategy="margin", control_share=0.0, near_duplicate_threshold=None),
                    np.random.default_rng(0)).order
    assert set(off[:3].tolist()) == {0, 1, 2}


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 1.0])
def test_control_share_is_marked_and_respected(data, share):
    pool = make_pool(data)
    r = rank_pool(pool, SelectionParams(strategy="kcenter", control_share=share), np.random.default_rng(0))
    is_random_pick = r.source[r.order] == RANDOM_PICK
    for head in (1, 10, 37, pool.n):
        assert np.floor(head * share) <= is_random_pick[:head].sum() <= np.ceil(head * share)


def test_hybrid_weights_steer_the_order(data):
    pool = make_pool(data)
    margin_only = rank_pool(pool, SelectionParams(strategy="hybrid", weights={"margin": 1}, control_share=0.0,
                                                  near_duplicate_threshold=None), np.random.default_rng(0)).order
    plain = rank_pool(pool, SelectionParams(strategy="margin", control_share=0.0, near_duplicate_threshold=None),
                      np.random.default_rng(0)).order
    assert margin_only[:10].tolist() == plain[:10].tolist()
    density = rank_pool(pool, SelectionParams(strategy="hybrid", weights={"density": 1}, control_share=0.0),
                        np.random.default_rng(0)).order
    assert density[:10].tolist() != plain[:10].tolist()


@pytest.mark.parametrize("weights, message", [
    ({"margn": 1}, "unknown score name"),
    ({"margin": -1}, ">= 0"),
    ({"margin": float("nan")}, ">= 0"),
    ({"margin": "a lot"}, "must be a number"),
    ({"margin": 0, "density": 0}, "all zero"),
])
def test_bad_weights_are_refused_with_the_allowed_keys(weights, message):
    with pytest.raises(ValueError, match=message):
        strategies.check_weights(weights)
    with pytest.raises(ValueError):
        rank_pool(Pool(X=sp.csr_matrix((0, 3))), SelectionParams(strategy="hybrid", weights=weights),
                  np.random.default_rng(0))


@pytest.mark.parametrize("name", ["margin", "kcenter", "hybrid"])  # the pass after the order is shared
@pytest.mark.parametrize("share", [0.0, 0.1, 0.95])
def test_a_ranking_asked_for_its_head_only_has_the_same_head(large_data, name, share):
    """``head=h`` lets the near-duplicate pass stop early; the first h places are those of a full ranking."""
    pool = make_pool(large_data, n_labeled=200)
    twins = pool.X[np.repeat(np.arange(0, 40, 4), 6)]  # 60 near-copies among the most uncertain tasks
    Xp = sp.vstack([twins, pool.X]).tocsr()
    probas = {"sentiment": np.vstack([np.full((60, 2), 0.5), pool.probas["sentiment"]])}
    dup_pool = Pool(X=Xp, probas=probas, models=pool.models, labeled_X=pool.labeled_X, labeled_y=pool.labeled_y)
    for head in (1, 5, 30):
        for seed in range(3):
            full = rank_pool(dup_pool, SelectionParams(strategy=name, batch_size=head, control_share=share),
                             np.random.default_rng(seed))
            part = rank_pool(dup_pool, SelectionParams(strategy=name, batch_size=head, control_share=share,
                                                       head=head), np.random.default_rng(seed))
            assert part.order[:head].tolist() == full.order[:head].tolist(), (head, seed)
            assert part.source[part.order[:head]].tolist() == full.source[full.order[:head]].tolist()
            assert is_permutation(part.order, dup_pool.n)


def test_bad_params_are_refused(data):
    pool = make_pool(data)
    with pytest.raises(ValueError, match="unknown strategy"):
        rank_pool(pool, SelectionParams(strategy="best"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size"):
        rank_pool(pool, SelectionParams(batch_size=0), np.random.default_rng(0))
    with pytest.raises(ValueError, match="control_share"):
        rank_pool(pool, SelectionParams(control_share=1.5), np.random.default_rng(0))
    with pytest.raises(ValueError, match="head"):
        rank_pool(pool, SelectionParams(head=0), np.random.default_rng(0))


def test_nan_probabilities_are_a_clear_error(data):
    pool = make_pool(data)
    pool.probas["sentiment"] = pool.probas["sentiment"].copy()
    pool.probas["sentiment"][3] = np.nan
    for name in ("margin", "entropy", "margin-coverage"):
        with pytest.raises(ValueError, match="NaN"):
            rank_pool(pool, SelectionParams(strategy=name), np.random.default_rng(0))


def test_empty_pool_and_one_task(data):
    for name in ALL:
        empty = rank_pool(Pool(X=sp.csr_matrix((0, 8))), SelectionParams(strategy=name), np.random.default_rng(0))
        assert empty.order.shape == (0,)
    pool = make_pool(data)
    one = Pool(X=pool.X[:1], probas={"sentiment": pool.probas["sentiment"][:1]}, models=pool.models,
               labeled_X=pool.labeled_X, labeled_y=pool.labeled_y)
    for name in ALL:
        assert rank_pool(one, SelectionParams(strategy=name), np.random.default_rng(0)).order.tolist() == [0]


def test_all_identical_features(data):
    pool = make_pool(data)
    X = sp.csr_matrix(np.tile(pool.X[:1].toarray(), (30, 1)))
    model = pool.models["sentiment"]
    same = Pool(X=X, probas={"sentiment": model.predict_proba(X)}, models=pool.models,
                labeled_X=pool.labeled_X, labeled_y=pool.labeled_y)
    for name in ALL:
        r = rank_pool(same, SelectionParams(strategy=name, batch_size=10), np.random.default_rng(0))
        assert is_permutation(r.order, 30), name
    cold = rank_pool(Pool(X=X), SelectionParams(strategy="typiclust"), np.random.default_rng(0))
    assert is_permutation(cold.order, 30)


def test_one_label_only_multilabel_model_still_ranks(data):
    X, _ = data
    model = ChoicesClassifier(multiple=True).fit(X[:20], [["spam"]] * 20)  # one label, always chosen
    pool = Pool(X=X[20:], probas={"c": model.predict_proba(X[20:])}, models={"c": model},
                labeled_X=X[:20], labeled_y=[["spam"]] * 20)
    for name in ALL:
        assert is_permutation(rank_pool(pool, SelectionParams(strategy=name), np.random.default_rng(0)).order,
                              pool.n)


def test_committee_disagrees_where_the_model_is_unsure(data):
    pool = make_pool(data)
    got = strategies._committee(pool, np.random.default_rng(0))
    assert got is not None and got[1].shape == (strategies.COMMITTEE_SIZE, pool.n, 2)
    members = got[1]
    assert np.allclose(members.sum(axis=2), 1.0) and not np.allclose(members[0], members[1])
    pool._cache.clear()
    vote = strategies._vote(pool, np.random.default_rng(0))
    margin = strategies._margin(pool, np.random.default_rng(0))
    split = vote > 0
    assert 0 < split.sum() < pool.n and margin[split].mean() > margin.mean()


def test_mean_uncertainty_is_the_margin_score(data):
    pool = make_pool(data, two_controls=True)
    assert np.allclose(strategies.mean_uncertainty(pool.models, pool.probas, pool.n),
                       strategies._margin(pool, np.random.default_rng(0)))


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(ALL), n=st.integers(1, 60), share=st.floats(0, 1), seed=st.integers(0, 2**16),
       batch=st.integers(1, 80))
def test_property_rankings_are_permutations_and_control_share_holds(data, name, n, share, seed, batch):
    pool = make_pool(data)
    rows = np.random.default_rng(seed).choice(pool.n, n, replace=False)
    sub = Pool(X=pool.X[rows], probas={"sentiment": pool.probas["sentiment"][rows]}, models=pool.models,
               labeled_X=pool.labeled_X, labeled_y=pool.labeled_y)
    r = rank_pool(sub, SelectionParams(strategy=name, control_share=share, batch_size=batch),
                  np.random.default_rng(seed))
    assert is_permutation(r.order, n)
    is_random_pick = r.source[r.order] == RANDOM_PICK
    assert all(np.floor(h * share) <= is_random_pick[:h].sum() <= np.ceil(h * share) for h in range(n + 1))


def test_a_pool_scored_in_shards_ranks_from_its_projection(data):
    """Large pools arrive without features: only the projection ``Z`` (see worker/shards.py)."""
    pool = make_pool(data)
    from backend.selection import ranking

    Z, Z_labeled = ranking.project_with(pool.X, pool.labeled_X, 16, np.random.default_rng(0))
    Z = np.vstack([Z, Z[:2]])  # two exact twins
    probas = {"sentiment": np.vstack([pool.probas["sentiment"], np.full((2, 2), 0.5)])}
    sharded = Pool(X=None, Z=Z, labeled_Z=Z_labeled, probas=probas, models=pool.models,
                   labeled_X=pool.labeled_X, labeled_y=pool.labeled_y)
    for name in ALL:
        r = rank_pool(sharded, SelectionParams(strategy=name, batch_size=20), np.random.default_rng(0))
        assert is_permutation(r.order, sharded.n), name
    cold = rank_pool(Pool(X=None, Z=Z), SelectionParams(strategy="margin"), np.random.default_rng(0))
    assert is_permutation(cold.order, sharded.n)
    with pytest.raises(ValueError, match="neither"):
        Pool(X=None)


def test_the_first_place_is_a_control_as_often_as_any():
    """A random phase per ranking: with retraining after every label only the head is ever served."""
    order = np.arange(50)
    first = [selection_share(order, seed)[0] for seed in range(400)]
    assert 0.05 <= np.mean(first) <= 0.16  # share 0.1


def selection_share(order: np.ndarray, seed: int) -> np.ndarray:
    from backend.selection.strategies import with_control_share

    out, source = with_control_share(order, 0.1, np.random.default_rng(seed))
    return source[out] == RANDOM_PICK
