"""``<Number>`` and ``<Rating>`` as a task type (``backend/labelstudio/tasktypes/number.py``).

Result items are in the shape Label Studio 1.23.2 stores: ``type`` ``"number"``
with ``value: {"number": x}``, ``type`` ``"rating"`` with ``value: {"rating": n}``
(its editor's ``Number.js``/``Rating.js`` and the tests in its wheel).  The
models are real: fitted on scikit-learn's diabetes set or on hashed n-grams.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from backend.labelstudio.label_config import LabelConfig
from backend.labelstudio.tasktypes.base import NotPredicted, ObjectTag, TaskType
from backend.labelstudio.tasktypes.number import NumberControl, NumberTask, snap
from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.learning.regressor import CommitteeRegressor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "label-configs"
TEXT = '<Text name="text" value="$text"/>'
TASK = NumberTask()


def _parse(xml: str, name: str | None = None) -> NumberControl:
    """Parse the ``<Number>``/``<Rating>`` of ``xml`` the way ``parse_label_config`` finds elements."""
    root = SafeET.fromstring(xml)
    objects: dict[str, Element] = {}
    controls: list[Element] = []
    for el in root.iter():
        if el.tag in NumberTask.tags:
            controls.append(el)
        elif el.get("name") and (el.get("value") or "").startswith("$"):
            objects[el.get("name")] = el
    el = next(c for c in controls if name is None or c.get("name") == name)
    return TASK.parse(el, objects)


def _refusal(xml: str) -> str:
    with pytest.raises(NotPredicted) as why:
        _parse(xml)
    return str(why.value)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def model(diabetes) -> CommitteeRegressor:
    X, y = diabetes
    return TASK.make_model(_parse(f'<View>{TEXT}<Number name="n" toName="text"/></View>')).fit(X[:300], y[:300])


# -- the task type ------------------------------------------------------------------
def test_it_is_a_complete_task_type_reading_both_result_types():
    assert isinstance(TASK, TaskType)
    assert TASK.name == "number" and TASK.tags == ("Number", "Rating")
    assert TASK.result_type == "number" and NumberTask.result_types == ("number", "rating")
    assert "<Number>" in TASK.supported and "<Rating>" in TASK.supported


# -- parsing ------------------------------------------------------------------------
def test_a_number_over_text():
    c = _parse(f'<View>{TEXT}<Number name="n" toName="text" min="0" max="100"/></View>')
    assert c == NumberControl(name="n", objects=(ObjectTag(name="text", tag="Text", value_key="text"),),
                              result_kind="number", min=0.0, max=100.0, step=None)
    assert c.task_type == "number" and c.to_names == ("text",)


def test_a_number_with_a_step_over_an_image():
    c = _parse('<View><Image name="image" value="$image"/>'
               '<Number name="age" toName="image" min="0" max="120" step="0.5"/></View>')
    assert c.objects[0].tag == "Image" and c.objects[0].value_key == "image"
    assert (c.result_kind, c.min, c.max, c.step) == ("number", 0.0, 120.0, 0.5)


def test_a_number_over_a_table_without_bounds():
    c = _parse('<View><Table name="row" value="$row"/><Number name="price" toName="row"/></View>')
    assert c.objects[0].tag == "Table" and (c.min, c.max, c.step) == (None, None, None)


def test_a_rating_is_a_whole_number_from_one_to_max_rating():
    c = _parse(f'<View>{TEXT}<Rating name="rating" toName="text" maxRating="10"/></View>')
    assert (c.result_kind, c.min, c.max, c.step) == ("rating", 1.0, 10.0, 1.0)
    # Label Studio's default maxRating is 5.
    assert _parse(f'<View>{TEXT}<Rating name="r" toName="text"/></View>').max == 5.0


def test_the_rating_of_the_sentiment_fixture_config():
    c = _parse((FIXTURES / "sentiment-rating.xml").read_text())
    assert (c.name, c.to_names, c.result_kind, c.max) == ("rating", ("text",), "rating", 5.0)


def test_a_rating_of_two_texts_binds_both():
    c = _parse('<View><Text name="q" value="$question"/><HyperText name="a" value="$answer"/>'
               '<Rating name="rating" toName="q,a"/></View>')
    assert c.to_names == ("q", "a") and [o.value_key for o in c.objects] == ["question", "answer"]


@pytest.mark.parametrize("xml, reason", [
    (f'<View>{TEXT}<Number name="n" toName="text" perRegion="true"/></View>', "per-region numbers"),
    (f'<View>{TEXT}<Rating name="r" toName="text" perRegion="true"/></View>', "per-region ratings"),
    (f'<View>{TEXT}<Rating name="r" toName="text" perItem="true"/></View>', "per-item ratings"),
    (f'<View>{TEXT}<Number name="n" toName=""/></View>', "toName is empty"),
    (f'<View>{TEXT}<Rating name="r"/></View>', "toName is empty"),
    (f'<View>{TEXT}<Number name="n" toName="txt"/></View>', 'toName="txt" names no object tag'),
    (f'<View>{TEXT}<Number name="n" toName="text" min="zero"/></View>', 'min="zero" is not a number'),
    (f'<View>{TEXT}<Number name="n" toName="text" max="inf"/></View>', 'max="inf" is not a finite number'),
    (f'<View>{TEXT}<Number name="n" toName="text" min="5" max="5"/></View>', r"min \(5\) must be less than max \(5\)"),
    (f'<View>{TEXT}<Number name="n" toName="text" min="10" max="1"/></View>', "must be less than max"),
    (f'<View>{TEXT}<Number name="n" toName="text" step="0"/></View>', 'step="0" must be greater than 0'),
    (f'<View>{TEXT}<Number name="n" toName="text" min="0" max="1" step="2"/></View>', "single value"),
    (f'<View>{TEXT}<Rating name="r" toName="text" maxRating="1"/></View>', "maxRating=\"1\" must be a whole"),
    (f'<View>{TEXT}<Rating name="r" toName="text" maxRating="4.5"/></View>', "whole number from 2"),
    (f'<View>{TEXT}<Rating name="r" toName="text" maxRating="five"/></View>', 'maxRating="five" is not a number'),
    ('<View><Audio name="audio" value="$audio"/><Number name="n" toName="audio"/></View>',
     r'it reads <Audio name="audio">; only <Text>, <HyperText>, <Paragraphs>, <Image>, <Table>, <TimeSeries> are read'),
    # Label Studio's side-by-side template: one model reads one image's features, so it is refused.
    ('<View><Image name="image1" value="$a"/><Image name="image2" value="$b"/>'
     '<Rating name="rating" toName="image1,image2"/></View>', "it reads 2 image objects; bind it to one"),
    (f'<View>{TEXT}<Image name="img" value="$img"/><Number name="n" toName="text,img"/></View>',
     "image and text at once"),
])
def test_refusals_say_why_in_words_a_user_can_act_on(xml, reason):
    assert re.search(reason, _refusal(xml)), _refusal(xml)


# -- storage of the parsed control ------------------------------------------------------
@pytest.mark.parametrize("xml", [
    f'<View>{TEXT}<Number name="n" toName="text" min="-2.5" max="100" step="0.5"/></View>',
    f'<View>{TEXT}<Number name="n" toName="text"/></View>',
    f'<View>{TEXT}<Rating name="r" toName="text" maxRating="7"/></View>',
    '<View><Image name="img" value="$url" valueType="url"/><Number name="n" toName="img" max="9"/></View>',
])
def test_a_control_round_trips_through_label_config_storage(xml):
    c = _parse(xml)
    assert TASK.control_from_dict(asdict(c)) == c
    stored = json.loads(json.dumps(LabelConfig(controls=(c,), config_hash="h").to_dict()))  # as kept in Redis
    back = TASK.control_from_dict(stored["controls"][0])
    assert back == c and isinstance(back, NumberControl) and stored["controls"][0]["task_type"] == "number"


def test_a_stored_control_of_an_unknown_kind_is_refused():
    d = asdict(_parse(f'<View>{TEXT}<Number name="n" toName="text"/></View>'))
    with pytest.raises(ValueError, match="result_kind 'stars'"):
        TASK.control_from_dict({**d, "result_kind": "stars"})


# -- annotations -> targets ------------------------------------------------------------
def _item(from_name: str, type_: str, value: object) -> dict:
    """A result item as Label Studio 1.23.2's editor submits it."""
    return {"id": "Xk3_pQ", "from_name": from_name, "to_name": "text", "type": type_, "origin": "manual",
            "value": value}


