"""How good a ``<Labels>`` model is: entity-level F1, cross-validated on the labeled texts.

The counterpart of ``evaluation.cross_validate`` (accuracy) and
``regression.cross_validate`` (error) for named entities.  An entity counts
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

#: Labeled texts needed before F1 is estimated.
MIN_LABELS = 10
#: Folds, and the most texts cross-validated (a random sample beyond): a CRF fit takes seconds per thousand.
FOLDS = 3
MAX_TEXTS = 2000


def cross_validate(estimator: BaseEstimator, texts: list[str], answers: list, *, seed: int = 0) -> dict:
    """Entity-level precision, recall and F1 of clones of ``estimator`` over ``FOLDS`` folds of the labeled texts.

    Returns ``{"n", "f1", "precision", "recall", "entities"}`` (``f1`` is
    ``None`` with a ``reason`` when there are too few texts, or no fold
    could train).
    """
    n = len(texts)
    if n < MIN_LABELS:
        return {"n": n, "f1": None, "reason": f"{n} labeled texts; entity F1 needs {MIN_LABELS}"}
    idx = np.arange(n)
    if n > MAX_TEXTS:
        idx = np.sort(np.random.default_rng(seed).choice(n, MAX_TEXTS, replace=False))
    true, pred = [], []
    for train, test in KFold(FOLDS, shuffle=True, random_state=seed).split(idx):
        try:
            model = clone(estimator).fit([texts[i] for i in idx[train]], [answers[i] for i in idx[train]])
        except NotEnoughLabelsError:
            continue
        for i, tagged in zip(idx[test], model.tag([texts[i] for i in idx[test]])):
            try:
                tags = model.target_tags(texts[i], tagged.tokens, answers[i])
            except SpanError:
                continue  # an answer the model could not train on is not a test either
            true.append(bio_to_spans(texts[i], tagged.tokens, tags))
            pred.append(bio_to_spans(tagged.text, tagged.tokens, tagged.tagging.tags))
    if not true:
        return {"n": n, "f1": None, "reason": "no fold had an entity to learn from"}
    got = entity_scores(true, pred)
    return {"n": len(true), "f1": got["f1"], "precision": got["precision"], "recall": got["recall"],
            "entities": int(got["n_true"])}
