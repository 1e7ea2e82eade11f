"""Combine per-task scores and a geometry into one ranked queue.

The queue Label Studio serves is sorted by ``score`` ascending, so the output
here is, for each task, the fraction of the pool ranked before it: 0 for the
next task to annotate, close to 1 for the last.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.preprocessing import normalize
from sklearn.random_projection import SparseRandomProjection

RP_DIM = 256


@lru_cache(maxsize=4)
def random_projection(n_features: int, dim: int = RP_DIM) -> SparseRandomProjection:
    """A fixed (seeded) sparse random projection of the hashed space; built once per process."""
    return SparseRandomProjection(dim, dense_output=True, random_state=0).fit(
        sp.csr_matrix((1, n_features), dtype=np.float32)
    )


def project(X: sp.spmatrix, n_components: int, rng: np.random.Generator, *, fit_rows: int = 20_000) -> np.ndarray:
    """A low-dimensional, L2-normalised view of the hashed features.

    Distances in 2^18 hashed dimensions are dominated by noise; a few dozen
    principal components keep the topical structure that clustering needs.
    A fixed sparse random projection to 256 dimensions first (distances are
    kept, Johnson-Lindenstrauss) makes the PCA cheap: for 100,000 tasks it
    takes well under a second where a truncated SVD of the sparse matrix
    takes six.  The PCA is fitted on at most ``fit_rows`` sampled rows.

    References
    ----------
    Achlioptas (2003), "Database-friendly random projections",
    https://doi.org/10.1016/S0022-0000(03)00025-4
    """
    n = X.shape[0]
    k = int(min(n_components, n - 1, RP_DIM))
    if k < 1:
        return np.zeros((n, 1))
    X = sp.csr_matrix(X, dtype=np.float32)
    if X.shape[1] <= RP_DIM:
        Y = X.toarray()
    else:
        Y = np.asarray(random_projection(X.shape[1]).transform(X), dtype=np.float32)
    sample = Y if n <= fit_rows else Y[rng.choice(n, fit_rows, replace=False)]
    pca = PCA(n_components=k, svd_solver="randomized", random_state=int(rng.integers(2**31 - 1))).fit(sample)
    return normalize(pca.transform(Y))


def cluster(Z: np.ndarray, n_clusters: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k-means labels and centers; ``n_clusters`` is capped by the pool size."""
    n = Z.shape[0]
    k = int(max(1, min(n_clusters, n)))
    if k == 1:
        return np.zeros(n, dtype=np.int64), Z.mean(axis=0, keepdims=True)
    km = MiniBatchKMeans(
        n_clusters=k, random_state=int(rng.integers(2**31 - 1)), n_init=3, batch_size=min(4096, n)
    ).fit(Z)
    return km.labels_.astype(np.int64), km.cluster_centers_


def cluster_coverage_order(utility: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Order tasks so every cluster is visited in proportion to its size.

    Within each cluster, tasks are sorted by ``utility`` (best first); each
    task's key is its position in that list divided by the cluster size, so
    the head of the queue takes the best task of every cluster before the
    second-best of any, and large clusters advance faster than small ones.

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
        key[ranked] = (np.arange(ranked.size) + 0.5) / ranked.size
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
