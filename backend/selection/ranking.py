"""Combine per-task scores and a geometry into one ranked queue.

The queue Label Studio serves is sorted by ``score`` ascending, so the output
here is, for each task, the fraction of the pool ranked before it: 0 for the
next task to annotate, close to 1 for the last.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.preprocessing import normalize
from sklearn.random_projection import SparseRandomProjection
from threadpoolctl import threadpool_limits

RP_DIM = 256


@lru_cache(maxsize=4)
def random_projection(n_features: int, dim: int = RP_DIM) -> SparseRandomProjection:
    """A fixed (seeded) sparse random projection of the hashed space; built once per process."""
    return SparseRandomProjection(dim, dense_output=True, random_state=0).fit(
        sp.csr_matrix((1, n_features), dtype=np.float32)
    )


def project(X: sp.spmatrix, n_components: int, rng: np.random.Generator, *, fit_rows: int = 20_000) -> np.ndarray:
    """A low-dimensional, L2-normalised view of the hashed features (see :func:`project_with`)."""
    return project_with(X, None, n_components, rng, fit_rows=fit_rows)[0]


def project_with(X: sp.spmatrix, extra: sp.spmatrix | None, n_components: int, rng: np.random.Generator, *,
                 fit_rows: int = 20_000) -> tuple[np.ndarray, np.ndarray | None]:
    """A low-dimensional, L2-normalised view of the hashed features.

    Distances in 2^18 hashed dimensions are dominated by noise; a few dozen
    principal components keep the topical structure that clustering needs.
    A fixed sparse random projection to 256 dimensions first (distances are
    kept, Johnson-Lindenstrauss) makes the PCA cheap: for 100,000 tasks it
    takes well under a second where a truncated SVD of the sparse matrix
    takes six.  The PCA is fitted on at most ``fit_rows`` sampled rows of
    ``X``; ``extra`` rows (e.g. the labeled tasks) are mapped into the same
    space.

    References
    ----------
    Achlioptas (2003), "Database-friendly random projections",
    https://doi.org/10.1016/S0022-0000(03)00025-4
    """
    n = X.shape[0]
    k = int(min(n_components, n - 1, RP_DIM, X.shape[1]))
    n_extra = 0 if extra is None else extra.shape[0]
    if k < 1:
        return np.zeros((n, 1)), (None if extra is None else np.zeros((n_extra, 1)))

    Y = reduce_dim(X)
    sample = Y if n <= fit_rows else Y[rng.choice(n, fit_rows, replace=False)]
    with np.errstate(invalid="ignore", divide="ignore"):  # all-identical rows: zero variance is fine
        pca = PCA(n_components=k, svd_solver="randomized", random_state=int(rng.integers(2**31 - 1))).fit(sample)
    Z = normalize(pca.transform(Y))
    if extra is None:
        return Z, None
    return Z, (normalize(pca.transform(reduce_dim(extra))) if n_extra else np.zeros((0, k)))


def reduce_dim(X: sp.spmatrix | np.ndarray) -> np.ndarray:
    """Rows to at most ``RP_DIM`` dense float32 columns by the fixed random projection.

    Features of at most ``RP_DIM`` columns (dense embeddings) are already
    low-dimensional and are used as they are.
    """
    if not sp.issparse(X):
        X = np.asarray(X, dtype=np.float32)
        return X if X.shape[1] <= RP_DIM else np.asarray(random_projection(X.shape[1]).transform(X), dtype=np.float32)
    X = sp.csr_matrix(X, dtype=np.float32)
    if X.shape[1] <= RP_DIM:
        return X.toarray()
    return np.asarray(random_projection(X.shape[1]).transform(X), dtype=np.float32)


def cluster(
    Z: np.ndarray, n_clusters: int, rng: np.random.Generator, *, fit_rows: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """k-means labels and centers; ``n_clusters`` is capped by the pool size.

    Fitted on at most ``fit_rows`` sampled rows, then every row is assigned
    to its nearest center: a hundred centers are found as well from a
    sample of 100,000 as from a million rows, at a fifth of the cost.
    """
    n = Z.shape[0]
    k = int(max(1, min(n_clusters, n)))
    if k == 1:
        return np.zeros(n, dtype=np.int64), Z.mean(axis=0, keepdims=True)
    sample = Z if n <= fit_rows else Z[np.sort(rng.choice(n, fit_rows, replace=False))]
    km = MiniBatchKMeans(
        n_clusters=k, random_state=int(rng.integers(2**31 - 1)), n_init=3, batch_size=min(4096, n)
    ).fit(sample)
    labels = km.labels_ if sample is Z else km.predict(Z)
    return labels.astype(np.int64), km.cluster_centers_


def cluster_coverage_order(utility: np.ndarray, labels: np.ndarray, covered: np.ndarray | None = None) -> np.ndarray:
    """Order tasks so every cluster is visited in proportion to its size.

    Within each cluster, tasks are sorted by ``utility`` (best first); each
    task's key is its position in that list divided by the cluster size, so
    the head of the queue takes the best task of every cluster before the
    second-best of any, and large clusters advance faster than small ones.
    ``covered[k]`` (optional) counts labeled tasks in cluster ``k``: they
    hold that cluster's first places, so uncovered clusters come first
    (TypiClust's "uncovered clusters").

    Returns
    -------
    order : ndarray of int, shape (n_tasks,)
        Positions into ``utility``, first to annotate first.
    """
    utility = np.asarray(utility, dtype=np.float64)
    labels = np.asarray(labels)
    n = utility.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    key = np.empty(n)
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        ranked = members[np.argsort(-utility[members], kind="stable")]
        done = 0 if covered is None or k >= len(covered) or k < 0 else int(covered[k])
        key[ranked] = (np.arange(ranked.size) + done + 0.5) / (ranked.size + done)
    # Ties (same quantile in several clusters): the more useful task first.
    return np.lexsort((-utility, key))


def queue_scores(order: np.ndarray) -> np.ndarray:
    """Label Studio ``score`` per task from an order: position / pool size."""
    n = order.shape[0]
    scores = np.empty(n)
    scores[order] = np.arange(n) / max(n, 1)
    return scores


def utility_quantiles(utility: np.ndarray, n: int = 201) -> np.ndarray:
    """A compact summary of the pool's utilities, to place unranked tasks live."""
    if utility.size == 0:
        return np.zeros(0)
    return np.quantile(np.asarray(utility, dtype=np.float64), np.linspace(0, 1, n))


def live_score(utility: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Estimated queue position of tasks the worker has not ranked yet.

    The fraction of the ranked pool that is more useful than the task, read
    off the stored quantiles; 0.5 when nothing was ranked.
    """
    utility = np.asarray(utility, dtype=np.float64)
    if quantiles.size == 0:
        return np.full(utility.shape, 0.5)
    below = np.searchsorted(quantiles, utility, side="right") / quantiles.size
    return np.clip(1.0 - below, 0.0, 1.0)


# -- orders ----------------------------------------------------------------

def order_by(utility: np.ndarray, *, tiebreak: np.ndarray | None = None,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """Positions sorted by ``utility``, highest first.

    Ties are broken by ``tiebreak`` (higher first; e.g. the margin for
    least-confidence and entropy), then by a random key drawn from ``rng``
    (so equal tasks are not served in import order), then by position.
    """
    utility = np.asarray(utility, dtype=np.float64)
    keys = [-utility]
    if tiebreak is not None:
        keys.insert(0, -np.asarray(tiebreak, dtype=np.float64))
    if rng is not None:
        keys.insert(0, rng.random(utility.shape[0]))
    return np.lexsort(keys).astype(np.int64)


def rank_normalise(values: np.ndarray) -> np.ndarray:
    """Map scores to ``[0, 1]`` by rank (ties share their mean rank); 0.5 for a constant.

    Scores on different scales (a margin in [0, 1], a KL divergence in
    [0, inf), a density) become comparable before they are weighted.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n <= 1:
        return np.full(n, 0.5)
    return (rankdata(values, method="average") - 1.0) / (n - 1.0)


def weighted_rank_sum(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """``sum_s w_s * rank_normalise(score_s) / sum_s w_s``: the hybrid's utility.

    References
    ----------
    Donmez, Carbonell & Bennett (2007), "Dual Strategy Active Learning",
    ECML (a weighted mix of uncertainty and density).
    https://doi.org/10.1007/978-3-540-74958-5_14
    """
    total = sum(weights.get(name, 0.0) for name in scores)
    if not scores or total <= 0:
        raise ValueError(f"expected at least one score with a positive weight, got weights {weights}")
    n = next(iter(scores.values())).shape[0]
    out = np.zeros(n)
    for name, s in scores.items():
        w = weights.get(name, 0.0)
        if w > 0:
            out += w * rank_normalise(s)
    return out / total


def head_then_rest(head: np.ndarray, rest_utility: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """``head`` (a chosen batch, in its order), then every other task by ``rest_utility``."""
    head = np.asarray(head, dtype=np.int64)
    order = order_by(rest_utility, rng=rng)
    in_head = np.zeros(order.shape[0], dtype=bool)
    in_head[head] = True
    return np.concatenate([head, order[~in_head[order]]])


# -- batch diversity ---------------------------------------------------------

def _min_sq_dist(Z: np.ndarray, centers: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Squared distance of each row of ``Z`` to its nearest row of ``centers`` (chunked: memory linear in n)."""
    out = np.empty(Z.shape[0], dtype=np.float32)
    c_sq = (centers**2).sum(axis=1)
    for start in range(0, Z.shape[0], chunk):
        block = Z[start : start + chunk]
        d2 = block @ centers.T
        d2 *= -2.0
        d2 += c_sq[None, :]
        out[start : start + chunk] = d2.min(axis=1) + (block**2).sum(axis=1)
    return np.clip(out, 0.0, None)


MAX_LABELED_REFERENCE = 2000  # labeled tasks compared with the pool in batch selection


def _check_batch(Z: np.ndarray, k: int, labeled: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    Z = np.asarray(Z)
    if Z.ndim != 2:
        raise ValueError(f"expected Z of shape (n_tasks, dim), got shape {Z.shape}")
    if not 0 <= k <= Z.shape[0]:
        raise ValueError(f"batch of {k} requested from a pool of {Z.shape[0]} tasks; expected 0 <= k <= pool size")
    if not np.all(np.isfinite(Z)):
        raise ValueError("the projection contains NaN or infinity")
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    if labeled is not None:
        labeled = np.asarray(labeled, dtype=np.float32).reshape(-1, Z.shape[1]) if np.size(labeled) else None
    if labeled is not None and labeled.shape[0] > MAX_LABELED_REFERENCE:
        # Evenly spaced, deterministic subsample: bounds the cost at n * 2,000 * dim.
        labeled = labeled[np.linspace(0, labeled.shape[0] - 1, MAX_LABELED_REFERENCE).astype(np.int64)]
    return Z, labeled


def _greedy_start(Z: np.ndarray, z_sq: np.ndarray, labeled: np.ndarray | None) -> tuple[np.ndarray, int | None]:
    """Initial nearest-chosen distances: to the labeled tasks, or to the task nearest the mean (then returned)."""
    if labeled is not None:
        return _min_sq_dist(Z, labeled), None
    mean = Z.mean(axis=0)
    first = int(np.argmin(z_sq - 2.0 * Z @ mean))
    return _sq_dist_to(Z, z_sq, first), first


def _sq_dist_to(Z: np.ndarray, z_sq: np.ndarray, j: int) -> np.ndarray:
    d = Z @ Z[j]
    d *= -2.0
    d += z_sq
    d += z_sq[j]
    return np.clip(d, 0.0, None, out=d)


def kcenter_greedy(Z: np.ndarray, k: int, *, labeled: np.ndarray | None = None) -> np.ndarray:
    """k-center greedy core-set: each pick is the task farthest from everything chosen or labeled.

    Minimises (2-approximately) the largest distance from any task to its
    nearest chosen or labeled task, so the batch covers the pool instead of
    piling up in one uncertain corner.  Without labeled tasks it starts at
    the task nearest the pool's mean.  ``O(n * (k + n_labeled) * dim)``.

    Parameters
    ----------
    Z : ndarray of shape (n_tasks, dim)
    k : int
        Batch size, ``0 <= k <= n_tasks`` (a clear ``ValueError`` otherwise).
    labeled : ndarray of shape (n_labeled, dim), optional
        The already labeled tasks in the same projection.

    Returns
    -------
    ndarray of int, shape (k,)
        Positions into ``Z``, in the order they were picked.

    References
    ----------
    Sener & Savarese (2018), "Active Learning for Convolutional Neural
    Networks: A Core-Set Approach", ICLR. https://arxiv.org/abs/1708.00489
    """
    Z, labeled = _check_batch(Z, k, labeled)
    picked = np.empty(k, dtype=np.int64)
    if k == 0:
        return picked
    z_sq = (Z**2).sum(axis=1)
    mind, first = _greedy_start(Z, z_sq, labeled)
    start = 0
    if first is not None:
        picked[0], start = first, 1
        mind[first] = -np.inf
    with threadpool_limits(1, user_api="blas"):  # many small products: threads only add overhead
        for i in range(start, k):
            j = int(np.argmax(mind))
            picked[i] = j
            np.minimum(mind, _sq_dist_to(Z, z_sq, j), out=mind)
            mind[picked[: i + 1]] = -np.inf
    return picked


def kmeanspp_batch(G: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding over ``G``: the longest row first, then each next one drawn with odds ``D^2``.

    ``D`` is the distance to the nearest row already drawn, so a batch is
    spread out, and long rows (uncertain tasks, for gradient embeddings) are
    favoured without a weight to tune.  Rows equal to a drawn one have odds 0;
    once every row is equal to a drawn one, the rest come by length.

    References
    ----------
    Arthur & Vassilvitskii (2007), "k-means++: The Advantages of Careful
    Seeding", SODA; the longest-first start is BADGE's (Ash et al. 2020).
    """
    G, _ = _check_batch(G, k, None)
    picked = np.empty(k, dtype=np.int64)
    if k == 0:
        return picked
    g_sq = (G**2).sum(axis=1)
    first = int(np.argmax(g_sq))
    picked[0] = first
    mind = _sq_dist_to(G, g_sq, first)
    for i in range(1, k):
        mind[picked[:i]] = 0.0
        total = float(mind.sum())
        if total > 0:
            j = int(rng.choice(G.shape[0], p=mind / total))
        else:
            rest = np.setdiff1d(np.argsort(-g_sq, kind="stable"), picked[:i], assume_unique=True)
            j = int(rest[0])
        picked[i] = j
        np.minimum(mind, _sq_dist_to(G, g_sq, j), out=mind)
    return picked


def ranked_batch(Z: np.ndarray, utility: np.ndarray, k: int, *, labeled: np.ndarray | None = None,
                 alpha: float | None = None) -> np.ndarray:
    """Ranked batch mode: trade uncertainty against similarity to what is labeled or already chosen.

    Each pick maximises ``alpha * (1 - sim) + (1 - alpha) * utility`` with
    ``sim = 1 / (1 + d)``, ``d`` the distance to the nearest labeled or
    already chosen task, and ``alpha = |unlabeled| / (|unlabeled| + |labeled|)``
    (recomputed per pick, as in the paper: exploration while little is
    labeled).  Without labeled tasks the first pick is the task nearest the
    pool's mean (the paper's most-similar-on-average task, linearised).
    ``O(n * (k + n_labeled) * dim)``.

    Parameters
    ----------
    Z : ndarray of shape (n_tasks, dim)
    utility : ndarray of shape (n_tasks,)
        Uncertainty in ``[0, 1]`` (e.g. margin uncertainty).
    k : int
        Batch size, ``0 <= k <= n_tasks``.
    labeled : ndarray of shape (n_labeled, dim), optional
    alpha : float, optional
        A fixed trade-off in ``[0, 1]`` instead of the paper's schedule.

    Returns
    -------
    ndarray of int, shape (k,)
        Positions into ``Z``, best first.

    References
    ----------
    Cardoso, Eduardo, Xing & Hartmann (2017), "Ranked batch-mode active
    learning", Information Sciences 379. https://doi.org/10.1016/j.ins.2016.10.037
    """
    n_labeled = 0 if labeled is None or np.size(labeled) == 0 else int(np.size(labeled) // max(1, np.shape(Z)[-1]))
    Z, labeled = _check_batch(Z, k, labeled)  # may subsample ``labeled``; alpha counts them all
    utility = np.asarray(utility, dtype=np.float64)
    if utility.shape != (Z.shape[0],) or not np.all(np.isfinite(utility)):
        raise ValueError(f"expected {Z.shape[0]} finite utilities, got shape {utility.shape}")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    picked = np.empty(k, dtype=np.int64)
    if k == 0:
        return picked
    n = Z.shape[0]
    z_sq = (Z**2).sum(axis=1)
    utility = utility.astype(np.float32)
    mind, first = _greedy_start(Z, z_sq, labeled)
    start = 0
    if first is not None:
        picked[0], start = first, 1  # counted in ``i`` below as a chosen task
    with threadpool_limits(1, user_api="blas"):
        for i in range(start, k):
            a = alpha if alpha is not None else (n - i) / (n - i + n_labeled + i)
            dissim = np.sqrt(mind)
            dissim /= 1.0 + dissim  # 1 - 1 / (1 + d)
            score = a * dissim + (1.0 - a) * utility
            score[picked[:i]] = -np.inf
            j = int(np.argmax(score))
            picked[i] = j
            np.minimum(mind, _sq_dist_to(Z, z_sq, j), out=mind)
    return picked


def novelty(Z: np.ndarray, labeled: np.ndarray | None) -> np.ndarray:
    """Distance to the nearest labeled task (1 for every task when nothing is labeled).

    High for tasks unlike anything the model was trained on; the
    "not redundant with what is labeled" part of a hybrid.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if labeled is None or np.size(labeled) == 0:
        return np.ones(Z.shape[0])
    return np.sqrt(_min_sq_dist(Z, np.asarray(labeled, dtype=np.float64).reshape(-1, Z.shape[1])))


# -- near-duplicates -----------------------------------------------------------

def collapse_near_duplicates(order: np.ndarray, X, *, threshold: float = 0.9, window: int = 2000,
                             chunk: int = 512, centre: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Keep one task of each group of near-identical tasks in the head; move the others to the end.

    Walks ``order`` from the top in chunks; a task whose cosine similarity to
    a task already kept is ``>= threshold`` is demoted (it will be answered
    by its twin's label once the model retrains).  Stops once ``window``
    tasks are kept, so the cost is ``O(window * scanned)``, not quadratic in
    the pool.  Rows of ``X`` must be L2-normalised (as the hashed features
    are); ``X`` may be sparse.

    ``centre`` (dense rows only): cosines are taken after subtracting it
    (the pool's mean row) and normalising again.  Pretrained image
    embeddings are non-negative, so any two images have a cosine of 0.8-0.98
    and a fixed threshold would call distinct images twins; around the
    pool's mean, distinct Fashion-MNIST images stay below 0.87 while
    brightened or shifted copies are above 0.9 (``docs/images.md``).

    Returns
    -------
    order : ndarray of int
        The kept tasks, then the unscanned rest, then the demoted tasks
        (each part in its original order).
    n_demoted : int

    References
    ----------
    Broder (1997), "On the resemblance and containment of documents"
    (near-duplicate detection by similarity of document vectors).
    https://doi.org/10.1109/SEQUEN.1997.666900
    """
    order = np.asarray(order, dtype=np.int64)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    n = order.shape[0]
    kept: list[np.ndarray] = []
    demoted: list[np.ndarray] = []
    kept_rows: _Rows | None = None  # rows of X of the kept tasks, stacked
    dense_cols = _dense_columns(X, order[: 4 * chunk])
    n_kept, pos = 0, 0
    while pos < n and n_kept < window:
        idx = order[pos : pos + chunk]
        pos += idx.shape[0]
        rows = X[idx]
        if centre is not None:
            rows = np.asarray(rows, dtype=np.float32) - centre
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            rows = rows / np.where(norms == 0, 1.0, norms)
        block = _Rows.of(rows, dense_cols)
        dup = np.zeros(idx.shape[0], dtype=bool)
        if kept_rows is not None:
            dup |= block.inner(kept_rows).max(axis=1) >= threshold
        close = np.triu(block.inner(block) >= threshold, 1)
        for j in np.flatnonzero(close.any(axis=1)):
            if not dup[j]:
                dup |= close[j]
        kept.append(idx[~dup])
        demoted.append(idx[dup])
        new_rows = block.take(~dup)
        kept_rows = new_rows if kept_rows is None else kept_rows.stack(new_rows)
        n_kept += int((~dup).sum())
    n_demoted = int(sum(d.shape[0] for d in demoted))
    return np.concatenate([*kept, order[pos:], *demoted]).astype(np.int64) if n else order, n_demoted


MIN_DENSE_COLUMNS = 32


def _dense_columns(X, rows: np.ndarray) -> np.ndarray | None:
    """Columns of sparse ``X`` that most of ``rows`` use (an embedding part of a concatenation), or None.

    A sparse-sparse product over such columns is some 50x slower than the
    same product in BLAS, so :class:`_Rows` keeps them apart as a dense block.
    """
    if not sp.issparse(X) or rows.size < 16:
        return None
    sample = sp.csr_matrix(X[rows])
    used = np.flatnonzero(np.bincount(sample.indices, minlength=sample.shape[1]) > sample.shape[0] // 2)
    return used if used.size >= MIN_DENSE_COLUMNS else None  # a few common n-grams: not worth a split


class _Rows:
    """Rows for dot products: a sparse part and, for the ``dense_cols`` of sparse rows, a dense one."""

    def __init__(self, rest, dense: np.ndarray | None) -> None:
        self.rest, self.dense = rest, dense

    @classmethod
    def of(cls, X, dense_cols: np.ndarray | None) -> "_Rows":
        if dense_cols is None:
            return cls(X, None)
        X = sp.csr_matrix(X)
        dense = X[:, dense_cols].toarray()
        rest = X.copy()
        rest.data[np.isin(rest.indices, dense_cols)] = 0.0
        rest.eliminate_zeros()
        return cls(rest, dense)

    def inner(self, other: "_Rows") -> np.ndarray:
        """``self @ other.T`` as a dense array."""
        out = self.rest @ other.rest.T
        out = out.toarray() if sp.issparse(out) else np.asarray(out)
        if self.dense is not None:
            out += self.dense @ other.dense.T
        return out

    def take(self, mask: np.ndarray) -> "_Rows":
        return _Rows(self.rest[mask], None if self.dense is None else self.dense[mask])

    def stack(self, other: "_Rows") -> "_Rows":
        rest = sp.vstack([self.rest, other.rest]).tocsr() if sp.issparse(self.rest) else np.vstack([self.rest, other.rest])
        return _Rows(rest, None if self.dense is None else np.vstack([self.dense, other.dense]))
