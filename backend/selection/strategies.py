"""Named selection strategies: from a pool and a model to one ranked queue.

This is the single entry point the worker (``worker/refresh.py``) and the
offline simulator (``al-backend simulate``) share, so a strategy measured in
simulation is exactly the one that orders a project's queue.  The pieces it
combines live elsewhere: per-task scores in ``backend/selection/scores.py``, the
geometry and the batch combination in ``backend/selection/ranking.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils.extmath import row_norms

from backend.learning.model import ChoicesClassifier, NotEnoughLabelsError
from backend.selection import ranking, scores

# Where a queue position came from (``Ranking.source``).
STRATEGY, RANDOM_PICK = 0, 1  # who placed a task: the strategy, or the random control share

DEFAULT_STRATEGY = "margin"  # measured: docs/label-efficiency.md
DEFAULT_CONTROL_SHARE = 0.1
DEDUP_WINDOW = 2000  # near-duplicates are looked for among the first tasks kept


@dataclass
class Pool:
    """What a strategy may look at: the unlabeled pool, the model, the labeled set.

    ``X`` holds the pool's hashed features (the geometry control's text),
    ``probas`` one probability matrix per trained control (rows aligned with
    ``X``), ``models`` the trained classifiers by control name, and
    ``labeled_X`` / ``labeled_y`` the labeled tasks of the geometry control
    (for strategies that retrain a committee or look at what is covered).

    A pool scored in shards has no ``X`` (``None``) but a precomputed
    projection ``Z`` (L2-normalised rows, one per task) and, if known, the
    labeled tasks in the same space (``labeled_Z``).  Without ``X`` the
    committee falls back to entropy, expected gradient length takes every
    row's norm as 1, and only near-exact twins (cosine >= 0.995 in ``Z``)
    count as near-duplicates.
    """

    X: sp.csr_matrix | None
    probas: dict[str, np.ndarray] = field(default_factory=dict)
    models: dict[str, ChoicesClassifier] = field(default_factory=dict)
    labeled_X: sp.csr_matrix | None = None
    labeled_y: list | None = None
    Z: np.ndarray | None = None
    labeled_Z: np.ndarray | None = None
    # Geometry and scores computed during one ranking (cleared by rank_pool).
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.X is None and self.Z is None:
            raise ValueError("a pool needs its features (X) or its projection (Z); got neither")

    @property
    def n(self) -> int:
        return self.X.shape[0] if self.X is not None else self.Z.shape[0]


@dataclass(frozen=True)
class SelectionParams:
    """How to order a project's queue (validated per project from ``extra_params``)."""

    strategy: str = DEFAULT_STRATEGY
    weights: dict[str, float] = field(default_factory=dict)
    batch_size: int = 100
    control_share: float = DEFAULT_CONTROL_SHARE
    # Near-duplicates (cosine >= this on the hashed features) leave the head; None: off.
    near_duplicate_threshold: float | None = 0.9
    # Only this many first positions will be read (the simulator asking for one batch): the
    # near-duplicate pass may stop early.  Those positions are the same as with None (checked).
    head: int | None = None


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


def _multiple(model) -> bool:
    """Whether a control's model answers several yes/no questions per task (multiple choice).

    A model without the attribute (a regressor, whose probability rows are
    its task type's ``as_probabilities`` view) answers one.
    """
    return bool(getattr(model, "multiple", False))


