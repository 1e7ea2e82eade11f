"""How unsure another ML backend's prediction is, read from what it answers on ``/predict``.

Why this module exists
----------------------
A user's own model (a detector, a span tagger, a classifier behind Label
Studio's ML backend protocol) answers each task with
``{"result": [...], "score": float, "model_version": str}``.  To order the
queue by what that model is least sure of, the worker needs one number per
task, whatever the kind of result.  Label Studio's format gives scores at
two levels, and models fill in one, the other, both or neither:

* **per item**: a region (a span, a rectangle, a polygon, keypoints, a brush
  mask, an ellipse) or a classification (``choices``, ``taxonomy``) may carry
  its own ``score``, the model's confidence in that item;
* **per prediction**: ``score``, the model's confidence in the whole answer.

The task's uncertainty is ``1 - confidence`` where confidence is, by
default, that of its **least confident item** (one doubtful box makes the
image worth checking); ``aggregate="mean"`` averages instead.  Where no item
has a score (numbers and ratings usually have none), the prediction's score
is used; where neither exists, the uncertainty is unknown (``None``), which
the ranking treats as no opinion.

Everything here is a pure function of the JSON a remote sent, which is
hostile input: a score must be a real number in [0, 1] to count (not a
string, not a boolean, not NaN, not a percentage), and malformed items are
passed over, never an exception.

References
----------
Settles (2009), "Active Learning Literature Survey", 3.1 (least confidence).
https://burrsettles.com/pub/settles.activelearning.pdf
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["CLASSIFICATION_TYPES", "NUMBER_TYPES", "REGION_TYPES", "AGGREGATES", "item_scores",
           "prediction_uncertainty", "uncertainties", "model_version"]

#: Result types that classify the whole task (one confidence for the chosen option(s)).
CLASSIFICATION_TYPES = frozenset({"choices", "taxonomy"})
#: Result types that mark a region of the task: spans, boxes, polygons, keypoints, masks, ellipses, time ranges.
REGION_TYPES = frozenset({
    "labels", "hypertextlabels", "paragraphlabels", "timeserieslabels",
    "rectanglelabels", "rectangle", "polygonlabels", "polygon", "keypointlabels", "keypoint",
    "brushlabels", "brush", "ellipselabels", "ellipse", "videorectangle",
})
#: Numbers to predict; a score of theirs, when given, counts like any other.
NUMBER_TYPES = frozenset({"number", "rating"})
#: ``aggregate`` values: the least confident item, or the items' mean confidence.
AGGREGATES = ("min", "mean")
_SCORED = CLASSIFICATION_TYPES | REGION_TYPES | NUMBER_TYPES


def _confidence(value: Any) -> float | None:
    """A score that can be trusted as a confidence: a finite real number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    x = float(value)
    return x if math.isfinite(x) and 0.0 <= x <= 1.0 else None


def item_scores(result: Any) -> list[float]:
    """The valid per-item confidences of a prediction's ``result`` (items of other types, e.g. relations, skipped)."""
    if not isinstance(result, list):
        return []
    out = []
    for item in result:
        if isinstance(item, dict) and item.get("type") in _SCORED:
            score = _confidence(item.get("score"))
            if score is not None:
                out.append(score)
    return out


def prediction_uncertainty(prediction: Any, *, aggregate: str = "min") -> float | None:
    """``1 - confidence`` of one prediction, in [0, 1]; ``None`` when it gives no usable score.

    Parameters
    ----------
    prediction : dict
        One item of a ``/predict`` answer's ``results``: ``{"result": [...], "score": ..., ...}``.
    aggregate : {"min", "mean"}
        How the items' confidences become one: the least confident item, or their mean.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if not isinstance(prediction, dict):
        return None
    scores = item_scores(prediction.get("result"))
    if scores:
        confidence = min(scores) if aggregate == "min" else sum(scores) / len(scores)
        return 1.0 - confidence
    overall = _confidence(prediction.get("score"))
    return None if overall is None else 1.0 - overall


def uncertainties(predictions: Sequence[Any], *, aggregate: str = "min") -> np.ndarray:
    """:func:`prediction_uncertainty` of each prediction, NaN where unknown, shape ``(n,)``."""
    return np.array([np.nan if (u := prediction_uncertainty(p, aggregate=aggregate)) is None else u
                     for p in predictions], dtype=np.float64)


def model_version(prediction: Any) -> str | None:
    """The model version a prediction names (a short printable string), or ``None``."""
    version = prediction.get("model_version") if isinstance(prediction, dict) else None
    if not isinstance(version, str) or not version.strip() or len(version) > 200 or not version.isprintable():
        return None
    return version.strip()
