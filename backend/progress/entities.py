"""How good a ``<Labels>`` model is: entity-level F1, cross-validated and on the held-out control tasks.

The counterparts of ``evaluation.cross_validate`` and
``evaluation.random_pick_holdout`` (accuracy), and of ``regression``'s
(error), for named entities.  An entity counts
as found only when its start, end and label all match (CoNLL-2003's
measure, ``spans.entity_scores``), micro-averaged over the held-out texts.
The truth is each answer as the model trains on it (``SpanModel.target_tags``:
widened to whole tokens, overlaps resolved), so the figure measures the
model, not the tokeniser.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold

from backend.learning.model import NotEnoughLabelsError
from backend.learning.spans import SpanError, bio_to_spans, entity_scores
from backend.progress.regression import BOOTSTRAP

#: Labeled texts needed before F1 is estimated.
MIN_LABELS = 10
#: Folds, and the most texts cross-validated (a random sample beyond): a CRF fit takes seconds per thousand.
FOLDS = 3
MAX_TEXTS = 2000


def _held_out_spans(model, texts: list[str], answers: list, test, true: list, pred: list) -> None:
    """Append the true and predicted entities of the texts ``test`` (tagged by ``model``, which never saw them)."""
    for i, tagged in zip(test, model.tag([texts[i] for i in test])):
        try:
            tags = model.target_tags(texts[i], tagged.tokens, answers[i])
        except SpanError:
            continue  # an answer the model could not train on is not a test either
        true.append(bio_to_spans(texts[i], tagged.tokens, tags))
        pred.append(bio_to_spans(tagged.text, tagged.tokens, tagged.tagging.tags))


def _sample(idx: np.ndarray, seed: int) -> np.ndarray:
    """At most ``MAX_TEXTS`` of ``idx`` (a seeded random sample, in order)."""
    return np.sort(np.random.default_rng(seed).choice(idx, MAX_TEXTS, replace=False)) if idx.size > MAX_TEXTS else idx


def _fit(estimator: BaseEstimator, texts: list[str], answers: list, train):
    return clone(estimator).fit([texts[i] for i in train], [answers[i] for i in train])


def _figures(true: list, pred: list) -> dict:
    got = entity_scores(true, pred)
    return {"n": len(true), "f1": got["f1"], "precision": got["precision"], "recall": got["recall"],
            "entities": int(got["n_true"])}


def cross_validate(estimator: BaseEstimator, texts: list[str], answers: list, *, seed: int = 0) -> dict:
    """Entity-level precision, recall and F1 of clones of ``estimator`` over ``FOLDS`` folds of the labeled texts.

    Returns ``{"n", "f1", "precision", "recall", "entities"}`` (``f1`` is
    ``None`` with a ``reason`` when there are too few texts, or no fold
    could train).
    """
    n = len(texts)
    if n < MIN_LABELS:
        return {"n": n, "f1": None, "reason": f"{n} labeled texts; entity F1 needs {MIN_LABELS}"}
    idx = _sample(np.arange(n), seed)
    true, pred = [], []
    for train, test in KFold(FOLDS, shuffle=True, random_state=seed).split(idx):
        try:
            model = _fit(estimator, texts, answers, idx[train])
        except NotEnoughLabelsError:
            continue
        _held_out_spans(model, texts, answers, idx[test], true, pred)
    if not true:
        return {"n": n, "f1": None, "reason": "no fold had an entity to learn from"}
    return _figures(true, pred)


def random_pick_holdout(estimator: BaseEstimator, texts: list[str], answers: list, is_random_pick: np.ndarray, *,
                        seed: int = 0) -> dict:
    """Entity F1 on the labeled random (control) tasks, each tagged by a model trained without it.

    As ``evaluation.random_pick_holdout`` for choices: the control tasks are
    a uniform sample of the pool, so this is unbiased where cross-validation
    over the strategy's picks is not.  ``FOLDS`` folds split the control
    tasks; each fold's model trains on every other label (at most
    ``MAX_TEXTS``).  ``low`` and ``high`` bound the F1 (95%, bootstrap over
    the control texts: micro F1 is ``2 * correct / (true + predicted)``).
    """
    ctl = np.flatnonzero(is_random_pick)
    if ctl.size < FOLDS:
        return {"n": int(ctl.size), "f1": None, "reason": f"{ctl.size} labeled control tasks; needs {FOLDS}"}
    true, pred = [], []
    for _, test_c in KFold(FOLDS, shuffle=True, random_state=seed).split(ctl):
        try:
            model = _fit(estimator, texts, answers, _sample(np.setdiff1d(np.arange(len(texts)), ctl[test_c]), seed))
        except NotEnoughLabelsError:
            return {"n": int(ctl.size), "f1": None, "reason": "the training folds hold no entity"}
        _held_out_spans(model, texts, answers, ctl[test_c], true, pred)
    if not true:
        return {"n": int(ctl.size), "f1": None, "reason": "no control task could be tested"}
    counts = np.array([[got["n_correct"], got["n_true"] + got["n_pred"]]
                       for got in (entity_scores([t], [p]) for t, p in zip(true, pred))])
    boot = counts[np.random.default_rng(seed).integers(0, len(counts), (BOOTSTRAP, len(counts)))].sum(axis=1)
    f1 = np.divide(2 * boot[:, 0], boot[:, 1], out=np.zeros(BOOTSTRAP), where=boot[:, 1] > 0)
    return {**_figures(true, pred), "low": float(np.quantile(f1, 0.025)), "high": float(np.quantile(f1, 0.975))}