def mean_uncertainty(models: dict[str, ChoicesClassifier], probas: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Mean margin uncertainty over the trained controls (the default's utility).

    Also what ``/predict`` uses to place a task the worker has not ranked,
    so it must stay cheap: one pass over each probability matrix.
    """
    parts = [
        scores.multilabel_margin_uncertainty(p) if _multiple(models[c]) else scores.margin_uncertainty(p)
        for c, p in probas.items()
        if c in models
    ]
    return np.mean(parts, axis=0) if parts else np.zeros(n)


# -- shared, per-call geometry ----------------------------------------------

N_COMPONENTS = 32  # width of the projection used for clusters, density and diversity
COMMITTEE_SIZE = 5  # bagged models in the committee
DEFAULT_HYBRID_WEIGHTS = {"margin": 1.0, "density": 0.5}


def _projection(pool: Pool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """The pool (and labeled tasks) in one low-dimensional projection, computed once per ranking."""
    c = pool._cache
    if "Z" not in c:
        if pool.Z is not None:
            c["Z"], c["Z_labeled"] = np.asarray(pool.Z), pool.labeled_Z
        else:
            c["Z"], c["Z_labeled"] = ranking.project_with(pool.X, pool.labeled_X, N_COMPONENTS, rng)
    return c["Z"], c["Z_labeled"]


def _clusters(pool: Pool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k-means labels and centers of the projection (about sqrt(n) clusters, at most 100)."""
    c = pool._cache
    if "labels" not in c:
        Z, _ = _projection(pool, rng)
        n_clusters = int(np.clip(round(np.sqrt(pool.n)), 1, 100))
        c["labels"], c["centers"] = ranking.cluster(Z, n_clusters, rng)
    return c["labels"], c["centers"]


def _geometry(pool: Pool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Z, _ = _projection(pool, rng)
    labels, centers = _clusters(pool, rng)
    return Z, labels, centers


def _no_clusters(pool: Pool) -> np.ndarray:
    return np.full(pool.n, -1, dtype=np.int64)


# -- per-task scores over every trained control -------------------------------

def _per_control(pool: Pool, score: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Mean over trained controls of ``score``, each divided by its value at a uniform distribution.

    So a 2-label and a 5-label control weigh the same (entropy's maximum is
    ``log K``), and multiple choice is scored label by label.
    """
    parts = []
    for name, proba in pool.probas.items():
        model = pool.models.get(name)
        if model is None:
            continue
        if _multiple(model):
            values = scores.per_label_mean(score, proba)
            top = float(score(np.full((1, 2), 0.5))[0])
        else:
            values = score(proba)
            k = proba.shape[1]
            top = float(score(np.full((1, k), 1.0 / k))[0]) if k else 0.0
        parts.append(values / top if top > 0 else np.zeros(pool.n))
    return np.mean(parts, axis=0) if parts else np.zeros(pool.n)


def _margin(pool: Pool, rng: np.random.Generator) -> np.ndarray:
    if "margin" not in pool._cache:
        pool._cache["margin"] = _per_control(pool, scores.margin_uncertainty)
    return pool._cache["margin"]


def _least_confidence(pool: Pool, rng: np.random.Generator) -> np.ndarray:
    return _per_control(pool, scores.least_confidence)


def _entropy(pool: Pool, rng: np.random.Generator) -> np.ndarray:
    return _per_control(pool, scores.entropy)


def _egl(pool: Pool, rng: np.random.Generator) -> np.ndarray:
    # Gradient w.r.t. (weights, intercept): ||(x, 1)|| = sqrt(||x||^2 + 1).
    sq = row_norms(pool.X, squared=True) if pool.X is not None else np.ones(pool.n)
    norms = np.sqrt(sq + 1.0)
    parts = []
    for name, proba in pool.probas.items():
        model = pool.models.get(name)
        if model is None:
            continue
        if _multiple(model):
            parts.append(scores.per_label_mean(lambda p: scores.expected_gradient_length(p, norms), proba))
        else:
            parts.append(scores.expected_gradient_length(proba, norms))
    return np.mean(parts, axis=0) if parts else np.zeros(pool.n)


def _committee(pool: Pool, rng: np.random.Generator) -> tuple[str, np.ndarray] | None:
    """Bagged refits of the geometry control's model: ``(control, (M, n, K) probabilities)``.

    Each member is a :class:`ChoicesClassifier` with the trained model's
    settings, fitted on a bootstrap sample of the labeled tasks (stratified
    by label for single choice, so every member knows every label); its
    probabilities are aligned to the trained model's labels.  ``None`` when
    there is no labeled set to resample, or when the geometry control is
    not a classifier (a regressor is a committee already: its
    ``as_probabilities`` view ranks by its members' spread).

    References
    ----------
    Abe & Mamitsuka (1998), "Query Learning Strategies Using Boosting and
    Bagging", ICML. https://dl.acm.org/doi/10.5555/645527.657478
    """
    if "committee" in pool._cache:
        return pool._cache["committee"]
    result = None
    names = [c for c in pool.probas if c in pool.models]
    if (names and isinstance(pool.models[names[0]], ChoicesClassifier) and pool.X is not None
            and pool.labeled_X is not None and pool.labeled_y and pool.labeled_X.shape[0] == len(pool.labeled_y)):
        control = names[0]  # the geometry control: its labeled set is the one in the pool
        model = pool.models[control]
        classes = {str(c): j for j, c in enumerate(model.classes_)}
        y = list(pool.labeled_y)
        n_labeled = len(y)
        if model.multiple:
            groups = [np.arange(n_labeled)]
        else:
            keys = np.asarray([str(v) for v in y])
            groups = [np.flatnonzero(keys == c) for c in np.unique(keys)]
        members = []
        for _ in range(COMMITTEE_SIZE):
            idx = np.concatenate([rng.choice(g, g.size, replace=True) for g in groups])
            try:
                member = clone(model).fit(  # the project's own estimator, unfitted
                    pool.labeled_X[idx], [y[i] for i in idx]
                )
            except NotEnoughLabelsError:
                continue
            proba = member.predict_proba(pool.X)
            aligned = np.zeros((pool.n, len(classes)))
            for j, c in enumerate(member.classes_):
                if str(c) in classes:
                    aligned[:, classes[str(c)]] = proba[:, j]
            members.append(aligned)
        if len(members) >= 2:
            result = (control, np.stack(members))
    pool._cache["committee"] = result
    return result


def _committee_score(pool: Pool, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Committee disagreement for the geometry control; other controls (no labeled set here) use entropy."""
    got = _committee(pool, rng)
    parts = []
    for name, proba in pool.probas.items():
        model = pool.models.get(name)
        if model is None:
            continue
        if got is not None and got[0] == name:
            P = got[1]
            multiple = _multiple(model)
            if kind == "vote":
                top = np.log(min(P.shape[0], 2 if multiple else max(P.shape[2], 1)))
                s = scores.vote_entropy(P, multiple=multiple)
                parts.append(s / top if top > 0 else np.zeros(pool.n))
            else:
                parts.append(scores.mean_kl_to_consensus(P, multiple=multiple))
        else:
            parts.append(_per_control(Pool(X=pool.X, Z=pool.Z, probas={name: proba}, models={name: model}),
                                  scores.entropy))
    return np.mean(parts, axis=0) if parts else np.zeros(pool.n)


def _vote(pool: Pool, rng: np.random.Generator) -> np.ndarray:
    return _committee_score(pool, rng, "vote")


def _kl(pool: Pool, rng: np.random.Generator) -> np.ndarray:
    return _committee_score(pool, rng, "kl")


def _density(pool: Pool, rng: np.random.Generator) -> np.ndarray:
    Z, labels, centers = _geometry(pool, rng)
    sizes = np.bincount(labels, minlength=len(centers)).astype(np.float64)
    return scores.information_density(Z, centers, sizes)


def _typicality(pool: Pool, rng: np.random.Generator) -> np.ndarray:
    if "typicality" not in pool._cache:
        Z, labels, _ = _geometry(pool, rng)
        pool._cache["typicality"] = scores.knn_typicality(Z, labels, rng)
    return pool._cache["typicality"]


def _novelty(pool: Pool, rng: np.random.Generator) -> np.ndarray:
    Z, Z_labeled = _projection(pool, rng)
    return ranking.novelty(Z, Z_labeled)


# score name -> function(pool, rng) -> one value per pool row, higher = ask sooner.
# These are the keys of ``SelectionParams.weights`` (the hybrid strategy).
SCORES: dict[str, Callable[[Pool, np.random.Generator], np.ndarray]] = {
    "margin": _margin,
    "least-confidence": _least_confidence,
    "entropy": _entropy,
    "egl": _egl,
    "committee-vote": _vote,
    "committee-kl": _kl,
    "density": _density,
    "typicality": _typicality,
    "novelty": _novelty,
}


# -- strategies ------------------------------------------------------------------

Order = tuple[np.ndarray, np.ndarray]


def _cold_start(pool: Pool, rng: np.random.Generator) -> Order:
    """Before any model: the most typical tasks of every cluster first (TypiClust-style), outliers last.

    Clusters that already hold labeled tasks count those as their first
    places, so clusters nobody labeled come first; tasks alone in their
    cluster (typicality 0) go to the end.
    """
    Z, labels, centers = _geometry(pool, rng)
    typ = _typicality(pool, rng)
    covered = None
    _, Z_labeled = _projection(pool, rng)
    if Z_labeled is not None and Z_labeled.shape[0]:
        # Nearest center of each labeled task: argmin of |c|^2 - 2 z.c (|z|^2 is the same for every center).
        nearest = np.argmin((centers**2).sum(axis=1)[None, :] - 2.0 * Z_labeled @ centers.T, axis=1)
        covered = np.bincount(nearest, minlength=len(centers))
    order = ranking.cluster_coverage_order(typ, labels, covered)
    alone = typ[order] <= 0
    return np.concatenate([order[~alone], order[alone]]), labels


def _by_score(score: Callable[[Pool, np.random.Generator], np.ndarray], *, margin_tiebreak: bool = True):
    """A strategy that sorts by one score (margin breaks ties), cold start before any model."""

    def strategy(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Order:
        if not pool.models:
            return _cold_start(pool, rng)
        utility = score(pool, rng)
        tiebreak = _margin(pool, rng) if margin_tiebreak else None
        return ranking.order_by(utility, tiebreak=tiebreak, rng=rng), _no_clusters(pool)

    strategy.__doc__ = f"Sort by {score.__name__.strip('_')} (highest first; margin breaks ties)."
    return strategy


def _margin_coverage(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Order:
    """Margin uncertainty, visited cluster by cluster (typical tasks first before any model)."""
    if not pool.models:
        return _cold_start(pool, rng)
    _, labels, _ = _geometry(pool, rng)
    return ranking.cluster_coverage_order(_margin(pool, rng), labels), labels


def _random(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Order:
    """Uniformly random order: the baseline every strategy is measured against."""
    return rng.permutation(pool.n), _no_clusters(pool)


def _density_weighted(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Order:
    """Margin x information density: uncertain tasks where the pool is dense; outliers sink."""
    if not pool.models:
        return _cold_start(pool, rng)
    utility = _margin(pool, rng) * _density(pool, rng)
    labels, _ = _clusters(pool, rng)
    return ranking.order_by(utility, rng=rng), labels


def _kcenter(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Order:
    """k-center greedy core-set for the first ``batch_size`` tasks (from the labeled ones), then by margin."""
    if not pool.models:
        return _cold_start(pool, rng)
    Z, Z_labeled = _projection(pool, rng)
    head = ranking.kcenter_greedy(Z, min(params.batch_size, pool.n), labeled=Z_labeled)
    return ranking.head_then_rest(head, _margin(pool, rng), rng), _no_clusters(pool)


def _ranked_batch(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Order:
    """Cardoso et al.'s ranked batch (margin vs. distance to labeled and chosen) for the head, then by margin."""
    if not pool.models:
        return _cold_start(pool, rng)
    Z, Z_labeled = _projection(pool, rng)
    utility = _margin(pool, rng)
    head = ranking.ranked_batch(Z, utility, min(params.batch_size, pool.n), labeled=Z_labeled)
    return ranking.head_then_rest(head, utility, rng), _no_clusters(pool)


def _badge(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Order:
    """BADGE: k-means++ over gradient embeddings for the head, then by margin.

    The gradient embedding uses the first trained control (the geometry
    control) and the pool's projection in place of its features; a
    multiple-choice control counts each label as a yes/no question.
    """
    if not pool.models:
        return _cold_start(pool, rng)
    Z, _ = _projection(pool, rng)
    name = next(c for c in pool.probas if c in pool.models)
    proba = pool.probas[name]
    if _multiple(pool.models[name]):
        G = np.hstack([scores.gradient_embedding(np.column_stack([1.0 - p, p]), Z) for p in proba.T])
    else:
        G = scores.gradient_embedding(proba, Z)
    head = ranking.kmeanspp_batch(G, min(params.batch_size, pool.n), rng)
    return ranking.head_then_rest(head, _margin(pool, rng), rng), _no_clusters(pool)


def _typiclust(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Order:
    """Typical tasks of every cluster, uncovered clusters first, whether or not a model exists."""
    return _cold_start(pool, rng)


def _hybrid(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Order:
    """Weighted sum of rank-normalised scores (``params.weights``)."""
    if not pool.models:
        return _cold_start(pool, rng)
    weights = check_weights(params.weights) or dict(DEFAULT_HYBRID_WEIGHTS)
    scores = {name: SCORES[name](pool, rng) for name, w in weights.items() if w > 0}
    utility = ranking.weighted_rank_sum(scores, weights)
    clusters = pool._cache.get("labels", _no_clusters(pool))
    return ranking.order_by(utility, tiebreak=_margin(pool, rng), rng=rng), clusters


# name -> function(pool, params, rng) -> (order, clusters)
STRATEGIES: dict[str, Callable[[Pool, SelectionParams, np.random.Generator], Order]] = {
    "margin-coverage": _margin_coverage,
    "random": _random,
    "least-confidence": _by_score(_least_confidence),
    "margin": _by_score(_margin, margin_tiebreak=False),
    "entropy": _by_score(_entropy),
    "egl": _by_score(_egl),
    "committee-vote": _by_score(_vote),
    "committee-kl": _by_score(_kl),
    "density": _density_weighted,
    "kcenter": _kcenter,
    "ranked-batch": _ranked_batch,
    "badge": _badge,
    "typiclust": _typiclust,
    "hybrid": _hybrid,
}


def check_weights(weights: dict[str, float] | None) -> dict[str, float]:
    """Validate hybrid weights: known score names, finite, non-negative, not all zero.

    Returns them as floats (empty stays empty: the hybrid then uses
    ``DEFAULT_HYBRID_WEIGHTS``).  Raises ``ValueError`` naming the problem
    and the allowed keys.
    """
    weights = dict(weights or {})
    allowed = ", ".join(SCORES)
    unknown = sorted(set(weights) - set(SCORES))
    if unknown:
        raise ValueError(f"unknown score name(s) {', '.join(map(repr, unknown))} in weights; allowed: {allowed}")
    out = {}
    for name, w in weights.items():
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise ValueError(f"weight of {name!r} must be a number, got {w!r}") from None
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {w}")
        out[name] = w
    if out and sum(out.values()) <= 0:
        raise ValueError(f"weights are all zero; give at least one score a positive weight (allowed: {allowed})")
    return out


def with_control_share(order: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Interleave uniformly random tasks into ``order``: ``share`` of every prefix, give or take one.

    Position ``i`` goes to the control share when ``floor((i+1)*share + u)``
    steps up, with one random phase ``u ~ U(0, 1)`` per ranking: any head of
    length ``h`` holds ``floor(h*share)`` or ``ceil(h*share)`` random tasks,
    spread evenly, and every position, the first included, is a control with
    probability ``share``.  The phase matters when a project retrains after
    every label and only the first tasks of each ranking are ever served.
    The random tasks are drawn uniformly from the whole pool, so the labels
    they get form an unbiased sample to measure the model on.
    """
    n = order.shape[0]
    source = np.full(n, STRATEGY, dtype=np.int8)
    if n == 0 or share <= 0:
        return order, source
    positions = np.arange(n)
    u = rng.random()
    is_random_pick = np.floor((positions + 1) * share + u) > np.floor(positions * share + u)
    k = int(is_random_pick.sum())
    picked = rng.choice(n, size=k, replace=False)
    taken = np.zeros(n, dtype=bool)
    taken[picked] = True
    rest = order[~taken[order]]  # the strategy's order without the picked tasks
    out = np.empty(n, dtype=np.int64)
    out[is_random_pick] = picked
    out[~is_random_pick] = rest
    source[picked] = RANDOM_PICK
    return out, source


def _collapse(pool: Pool, order: np.ndarray, threshold: float, window: int) -> np.ndarray:
    chunk = min(512, window)  # the tasks kept first do not depend on it; a small window reads few rows
    if pool.X is not None:
        # Dense rows (embeddings, images, numbers) are compared around the pool's mean (see collapse_near_duplicates).
        centre = None if sp.issparse(pool.X) else np.asarray(pool.X.mean(axis=0), dtype=np.float32)
        return ranking.collapse_near_duplicates(order, pool.X, threshold=threshold, window=window, chunk=chunk,
                                                centre=centre)[0]
    # only the projection is at hand: near-exact twins only
    return ranking.collapse_near_duplicates(order, np.asarray(pool.Z), threshold=max(threshold, 0.995),
                                            window=window, chunk=chunk)[0]


def rank_pool(pool: Pool, params: SelectionParams, rng: np.random.Generator) -> Ranking:
    """Order the pool by ``params.strategy`` and mix in the control share.

    Every strategy but ``random`` then has its near-duplicates collapsed:
    of a group of near-identical tasks only the best-placed stays in the
    head, the others move to the end (the group's label will reach them
    through the retrained model).
    """
    if params.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {params.strategy!r}; known: {', '.join(sorted(STRATEGIES))}")
    if not isinstance(params.batch_size, (int, np.integer)) or params.batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {params.batch_size!r}")
    if not 0.0 <= params.control_share <= 1.0:
        raise ValueError(f"control_share must be in [0, 1], got {params.control_share!r}")
    if params.head is not None and (not isinstance(params.head, (int, np.integer)) or params.head < 1):
        raise ValueError(f"head must be None or an integer >= 1, got {params.head!r}")
    check_weights(params.weights)
    if pool.n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Ranking(order=empty, source=np.zeros(0, dtype=np.int8), clusters=empty)
    pool._cache.clear()
    try:
        order, clusters = STRATEGIES[params.strategy](pool, params, rng)
    finally:
        pool._cache.clear()
    order = np.asarray(order, dtype=np.int64)
    if params.strategy == "random" or params.near_duplicate_threshold is None:
        order, source = with_control_share(order, params.control_share, rng)
    else:
        full = max(DEDUP_WINDOW, 2 * params.batch_size)
        state = rng.bit_generator.state
        window = full if params.head is None else min(full, 2 * params.head + 16)
        while True:
            deduped = _collapse(pool, order, params.near_duplicate_threshold, window)
            out, source = with_control_share(deduped, params.control_share, rng)
            # Exact when the tasks kept before the window stops, less the random picks among them,
            # fill every strategy position of the head; else once more with the full window.
            if window >= full or window - np.count_nonzero(source[deduped[:window]] == RANDOM_PICK) >= params.head:
                order = out
                break
            rng.bit_generator.state, window = state, full
    n_clusters = int(clusters.max()) + 1 if clusters.size and clusters.max() >= 0 else 0
    return Ranking(order=order, source=source, clusters=clusters, n_clusters=n_clusters)
