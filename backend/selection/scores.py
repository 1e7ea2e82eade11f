"""Per-task usefulness scores: pure functions over arrays, higher = ask sooner.

Each function takes arrays and returns one float per row, with no I/O and no
estimators, so it can be tested with fixed arrays and benchmarked alone
(the layering of modAL's ``uncertainty.py``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp


def _check_proba(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"expected probabilities of shape (n_tasks, n_classes), got shape {proba.shape}")
    if not np.all(np.isfinite(proba)):
        raise ValueError("probabilities contain NaN or infinity; check the model that produced them")
    return proba


def margin_uncertainty(proba: np.ndarray) -> np.ndarray:
    """``1 - (p_top1 - p_top2)``: 1 when the two best labels tie, 0 when one is certain.

    Parameters
    ----------
    proba : ndarray of shape (n_tasks, n_classes)
        Rows sum to 1 (single choice).

    References
    ----------
    Scheffer, Decomain & Wrobel (2001), "Active Hidden Markov Models for
    Information Extraction", IDA. https://doi.org/10.1007/3-540-44816-0_31
    """
    proba = _check_proba(proba)
    if proba.shape[1] < 2:
        return np.zeros(proba.shape[0])
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def multilabel_margin_uncertainty(proba: np.ndarray) -> np.ndarray:
    """Mean over labels of ``1 - |2p - 1|``: each label is a binary decision.

    Parameters
    ----------
    proba : ndarray of shape (n_tasks, n_labels)
        Independent per-label probabilities (multiple choice).

    References
    ----------
    Yang et al. (2009), "Effective multi-label active learning for text
    classification", KDD. https://doi.org/10.1145/1557019.1557119
    """
    proba = _check_proba(proba)
    if proba.shape[1] == 0:
        return np.zeros(proba.shape[0])
    return (1.0 - np.abs(2.0 * proba - 1.0)).mean(axis=1)


def centroid_similarity(X: sp.spmatrix | np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """Cosine similarity of L2-normalised rows to the pool's mean direction.

    A cheap typicality: tasks that look like the bulk of the pool score high,
    outliers (a one-word spam text, a blank page) score low.
    """
    centroid = np.asarray(centroid, dtype=np.float64).ravel()
    norm = np.linalg.norm(centroid)
    if norm == 0:
        return np.zeros(X.shape[0])
    return np.asarray(X @ (centroid / norm)).ravel()


def centroid_typicality(Z: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Typicality within a cluster: ``1 / (1 + d / median d of the cluster)``.

    ``d`` is the distance of a row of ``Z`` to its own cluster center; dividing
    by the cluster's median distance makes tight and loose clusters comparable.
    A light version of TypiClust's density, linear in the pool.

    References
    ----------
    Hacohen, Dekel & Weinshall (2022), "Active Learning on a Budget: Opposite
    Strategies Suit High and Low Budgets", ICML. https://arxiv.org/abs/2202.02794
    """
    d = np.linalg.norm(Z - centers[labels], axis=1)
    med = np.zeros(len(centers))
    for k in range(len(centers)):
        in_k = d[labels == k]
        med[k] = np.median(in_k) if in_k.size else 1.0
    med[med <= 0] = 1.0
    return 1.0 / (1.0 + d / med[labels])


# -- uncertainty ---------------------------------------------------------