def test_answers_are_the_annotators_numbers():
    number = _parse(f'<View>{TEXT}<Number name="n" toName="text" min="0" max="100"/></View>')
    rating = _parse(f'<View>{TEXT}<Rating name="r" toName="text"/></View>')
    assert TASK.answer(number, [_item("n", "number", {"number": 42})]) == 42.0
    assert TASK.answer(number, [_item("n", "number", {"number": 12.5})]) == 12.5
    assert TASK.answer(rating, [_item("r", "rating", {"rating": 4})]) == 4.0
    assert isinstance(TASK.answer(rating, [_item("r", "rating", {"rating": 4})]), float)
    # Outside the range (imported through the API, or the range narrowed since): kept as given.
    assert TASK.answer(number, [_item("n", "number", {"number": 150})]) == 150.0
    assert TASK.targets(number, [42.0, 12.5, 3]) == [42.0, 12.5, 3.0]


@pytest.mark.parametrize("value", [
    {}, {"number": None}, {"number": "5"}, {"number": True}, {"number": float("nan")}, {"number": float("inf")},
    {"number": [5]}, {"rating": 4}, "5", None,
])
def test_malformed_items_give_no_answer(value):
    number = _parse(f'<View>{TEXT}<Number name="n" toName="text"/></View>')
    assert TASK.answer(number, [_item("n", "number", value)]) is None


