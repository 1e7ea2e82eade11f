"""One uncertainty per task out of another ML backend's predictions, whatever their kind."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.remote.uncertainty import model_version, prediction_uncertainty, uncertainties


def _item(kind: str, score=None, **value) -> dict:
    item = {"from_name": "x", "to_name": "y", "type": kind, "value": value}
    if score is not None:
        item["score"] = score
    return item


@pytest.mark.parametrize("kind", ["choices", "labels", "rectanglelabels", "polygonlabels", "keypointlabels",
                                  "brushlabels", "ellipselabels", "rating", "number"])
def test_the_least_confident_item_decides(kind):
    prediction = {"result": [_item(kind, 0.9), _item(kind, 0.4), _item(kind, 0.7)], "score": 0.99}
    assert prediction_uncertainty(prediction) == pytest.approx(0.6)
    assert prediction_uncertainty(prediction, aggregate="mean") == pytest.approx(1 - (0.9 + 0.4 + 0.7) / 3)


def test_without_item_scores_the_prediction_score_is_used():
    assert prediction_uncertainty({"result": [_item("number", number=3.5)], "score": 0.8}) == pytest.approx(0.2)
    # A detector that found nothing but says how sure it is of that.
    assert prediction_uncertainty({"result": [], "score": 0.25}) == pytest.approx(0.75)


@pytest.mark.parametrize("prediction", [
    {"result": [_item("textarea", 0.5)]},             # a type that is not scored
    {"result": [_item("choices", "0.9")], "score": None},   # a score that is text
    {"result": [_item("choices", True)]},             # a boolean is no score
    {"result": [_item("choices", float("nan"))]},
    {"result": [_item("choices", 87)]},               # a percentage is not a confidence in [0, 1]
    {"result": "not a list", "score": -0.1},
    None, "x", [], {},
])
def test_hostile_or_scoreless_answers_have_no_uncertainty(prediction):
    assert prediction_uncertainty(prediction) is None


def test_a_bad_item_does_not_hide_the_good_ones():
    prediction = {"result": [_item("rectanglelabels", "high"), "junk", _item("rectanglelabels", 0.3),
                             _item("relation"), {"type": "rectanglelabels"}]}
    assert prediction_uncertainty(prediction) == pytest.approx(0.7)


def test_uncertainties_mark_the_unknown_as_nan():
    u = uncertainties([{"result": [_item("choices", 0.6)]}, {}, {"score": 1.0}])
    assert u[0] == pytest.approx(0.4) and math.isnan(u[1]) and u[2] == 0.0
    assert u.dtype == np.float64


def test_an_unknown_aggregate_is_refused():
    with pytest.raises(ValueError, match="aggregate must be one of"):
        prediction_uncertainty({}, aggregate="max")


@pytest.mark.parametrize("version, expected", [
    ("yolo-v8 2026-12-01", "yolo-v8 2026-12-01"), ("  v2 ", "v2"), ("", None), (3, None), ("x" * 201, None),
    ("bad\nversion", None),
])
def test_model_versions_are_short_printable_strings(version, expected):
    assert model_version({"model_version": version}) == expected