def least_confidence(proba: np.ndarray) -> np.ndarray:
    """``1 - p_top1``: how far the most likely label is from certain.

    0 for a one-hot row, ``1 - 1/K`` for a uniform one.

    Parameters
    ----------
    proba : ndarray of shape (n_tasks, n_classes)
        Rows sum to 1 (single choice).

    References
    ----------
    Lewis & Gale (1994), "A Sequential Algorithm for Training Text
    Classifiers", SIGIR. https://arxiv.org/abs/cmp-lg/9407020
    """
    proba = _check_proba(proba)
    if proba.shape[1] == 0:
        return np.zeros(proba.shape[0])
    return 1.0 - proba.max(axis=1)


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-sum p log p`` (nats), with ``0 log 0 = 0``.

    0 for a one-hot row, ``log K`` for a uniform one: the only uncertainty
    score that looks at every label, not just the best one or two.

    Parameters
    ----------
    proba : ndarray of shape (n_tasks, n_classes)
        Rows sum to 1 (single choice).

    References
    ----------
    Settles (2009), "Active Learning Literature Survey", section 3.1.
    https://burrsettles.com/pub/settles.activelearning.pdf
    """
    proba = _check_proba(proba)
    logs = np.log(np.where(proba > 0, proba, 1.0))  # 0 log 0 = 0
    return -(proba * logs).sum(axis=1)


def per_label_mean(score: Callable[[np.ndarray], np.ndarray], proba: np.ndarray) -> np.ndarray:
    """Apply a single-choice score to each label as a yes/no question; average over labels.

    Multiple choice gives independent per-label probabilities; each label is
    a binary decision ``[1 - p, p]``, scored alone, and the task's score is
    the mean over labels (so ``per_label_mean(margin_uncertainty, p)`` is
    :func:`multilabel_margin_uncertainty`).

    Parameters
    ----------
    score : callable
        A function of an ``(n, 2)`` probability matrix, e.g. :func:`entropy`.
    proba : ndarray of shape (n_tasks, n_labels)

    References
    ----------
    Yang et al. (2009), "Effective multi-label active learning for text
    classification", KDD. https://doi.org/10.1145/1557019.1557119
    """
    proba = _check_proba(proba)
    n, n_labels = proba.shape
    if n_labels == 0:
        return np.zeros(n)
    total = np.zeros(n)
    for j in range(n_labels):
        p = np.clip(proba[:, j], 0.0, 1.0)
        total += score(np.column_stack([1.0 - p, p]))
    return total / n_labels


# -- disagreement --------------------------------------------------------

def _check_committee(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 3:
        raise ValueError(
            f"expected committee probabilities of shape (n_members, n_tasks, n_classes), got shape {proba.shape}"
        )
    if proba.shape[0] == 0:
        raise ValueError("the committee has no members; expected at least one")
    if not np.all(np.isfinite(proba)):
        raise ValueError("committee probabilities contain NaN or infinity; check the models that produced them")
    return proba


def _binary_committee(proba: np.ndarray) -> np.ndarray:
    """(M, n, L) independent per-label probabilities -> (L, M, n, 2) yes/no views."""
    p = np.clip(np.moveaxis(proba, 2, 0), 0.0, 1.0)
    return np.stack([1.0 - p, p], axis=-1)


def vote_entropy(proba: np.ndarray, *, multiple: bool = False) -> np.ndarray:
    """Entropy of the committee's votes: 0 when every member picks the same label.

    Each member votes for its most likely label; the score is the entropy of
    the vote shares, at most ``log min(M, K)`` (``M`` members, ``K``
    labels).  Multiple choice: each label's yes/no vote, averaged over labels.

    Parameters
    ----------
    proba : ndarray of shape (n_members, n_tasks, n_classes)
    multiple : bool
        Columns are independent per-label probabilities.

    References
    ----------
    Dagan & Engelson (1995), "Committee-Based Sampling For Training
    Probabilistic Classifiers", ICML.
    https://doi.org/10.1016/B978-1-55860-377-6.50027-X
    """
    proba = _check_committee(proba)
    if multiple:
        views = _binary_committee(proba)
        if views.shape[0] == 0:
            return np.zeros(proba.shape[1])
        return np.mean([vote_entropy(v) for v in views], axis=0)
    n_members, n, k = proba.shape
    if k == 0:
        return np.zeros(n)
    votes = proba.argmax(axis=2)  # (M, n)
    shares = np.stack([(votes == c).sum(axis=0) for c in range(k)], axis=1) / n_members
    return entropy(shares)


def mean_kl_to_consensus(proba: np.ndarray, *, multiple: bool = False, eps: float = 1e-9) -> np.ndarray:
    """Mean Kullback-Leibler divergence of each member from the committee's mean.

    ``(1/M) sum_m KL(p_m || p_mean)``: 0 when all members give the same
    distribution, large when confident members disagree.  Unlike
    :func:`vote_entropy` it also sees disagreement that does not flip a vote.

    Parameters
    ----------
    proba : ndarray of shape (n_members, n_tasks, n_classes)
    multiple : bool
        Columns are independent per-label probabilities (averaged over labels).
    eps : float
        Probabilities are clipped to ``[eps, 1]`` so that ``log`` stays finite.

    References
    ----------
    McCallum & Nigam (1998), "Employing EM and Pool-Based Active Learning for
    Text Classification", ICML. https://dl.acm.org/doi/10.5555/645527.757765
    """
    proba = _check_committee(proba)
    if multiple:
        views = _binary_committee(proba)
        if views.shape[0] == 0:
            return np.zeros(proba.shape[1])
        return np.mean([mean_kl_to_consensus(v, eps=eps) for v in views], axis=0)
    if proba.shape[2] == 0:
        return np.zeros(proba.shape[1])
    p = np.clip(proba, eps, 1.0)
    p /= p.sum(axis=2, keepdims=True)
    consensus = p.mean(axis=0)
    kl = (p * np.log(p / consensus)).sum(axis=2)  # (M, n)
    return np.maximum(kl.mean(axis=0), 0.0)


# -- expected model change ----------------------------------------------

def expected_gradient_length(proba: np.ndarray, x_norms: np.ndarray) -> np.ndarray:
    """Expected length of the log-loss gradient if the task were labeled.

    For multinomial logistic regression the gradient for label ``y`` is
    ``(p - e_y) ⊗ x``, whose norm is ``||e_y - p|| * ||x||``; weighting by the
    model's own ``p(y|x)`` gives, in closed form and linear in the pool,
    ``||x|| * sum_y p_y * sqrt(1 - 2 p_y + sum_k p_k^2)``.  Pass
    ``x_norms = sqrt(||x||^2 + 1)`` to count the intercept.

    Parameters
    ----------
    proba : ndarray of shape (n_tasks, n_classes)
        Rows sum to 1 (single choice).  Multiple choice (one binary logistic
        regression per label): ``per_label_mean(lambda p: egl(p, x_norms), proba)``.
    x_norms : ndarray of shape (n_tasks,)
        Norm of each task's feature vector.

    References
    ----------
    Settles, Craven & Ray (2008), "Multiple-Instance Active Learning", NIPS.
    https://papers.nips.cc/paper/3252-multiple-instance-active-learning
    """
    proba = _check_proba(proba)
    x_norms = np.asarray(x_norms, dtype=np.float64).ravel()
    if x_norms.shape[0] != proba.shape[0]:
        raise ValueError(f"expected one norm per task ({proba.shape[0]}), got {x_norms.shape[0]}")
    if not np.all(np.isfinite(x_norms)):
        raise ValueError("feature norms contain NaN or infinity")
    sq = (proba**2).sum(axis=1, keepdims=True)
    dist = np.sqrt(np.clip(1.0 - 2.0 * proba + sq, 0.0, None))  # ||e_y - p|| per label y
    return x_norms * (proba * dist).sum(axis=1)


# -- representativeness --------------------------------------------------

def gradient_embedding(proba: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """BADGE's hallucinated gradient: ``(p - e_yhat) (x) z`` per task, shape ``(n, K * dim)``.

    For a softmax-linear model this is the log-loss gradient with respect to
    the last layer's weights, had the task been labeled with the model's own
    guess ``yhat``: its norm grows with uncertainty (``|p - e_yhat|``) and its
    direction says *which* weights the label would move, so spreading a batch
    over these vectors mixes uncertainty with diversity.  ``Z`` stands in for
    the features (a low-dimensional projection keeps ``K * dim`` small).

    References
    ----------
    Ash et al. (2020), "Deep Batch Active Learning by Diverse, Uncertain
    Gradient Lower Bounds", ICLR. https://arxiv.org/abs/1906.03671
    """
    p = _check_proba(proba)
    Z = np.asarray(Z, dtype=np.float32)
    if Z.shape[0] != p.shape[0]:
        raise ValueError(f"proba has {p.shape[0]} rows but Z has {Z.shape[0]}; expected the same number")
    residual = p.astype(np.float32).copy()
    residual[np.arange(p.shape[0]), p.argmax(axis=1)] -= 1.0
    return (residual[:, :, None] * Z[:, None, :]).reshape(p.shape[0], -1)


def information_density(Z: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Similarity-weighted density: mean similarity ``1 / (1 + ||z - r||)`` to a reference set.

    Settles & Craven weight uncertainty by the average similarity of a task
    to the whole pool, so that outliers sink.  Computing that exactly is
    quadratic in the pool; here the pool is summarised by ``reference``
    points (k-means centers weighted by their cluster sizes), which keeps it
    linear: ``O(n * len(reference))``.

    Parameters
    ----------
    Z : ndarray of shape (n_tasks, dim)
        The pool in a low-dimensional projection.
    reference : ndarray of shape (n_ref, dim)
        Points that summarise the pool (cluster centers or sampled tasks).
    weights : ndarray of shape (n_ref,), optional
        Non-negative weights (e.g. cluster sizes); uniform when omitted.

    Returns
    -------
    ndarray of shape (n_tasks,)
        In ``(0, 1]``; 1 only for a task sitting on all the reference mass.

    References
    ----------
    Settles & Craven (2008), "An Analysis of Active Learning Strategies for
    Sequence Labeling Tasks", EMNLP. https://aclanthology.org/D08-1112/
    """
    Z = np.asarray(Z, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if Z.ndim != 2 or reference.ndim != 2 or Z.shape[1] != reference.shape[1]:
        raise ValueError(f"expected 2-D arrays with the same width, got shapes {Z.shape} and {reference.shape}")
    if reference.shape[0] == 0:
        raise ValueError("the reference set is empty; expected at least one point")
    w = np.ones(reference.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape[0] != reference.shape[0] or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative, one per reference point, and not all zero")
    w = w / w.sum()
    out = np.empty(Z.shape[0])
    ref_sq = (reference**2).sum(axis=1)
    for start in range(0, Z.shape[0], 8192):
        block = Z[start : start + 8192]
        d2 = (block**2).sum(axis=1)[:, None] + ref_sq[None, :] - 2.0 * block @ reference.T
        out[start : start + 8192] = (1.0 / (1.0 + np.sqrt(np.clip(d2, 0.0, None)))) @ w
    return out


def knn_typicality(
    Z: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, k: int = 20, max_ref: int = 256
) -> np.ndarray:
    """TypiClust's typicality: inverse mean distance to the ``k`` nearest neighbours in the cluster.

    Typical tasks sit where their cluster is dense; outliers are far from
    everything.  To stay linear in the pool, neighbours are looked up among
    at most ``max_ref`` sampled members of each cluster (a task is never its
    own neighbour); a task alone in its cluster gets 0.

    Parameters
    ----------
    Z : ndarray of shape (n_tasks, dim)
    labels : ndarray of int, shape (n_tasks,)
        Cluster of each task.
    rng : numpy Generator
        Draws the reference members of large clusters.
    k : int
        Neighbours (TypiClust uses 20).
    max_ref : int
        Reference members per cluster.

    References
    ----------
    Hacohen, Dekel & Weinshall (2022), "Active Learning on a Budget: Opposite
    Strategies Suit High and Low Budgets", ICML. https://arxiv.org/abs/2202.02794
    """
    Z = np.asarray(Z, dtype=np.float64)
    labels = np.asarray(labels)
    if Z.ndim != 2 or labels.shape != (Z.shape[0],):
        raise ValueError(f"expected Z of shape (n, dim) and one label per row, got {Z.shape} and {labels.shape}")
    if k < 1 or max_ref < 2:
        raise ValueError(f"expected k >= 1 and max_ref >= 2, got k={k}, max_ref={max_ref}")
    out = np.zeros(Z.shape[0])
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if members.size < 2:
            out[members] = 0.0  # alone in its cluster: an outlier, not a typical task
            continue
        ref = members if members.size <= max_ref else np.sort(rng.choice(members, max_ref, replace=False))
        kk = min(k, ref.size - 1)
        R = Z[ref]
        r_sq = (R**2).sum(axis=1)
        is_ref = np.zeros(Z.shape[0], dtype=bool)
        is_ref[ref] = True
        ref_pos = np.full(Z.shape[0], -1)
        ref_pos[ref] = np.arange(ref.size)
        for start in range(0, members.size, 4096):
            rows = members[start : start + 4096]
            B = Z[rows]
            d2 = (B**2).sum(axis=1)[:, None] + r_sq[None, :] - 2.0 * B @ R.T
            d = np.sqrt(np.clip(d2, 0.0, None))
            own = ref_pos[rows]
            hit = own >= 0
            d[np.flatnonzero(hit), own[hit]] = np.inf  # not its own neighbour
            near = np.partition(d, kk - 1, axis=1)[:, :kk]
            out[rows] = 1.0 / (near.mean(axis=1) + 1e-9)
    return out