def test_no_items_no_answer():
    assert TASK.answer(_parse(f'<View>{TEXT}<Number name="n" toName="text"/></View>'), []) is None


# -- model output -> Label Studio results --------------------------------------------------
def test_output_is_the_committee_mean_and_spread(diabetes, model):
    X, _ = diabetes
    out = TASK.output(model, X[300:])
    assert out.shape == (142, 2) and out.dtype == np.float64
    assert np.allclose(out[:, 0], model.predict(X[300:])) and np.allclose(out[:, 1], model.predict_std(X[300:]))


def test_number_results_are_label_studio_items_clipped_and_on_the_step_grid(diabetes, model):
    X, _ = diabetes
    c = _parse(f'<View>{TEXT}<Number name="progress" toName="text" min="50" max="250" step="5"/></View>')
    out = TASK.output(model, X[300:])
    items = TASK.results(c, model, out)
    assert len(items) == len(out) and all(i is not None for i in items)
    for item, (mean, _) in zip(items, out):
        assert set(item) == {"from_name", "to_name", "type", "value", "score"}
        assert (item["from_name"], item["to_name"], item["type"]) == ("progress", "text", "number")
        assert list(item["value"]) == ["number"]
        v = item["value"]["number"]
        assert 50 <= v <= 250 and (v - 50) % 5 == 0 and isinstance(v, int)
        assert abs(v - min(max(mean, 50), 250)) <= 2.5 + 1e-9
        assert 0 < item["score"] <= 1
    json.dumps(items)  # plain JSON types only (no numpy scalars)


def test_values_are_clipped_to_min_and_max_and_kept_on_the_grid(model):
    free = _parse(f'<View>{TEXT}<Number name="n" toName="text" min="0" max="100"/></View>')
    out = np.array([[-50.0, 1.0], [1000.0, 1.0], [42.123456789, 1.0]])
    assert [i["value"]["number"] for i in TASK.results(free, model, out)] == [0, 100, 42.123457]
    stepped = _parse(f'<View>{TEXT}<Number name="n" toName="text" min="0" max="10" step="3"/></View>')
    # 10 is not on the grid 0, 3, 6, 9: the largest value Label Studio accepts is 9.
    assert [i["value"]["number"] for i in TASK.results(stepped, model, out)] == [0, 9, 9]
    tenths = _parse(f'<View>{TEXT}<Number name="n" toName="text" step="0.1"/></View>')
    assert TASK.results(tenths, model, np.array([[0.29, 1.0]]))[0]["value"]["number"] == 0.3
    unbounded = _parse(f'<View>{TEXT}<Number name="n" toName="text"/></View>')
    assert TASK.results(unbounded, model, np.array([[-1e6 - 0.5, 1.0]]))[0]["value"]["number"] == -1000000.5


def test_rating_results_are_whole_stars_from_one_to_max_rating(model):
    c = _parse(f'<View>{TEXT}<Rating name="stars" toName="text" maxRating="10"/></View>')
    items = TASK.results(c, model, np.array([[0.2, 1.0], [11.7, 1.0], [3.6, 1.0], [4.5, 1.0], [2.5, 1.0]]))
    assert [i["type"] for i in items] == ["rating"] * 5
    # Halves round up (not to even): 4.5 -> 5 and 2.5 -> 3 alike.
    assert [i["value"] for i in items] == [{"rating": 1}, {"rating": 10}, {"rating": 4}, {"rating": 5}, {"rating": 3}]
    assert all(type(i["value"]["rating"]) is int for i in items)


def test_a_control_about_several_objects_names_one_of_them(model):
    """label-studio-sdk 2.1.2's validator refuses ``to_name="a,b"``: it must be one name from the toName list."""
    c = _parse('<View><Text name="a" value="$a"/><Text name="b" value="$b"/>'
               '<Rating name="r" toName="a,b"/></View>')
    assert TASK.results(c, model, np.array([[3.0, 0.0]]))[0]["to_name"] == "a"


def test_score_falls_with_the_spread_and_min_confidence_hides_unsure_items(model):
    c = _parse(f'<View>{TEXT}<Number name="n" toName="text"/></View>')
    s = model.y_scale_
    out = np.array([[100.0, 0.0], [100.0, s / 10], [100.0, s], [100.0, 10 * s]])
    scores = [i["score"] for i in TASK.results(c, model, out)]
    assert scores == pytest.approx([1.0, 1 / 1.1, 0.5, 1 / 11], abs=1e-6)
    assert scores == sorted(scores, reverse=True)
    shown = TASK.results(c, model, out, min_confidence=0.5)
    assert [i is not None for i in shown] == [True, True, True, False]
    assert TASK.results(c, model, np.array([[math.nan, 0.0]])) == [None]


