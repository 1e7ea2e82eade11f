"""Strategies and the queue order: known answers on fixed arrays."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from backend.selection import ranking, scores


def test_margin_known_answers():
    u = scores.margin_uncertainty(np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.7, 0.2, 0.1]]))
    assert np.allclose(u, [1.0, 0.0, 0.5])


def test_multilabel_margin_known_answers():
    u = scores.multilabel_margin_uncertainty(np.array([[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]]))
    assert np.allclose(u, [1.0, 0.0, 0.5])


@pytest.mark.parametrize("bad", [np.array([0.5, 0.5]), np.array([[np.nan, 0.5]])])
def test_bad_probabilities_are_refused(bad):
    with pytest.raises(ValueError):
        scores.margin_uncertainty(bad)


def test_centroid_similarity_sinks_outliers():
    X = sp.csr_matrix(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]))
    s = scores.centroid_similarity(X, np.array([1.0, 0.05]))
    assert s.argmin() == 2 and s.argmax() == 0


def test_cluster_coverage_visits_every_cluster_first():
    utility = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2])
    labels = np.array([0, 0, 0, 0, 1, 1])
    order = ranking.cluster_coverage_order(utility, labels)
    assert sorted(order.tolist()) == list(range(6))
    # The best task of each cluster comes before the second-best of any.
    assert set(order[:2].tolist()) == {0, 5}
    # Inside a cluster, more useful first.
    pos = {t: i for i, t in enumerate(order)}
    assert pos[0] < pos[1] < pos[2] < pos[3] and pos[5] < pos[4]


def test_queue_scores_follow_the_order():
    order = np.array([2, 0, 1])
    assert np.allclose(ranking.queue_scores(order), [1 / 3, 2 / 3, 0.0])


def test_live_score_places_tasks_among_the_ranked():
    q = ranking.utility_quantiles(np.linspace(0, 1, 1001))
    s = ranking.live_score(np.array([1.0, 0.5, 0.0]), q)
    assert s[0] < 0.01 and abs(s[1] - 0.5) < 0.01 and s[2] > 0.99
    assert np.allclose(ranking.live_score(np.array([0.3]), np.zeros(0)), [0.5])


def test_cold_start_ranking_prefers_typical_tasks_of_every_cluster():
    rng = np.random.default_rng(0)
    a = rng.normal([5, 0, 0], 0.3, size=(40, 3))
    b = rng.normal([0, 5, 0], 0.3, size=(40, 3))
    outliers = np.array([[3, 3, 9.0], [-4, 4, -9.0]])
    X = sp.csr_matrix(np.abs(np.vstack([a, b, outliers])))
    Z = ranking.project(X, 3, rng)
    labels, centers = ranking.cluster(Z, 2, rng)
    typ = scores.centroid_typicality(Z, labels, centers)
    order = ranking.cluster_coverage_order(typ, labels)
    head = order[:10]
    assert {int(labels[i]) for i in head} == {0, 1}  # diverse: both clusters
    assert not set(head.tolist()) & {80, 81}  # not the outliers
    assert set(order[-6:].tolist()) & {80, 81}  # outliers sink to the end
