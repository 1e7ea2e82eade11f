"""Named selection strategies: from a pool and a model to one ranked queue.

This is the single entry point the worker (``worker/refresh.py``) and the
offline simulator (``al-backend simulate``) share, so a strategy measured in
simulation is exactly the one that orders a project's queue.  The pieces it
combines live elsewhere: per-task scores in ``backend/strategies.py``, the
geometry and the batch combination in ``backend/ranking.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from backend import ranking, strategies
from backend.model import ChoicesClassifier

# Where a queue position came from (``Ranking.source``).
STRATEGY, CONTROL = 0, 1
SOURCE_NAMES = {STRATEGY: "strategy", CONTROL: "control"}

DEFAULT_STRATEGY = "margin-coverage"
DEFAULT_CONTROL_SHARE = 0.1


@dataclass
class Pool:
    """What a strategy may look at: the unlabeled pool, the model, the labeled set.

    ``X`` holds the pool's hashed features (the geometry control's text),
    ``probas`` one probability matrix per trained control (rows aligned with
    ``X``), ``models`` the trained classifiers by control name, and
    ``labeled_X`` / ``labeled_y`` the labeled tasks of the geometry control
    (for strategies that retrain a committee or look at what is covered).
    """

    X: sp.csr_matrix
    probas: dict[str, np.ndarray] = field(default_factory=dict)
    models: dict[str, ChoicesClassifier] = field(default_factory=dict)
    labeled_X: sp.csr_matrix | None = None
    labeled_y: list | None = None

    @property
    def n(self) -> int:
        return self.X.shape[0]


@dataclass(frozen=True)
class SelectionParams:
    """How to order a project's queue (validated per project from ``extra_params``)."""

    strategy: str = DEFAULT_STRATEGY
    weights: dict[str, float] = field(default_factory=dict)
    batch_size: int = 100
    control_share: float = DEFAULT_CONTROL_SHARE


@dataclass
class Ranking:
    """A ranked pool.

    ``order`` lists pool rows, first to annotate first; ``source`` says for
    each row whether the strategy or the random control share placed it;
    ``clusters`` is each row's cluster (-1 when none was computed).
    """

    order: np.ndarray
    source: np.ndarray
    clusters: np.ndarray
    n_clusters: int = 0

    def scores(self) -> np.ndarray:
        """Label Studio ``score`` per row (0 = annotate next)."""
        return ranking.queue_scores(self.order)


def mean_uncertainty(models: dict[str, ChoicesClassifier], probas: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Mean margin uncertainty over the trained controls (the default's utility).

    Also what ``/predict`` uses to place a task the worker has not ranked,
    so it must stay cheap: one pass over each probability matrix.
    """
    parts = [
        strategies.multilabel_margin_uncertainty(p) if models[c].multiple else strategies.margin_uncertainty(p)
        for c, p in probas.items()
        if c in models
    ]
    return np.mean(parts, axis=0) if parts else np.zeros(n)


def _geometry(pool: Pool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Z = ranking.project(pool.X, 32, rng)
    n_clusters = int(np.clip(round(np.sqrt(pool.n)), 1, 100))
    labels, centers = ranking.cluster(Z, n_clusters, rng)
    return Z, labels, centers


def _margin_coverage(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Margin uncertainty, visited cluster by cluster (typical tasks first before any model)."""
    Z, labels, centers = _geometry(pool, rng)
    utility = mean_uncertainty(pool.models, pool.probas, pool.n) if pool.models else strategies.centroid_typicality(Z, labels, centers)
    return ranking.cluster_coverage_order(utility, labels), labels


def _random(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random order: the baseline every strategy is measured against."""
    return rng.permutation(pool.n), np.full(pool.n, -1, dtype=np.int64)


# name -> function(pool, params, rng) -> (order, clusters)
STRATEGIES: dict[str, Callable[[Pool, SelectionParams, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "margin-coverage": _margin_coverage,
    "random": _random,
}


def with_control_share(order: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Interleave uniformly random tasks into ``order``: about ``share`` of every prefix.

    Position ``i`` goes to the control share when ``floor((i+1)*share)``
    steps up, so any head of the queue holds ``floor(len*share)`` random
    tasks, spread evenly.  The random tasks are drawn uniformly from the
    whole pool, so the labels they get form an unbiased sample to measure
    the model on.
    """
    n = order.shape[0]
    source = np.full(n, STRATEGY, dtype=np.int8)
    if n == 0 or share <= 0:
        return order, source
    positions = np.arange(n)
    is_control = np.floor((positions + 1) * share) > np.floor(positions * share)
    k = int(is_control.sum())
    picked = rng.choice(n, size=k, replace=False)
    taken = np.zeros(n, dtype=bool)
    taken[picked] = True
    rest = order[~taken[order]]  # the strategy's order without the picked tasks
    out = np.empty(n, dtype=np.int64)
    out[is_control] = picked
    out[~is_control] = rest
    source[picked] = CONTROL
    return out, source


def rank_pool(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Ranking:
    """Order the pool by ``params.strategy`` and mix in the control share."""
    if params.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {params.strategy!r}; known: {', '.join(sorted(STRATEGIES))}")
    if pool.n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Ranking(order=empty, source=np.zeros(0, dtype=np.int8), clusters=empty)
    order, clusters = STRATEGIES[params.strategy](pool, params, rng)
    order, source = with_control_share(np.asarray(order, dtype=np.int64), params.control_share, rng)
    n_clusters = int(clusters.max()) + 1 if clusters.size and clusters.max() >= 0 else 0
    return Ranking(order=order, source=source, clusters=clusters, n_clusters=n_clusters)
