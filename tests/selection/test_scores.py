"""Scores and batch combinations: known answers on fixed arrays, bad input, properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from backend.selection import ranking, scores

LOG2 = np.log(2.0)


# -- uncertainty ---------------------------------------------------------------

@pytest.mark.parametrize("k", [2, 3, 7])
def test_uniform_distribution_known_answers(k):
    u = np.full((1, k), 1.0 / k)
    assert np.allclose(scores.entropy(u), np.log(k))
    assert np.allclose(scores.least_confidence(u), 1 - 1 / k)
    assert np.allclose(scores.margin_uncertainty(u), 1.0)


@pytest.mark.parametrize("k", [2, 4])
def test_one_hot_known_answers(k):
    p = np.eye(k)
    assert np.allclose(1.0 - scores.margin_uncertainty(p), 1.0)  # the margin of a one-hot is 1
    assert np.allclose(scores.entropy(p), 0.0)
    assert np.allclose(scores.least_confidence(p), 0.0)
    assert np.allclose(scores.expected_gradient_length(p, np.ones(k)), 0.0)


def test_uncertainty_known_answers_on_a_mixed_row():
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    assert np.allclose(scores.least_confidence(p), [0.3, 0.5])
    assert np.allclose(scores.entropy(p), [-(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)), LOG2])


def test_per_label_mean_scores_each_label_as_a_binary_question():
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]])
    assert np.allclose(scores.per_label_mean(scores.margin_uncertainty, p),
                       scores.multilabel_margin_uncertainty(p))
    assert np.allclose(scores.per_label_mean(scores.entropy, np.array([[0.5, 1.0]])), LOG2 / 2)
    assert scores.per_label_mean(scores.entropy, np.zeros((3, 0))).tolist() == [0, 0, 0]


def test_one_class_only_gives_zero_uncertainty():
    p = np.ones((4, 1))
    for score in (scores.margin_uncertainty, scores.least_confidence, scores.entropy):
        assert np.allclose(score(p), 0.0)


@pytest.mark.parametrize("score", [scores.least_confidence, scores.entropy, scores.margin_uncertainty])
@pytest.mark.parametrize("bad", [np.array([0.5, 0.5]), np.array([[np.nan, 0.5]]), np.array([[np.inf, 0.0]])])
def test_bad_probabilities_are_refused(score, bad):
    with pytest.raises(ValueError, match="probabilities"):
        score(bad)


def test_empty_pool_gives_empty_scores():
    p = np.zeros((0, 3))
    for score in (scores.least_confidence, scores.entropy, scores.margin_uncertainty):
        assert score(p).shape == (0,)
    assert scores.expected_gradient_length(p, np.zeros(0)).shape == (0,)
    assert scores.vote_entropy(np.zeros((3, 0, 2))).shape == (0,)


# -- disagreement ----------------------------------------------------------------

def test_vote_entropy_known_answers():
    agree = np.array([[[0.9, 0.1]], [[0.6, 0.4]], [[0.8, 0.2]]])
    assert np.allclose(scores.vote_entropy(agree), 0.0)
    split = np.array([[[0.9, 0.1, 0.0]], [[0.2, 0.8, 0.0]], [[0.9, 0.1, 0.0]], [[0.1, 0.9, 0.0]]])
    assert np.allclose(scores.vote_entropy(split), LOG2)  # two votes each for two labels
    three = np.stack([np.eye(3)[[i]] for i in range(3)])  # every member votes for another label
    assert np.allclose(scores.vote_entropy(three), np.log(3))


def test_vote_entropy_multilabel_averages_per_label_votes():
    # Label 0: the members disagree (yes / no); label 1: both say no.
    P = np.array([[[0.9, 0.1]], [[0.2, 0.1]]])
    assert np.allclose(scores.vote_entropy(P, multiple=True), LOG2 / 2)


def test_mean_kl_known_answers():
    same = np.array([[[0.3, 0.7]], [[0.3, 0.7]]])
    assert np.allclose(scores.mean_kl_to_consensus(same), 0.0)
    opposite = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # consensus (0.5, 0.5): KL = log 2 each
    assert np.allclose(scores.mean_kl_to_consensus(opposite), LOG2, atol=1e-6)
    # It sees disagreement that does not change any vote.
    soft = np.array([[[0.55, 0.45]], [[0.95, 0.05]]])
    assert scores.vote_entropy(soft)[0] == 0.0 and scores.mean_kl_to_consensus(soft)[0] > 0.05


def test_mean_kl_multilabel():
    P = np.array([[[1.0, 0.3]], [[0.0, 0.3]]])
    assert np.allclose(scores.mean_kl_to_consensus(P, multiple=True), LOG2 / 2, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((2, 3)), np.zeros((0, 3, 2)), np.full((2, 1, 2), np.nan)])
def test_committee_bad_input_is_refused(bad):
    with pytest.raises(ValueError, match="committee"):
        scores.vote_entropy(bad)
    with pytest.raises(ValueError, match="committee"):
        scores.mean_kl_to_consensus(bad)


# -- expected gradient length ------------------------------------------------------

def test_egl_known_answers():
    # Uniform binary: sum_y 0.5 * ||e_y - p|| = sqrt(0.5); linear in the feature norm.
    p = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    assert np.allclose(scores.expected_gradient_length(p, np.array([1.0, 2.0, 0.0])),
                       [np.sqrt(0.5), 2 * np.sqrt(0.5), 0.0])
    # Three labels, uniform: ||e_y - p|| = sqrt(1 - 2/3 + 1/3) = sqrt(2/3).
    u3 = np.full((1, 3), 1 / 3)
    assert np.allclose(scores.expected_gradient_length(u3, np.ones(1)), np.sqrt(2 / 3))


def test_egl_checks_the_norms():
    with pytest.raises(ValueError, match="one norm per task"):
        scores.expected_gradient_length(np.full((2, 2), 0.5), np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        scores.expected_gradient_length(np.full((1, 2), 0.5), np.array([np.nan]))


# -- representativeness --------------------------------------------------------------

def test_information_density_known_answers():
    centers = np.array([[0.0, 0.0], [3.0, 0.0]])
    Z = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    d = scores.information_density(Z, centers[:1])
    assert np.allclose(d, [1.0, 0.5, 1 / 11])
    # Weighted by cluster size: the big cluster's members are denser than the small one's.
    w = scores.information_density(centers, centers, np.array([9.0, 1.0]))
    assert np.allclose(w, [0.9 + 0.1 / 4, 0.9 / 4 + 0.1])
    assert w[0] > w[1]


@pytest.mark.parametrize("ref, weights", [(np.zeros((0, 2)), None), (np.zeros((2, 2)), np.array([-1.0, 1.0])),
                                          (np.zeros((2, 3)), None)])
def test_information_density_bad_input(ref, weights):
    with pytest.raises(ValueError):
        scores.information_density(np.zeros((3, 2)), ref, weights)


def test_knn_typicality_prefers_dense_tasks_and_zeroes_singletons():
    rng = np.random.default_rng(0)
    blob = rng.normal(0, 0.1, size=(50, 2))
    Z = np.vstack([blob, [[2.0, 2.0]], [[9.0, 9.0]]])
    labels = np.array([0] * 51 + [1])
    t = scores.knn_typicality(Z, labels, rng, k=5)
    assert t[50] < t[:50].min()  # the far member of cluster 0 is its least typical
    assert t[51] == 0.0  # alone in its cluster
    center_most = np.argmin(np.linalg.norm(blob, axis=1))
    assert t[center_most] > np.median(t[:50])


def test_knn_typicality_samples_references_in_large_clusters():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(600, 3))
    t = scores.knn_typicality(Z, np.zeros(600, dtype=int), np.random.default_rng(2), k=5, max_ref=50)
    assert np.all(np.isfinite(t)) and np.all(t > 0)
    with pytest.raises(ValueError):
        scores.knn_typicality(Z, np.zeros(5, dtype=int), rng)


# -- combination -----------------------------------------------------------------------

def test_order_by_breaks_ties_by_tiebreak_then_rng():
    u = np.array([0.5, 0.9, 0.5, 0.5])
    order = ranking.order_by(u, tiebreak=np.array([0.1, 0.0, 0.3, 0.2]))
    assert order.tolist() == [1, 2, 3, 0]
    a = ranking.order_by(np.zeros(50), rng=np.random.default_rng(0))
    b = ranking.order_by(np.zeros(50), rng=np.random.default_rng(0))
    assert a.tolist() == b.tolist() and a.tolist() != list(range(50))


def test_rank_normalise_and_weighted_sum():
    assert np.allclose(ranking.rank_normalise(np.array([10.0, -1.0, 3.0])), [1.0, 0.0, 0.5])
    assert np.allclose(ranking.rank_normalise(np.array([2.0, 2.0])), [0.5, 0.5])
    s = ranking.weighted_rank_sum({"a": np.array([1.0, 2.0, 3.0]), "b": np.array([3.0, 2.0, 1.0])},
                                  {"a": 3.0, "b": 1.0})
    assert np.allclose(s, [0.25, 0.5, 0.75])
    with pytest.raises(ValueError, match="positive weight"):
        ranking.weighted_rank_sum({"a": np.ones(2)}, {"a": 0.0})


def test_kcenter_greedy_known_answer_on_a_line():
    Z = np.arange(11, dtype=float)[:, None]  # points 0..10
    picked = ranking.kcenter_greedy(Z, 3, labeled=np.array([[0.0]]))
    assert picked.tolist() == [10, 5, 2]  # farthest, then the middle, then the middle of the larger gap
    # Without labeled tasks it starts at the point nearest the mean, then goes to an end.
    assert ranking.kcenter_greedy(Z, 2).tolist()[0] == 5
    assert ranking.kcenter_greedy(Z, 2).tolist()[1] in (0, 10)


def test_kcenter_greedy_bounds_and_duplicates():
    Z = np.zeros((4, 2))  # all-identical features: still distinct picks
    assert sorted(ranking.kcenter_greedy(Z, 4).tolist()) == [0, 1, 2, 3]
    assert ranking.kcenter_greedy(Z, 0).shape == (0,)
    with pytest.raises(ValueError, match="pool of 4 tasks"):
        ranking.kcenter_greedy(Z, 5)
    with pytest.raises(ValueError, match="NaN"):
        ranking.kcenter_greedy(np.full((3, 2), np.nan), 1)


def test_ranked_batch_trades_uncertainty_for_dissimilarity():
    Z = np.array([[0.0], [0.1], [5.0], [10.0]])
    u = np.array([1.0, 0.99, 0.8, 0.1])
    labeled = np.array([[20.0]])
    assert ranking.ranked_batch(Z, u, 2, labeled=labeled, alpha=0.0).tolist() == [0, 1]  # pure uncertainty
    assert ranking.ranked_batch(Z, u, 2, labeled=labeled, alpha=1.0).tolist() == [0, 3]  # pure exploration
    # Balanced: the second pick avoids the near-twin of the first.
    assert ranking.ranked_batch(Z, u, 2, labeled=labeled, alpha=0.5).tolist() == [0, 2]
    # The paper's schedule (alpha = |U| / (|U| + |L|)) and no labeled set give a full permutation.
    assert sorted(ranking.ranked_batch(Z, u, 4).tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        ranking.ranked_batch(Z, u, 5)
    with pytest.raises(ValueError, match="alpha"):
        ranking.ranked_batch(Z, u, 1, alpha=2.0)


def test_gradient_embedding_known_answer():
    proba = np.array([[0.7, 0.3], [0.2, 0.8]])
    Z = np.array([[1.0, 2.0], [3.0, 0.0]])
    G = scores.gradient_embedding(proba, Z)
    # (p - e_yhat) (x) z: row 0 guesses class 0 -> (-0.3, 0.3) (x) (1, 2);
    # row 1 guesses class 1 -> (0.2, -0.2) (x) (3, 0).
    assert np.allclose(G, [[-0.3, -0.6, 0.3, 0.6], [0.6, 0.0, -0.6, 0.0]])
    with pytest.raises(ValueError, match="same number"):
        scores.gradient_embedding(proba, Z[:1])


def test_kmeanspp_batch_starts_longest_then_spreads():
    # Two far groups; the longest row is in group A; D^2 odds make the second pick almost surely in group B.
    G = np.array([[10.0, 0.0], [9.9, 0.1], [9.8, 0.0], [0.0, 1.0], [0.1, 1.1]])
    for seed in range(20):
        picked = ranking.kmeanspp_batch(G, 2, np.random.default_rng(seed))
        assert picked[0] == 0
        assert picked[1] in (3, 4)
    # Identical rows: odds 0 after the first, the rest by length, still distinct.
    same = np.ones((4, 3))
    assert sorted(ranking.kmeanspp_batch(same, 4, np.random.default_rng(0)).tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="pool of 5 tasks"):
        ranking.kmeanspp_batch(G, 6, np.random.default_rng(0))


def test_head_then_rest():
    order = ranking.head_then_rest(np.array([3, 0]), np.array([0.0, 0.5, 0.9, 0.1]))
    assert order.tolist() == [3, 0, 2, 1]


def test_novelty_is_distance_to_labeled():
    Z = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert np.allclose(ranking.novelty(Z, np.array([[0.0, 0.0]])), [0.0, 5.0])
    assert np.allclose(ranking.novelty(Z, None), [1.0, 1.0])


def test_cluster_coverage_counts_labeled_tasks_as_taken_places():
    utility = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([0, 0, 1, 1])
    free = ranking.cluster_coverage_order(utility, labels)
    assert set(free[:2].tolist()) == {0, 2}
    covered = ranking.cluster_coverage_order(utility, labels, covered=np.array([5, 0]))
    assert covered[:2].tolist() == [2, 3]  # cluster 1 has no labels yet: it goes first


def test_collapse_near_duplicates_keeps_one_of_each_group():
    rows = np.array([[1, 0, 0], [1, 0.01, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0.02]], dtype=float)
    X = sp.csr_matrix(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    order, n_demoted = ranking.collapse_near_duplicates(np.arange(6), X, threshold=0.95, chunk=2)
    assert order.tolist() == [0, 2, 4, 1, 3, 5] and n_demoted == 3
    # Dense rows work too; a window stops the scan.
    order, n_demoted = ranking.collapse_near_duplicates(np.arange(6), X.toarray(), threshold=0.95, window=1, chunk=2)
    assert order.tolist() == [0, 2, 3, 4, 5, 1] and n_demoted == 1
    assert ranking.collapse_near_duplicates(np.zeros(0, dtype=int), X)[0].shape == (0,)
    with pytest.raises(ValueError, match="threshold"):
        ranking.collapse_near_duplicates(np.arange(6), X, threshold=0)


def test_project_with_maps_extra_rows_into_the_same_space():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(np.abs(rng.normal(size=(40, 6))))
    Z, Ze = ranking.project_with(X, X[:5], 3, np.random.default_rng(1))
    assert Z.shape == (40, 3) and np.allclose(Z[:5], Ze, atol=1e-5)
    Z1 = ranking.project(X, 3, np.random.default_rng(1))
    assert np.allclose(Z, Z1)
    # All-identical features: a defined (finite) projection.
    same = sp.csr_matrix(np.ones((10, 4)))
    assert np.all(np.isfinite(ranking.project(same, 3, rng)))


# -- properties ----------------------------------------------------------------------------

def _probas(draw_rows: np.ndarray) -> np.ndarray:
    w = np.abs(draw_rows) + 1e-12
    return w / w.sum(axis=1, keepdims=True)


proba_arrays = st.integers(1, 6).flatmap(
    lambda k: arrays(np.float64, st.tuples(st.integers(0, 30), st.just(k)),
                     elements=st.floats(0, 1e6, allow_nan=False, allow_infinity=False)).map(_probas)
)


@settings(max_examples=60, deadline=None)
@given(proba_arrays)
def test_uncertainty_scores_are_finite_and_bounded(p):
    k = p.shape[1]
    for score, top in ((scores.margin_uncertainty, 1.0), (scores.least_confidence, 1 - 1 / k),
                       (scores.entropy, np.log(k))):
        s = score(p)
        assert s.shape == (p.shape[0],) and np.all(np.isfinite(s))
        assert np.all(s >= -1e-9) and np.all(s <= top + 1e-9)
    egl = scores.expected_gradient_length(p, np.ones(p.shape[0]))
    assert np.all(np.isfinite(egl)) and np.all(egl >= 0)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5).flatmap(lambda m: st.lists(proba_arrays.filter(lambda p: p.shape[0] > 0), min_size=m,
                                                    max_size=m)))
def test_committee_scores_are_finite_and_non_negative(members):
    n, k = members[0].shape
    P = np.stack([m[:n, :] if m.shape == (n, k) else members[0] for m in members])
    for s in (scores.vote_entropy(P), scores.mean_kl_to_consensus(P)):
        assert s.shape == (n,) and np.all(np.isfinite(s)) and np.all(s >= 0)
    assert np.all(scores.vote_entropy(P) <= np.log(max(min(P.shape[0], k), 1)) + 1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 4), st.integers(0, 2**31 - 1), st.data())
def test_batches_are_distinct_positions(n, dim, seed, data):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, dim)).round(data.draw(st.integers(0, 3)))  # rounding makes duplicates
    k = data.draw(st.integers(0, n))
    labeled = rng.normal(size=(data.draw(st.integers(0, 3)), dim))
    for picked in (ranking.kcenter_greedy(Z, k, labeled=labeled),
                   ranking.ranked_batch(Z, rng.random(n), k, labeled=labeled),
                   ranking.kmeanspp_batch(Z, k, rng)):
        assert len(picked) == k and len(set(picked.tolist())) == k and all(0 <= i < n for i in picked)
    order = ranking.order_by(rng.random(n).round(1), rng=rng)
    assert sorted(order.tolist()) == list(range(n))


def test_k_larger_than_the_pool_is_capped_or_refused():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(5, 3))
    labels, centers = ranking.cluster(Z, 50, rng)  # 50 clusters asked, 5 tasks: at most 5
    assert len(centers) <= 5 and labels.shape == (5,) and labels.max() < len(centers)
    t = scores.knn_typicality(Z, np.zeros(5, dtype=int), rng, k=100)  # neighbours capped by the cluster
    assert np.all(np.isfinite(t)) and np.all(t > 0)
    with pytest.raises(ValueError, match="batch of 6 requested from a pool of 5"):
        ranking.ranked_batch(Z, np.ones(5), 6)
