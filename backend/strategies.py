"""Per-task usefulness scores: pure functions over arrays, higher = ask sooner.

Each function takes arrays and returns one float per row, with no I/O and no
estimators, so it can be tested with fixed arrays and benchmarked alone
(the layering of modAL's ``uncertainty.py``).
"""

from __future__ import annotations

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