def test_uncertainty_rises_with_the_committee_spread(diabetes, model):
    s = model.y_scale_
    u = TASK.uncertainty(model, np.array([[0.0, 0.0], [0.0, s / 10], [0.0, s], [0.0, 10 * s], [0.0, math.nan]]))
    assert u[0] == 0.0 and u[2] == pytest.approx(0.5) and u[4] == 1.0
    assert np.all(np.diff(u) > 0) and np.all((u >= 0) & (u <= 1))
    # On real data: patients far from the labeled ones are asked about first.
    X, _ = diabetes
    near = TASK.uncertainty(model, TASK.output(model, X[300:]))
    far = TASK.uncertainty(model, TASK.output(model, X[300:] * 8))
    assert far.mean() > near.mean() and np.mean(far > near) > 0.9
    c = _parse(f'<View>{TEXT}<Number name="n" toName="text"/></View>')
    scores = np.array([i["score"] for i in TASK.results(c, model, TASK.output(model, X[300:]))])
    assert np.allclose(scores, 1 - near, atol=1e-6)  # Label Studio's lowest-score-first order is the same


def test_output_of_the_wrong_shape_is_refused(model):
    c = _parse(f'<View>{TEXT}<Number name="n" toName="text"/></View>')
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        TASK.results(c, model, np.zeros((3, 4)))


def test_snap_returns_whole_numbers_as_int():
    c = _parse(f'<View>{TEXT}<Number name="n" toName="text" min="-5" step="2"/></View>')
    assert snap(c, 0.2) == 1 and type(snap(c, 0.2)) is int  # the grid starts at min: -5, -3, -1, 1, ...
    assert snap(c, -100.0) == -5


# -- the whole path on text ---------------------------------------------------------------
def test_a_rating_model_learns_from_hashed_ngrams():
    c = _parse(f'<View>{TEXT}<Rating name="stars" toName="text" maxRating="5"/></View>')
    good = ["a great film, loved it", "great acting and a great story", "loved every minute, great", "great fun"]
    bad = ["an awful film, hated it", "awful acting and a dull story", "hated every minute, awful", "awful mess"]
    annotations = [[_item("stars", "rating", {"rating": 5})]] * 4 + [[_item("stars", "rating", {"rating": 1})]] * 4
    y = TASK.targets(c, [TASK.answer(c, items) for items in annotations])
    featurizer = NgramFeaturizer()
    m = TASK.make_model(c).fit(featurizer.transform(good + bad), y)
    m = TASK.load_model(m.to_bytes())
    items = TASK.results(c, m, TASK.output(m, featurizer.transform(["great, loved it", "awful, hated it"])))
    assert items[0]["value"]["rating"] > items[1]["value"]["rating"]
    assert items[0]["value"]["rating"] >= 4 and items[1]["value"]["rating"] <= 2


# -- registered: what the rest of the backend reads -------------------------------------------


def test_number_and_rating_are_registered_with_both_result_types():
    from backend.labelstudio import tasktypes

    assert tasktypes.BY_TAG["Number"] is tasktypes.BY_TAG["Rating"] is tasktypes.TASK_TYPES["number"]
    assert {"number", "rating", "choices"} <= tasktypes.RESULT_TYPES


def test_the_annotators_consensus_is_the_median_and_never_a_tie():
    assert TASK.consensus([4.0, 5.0, 1.0]) == (4.0, False)
    assert TASK.consensus([2.0, 3.0]) == (2.5, False)


def test_the_probability_view_ranks_every_strategy_by_the_committees_spread():
    from backend.selection import scores, strategies

    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    model = CommitteeRegressor().fit(X[:20], X[:20, 0] * 3 + 1)
    output = TASK.output(model, X)
    view = TASK.as_probabilities(model, output)
    u = TASK.uncertainty(model, output)
    assert np.allclose(view.sum(axis=1), 1) and np.allclose(scores.margin_uncertainty(view), u)
    assert np.allclose(strategies.mean_uncertainty({"n": model}, {"n": view}, 40), u)
    # Entropy and the committee strategies order the pool as the spread does.
    pool = strategies.Pool(X=X, probas={"n": view}, models={"n": model}, labeled_X=X[:20], labeled_y=list(X[:20, 0]))
    for name in ("entropy", "committee-vote", "least-confidence"):
        ranked = strategies.rank_pool(pool, strategies.SelectionParams(strategy=name, control_share=0,
                                                                       near_duplicate_threshold=None),
                                      np.random.default_rng(0))
        assert np.all(np.diff(u[ranked.order]) <= 1e-12), name
