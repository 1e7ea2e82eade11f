"""Task types: the one place that knows a control tag (``backend/labelstudio/tasktypes``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np
import pytest
import scipy.sparse as sp

from backend.labelstudio import tasktypes
from backend.labelstudio.label_config import LabelConfig, parse_label_config
from backend.labelstudio.tasktypes import (
    RESULT_TYPES,
    TASK_TYPES,
    ChoicesControl,
    Control,
    NotPredicted,
    TaskType,
    control_from_dict,
    register,
    task_type_of,
)
from backend.labelstudio.tasktypes.base import object_tag
from backend.learning.labeled_set import build_labeled_set
from backend.learning.model import ChoicesClassifier
from backend.learning.versions import load_models, pack_version
from backend.selection import scores

TEXT = '<Text name="text" value="$text"/>'
SINGLE = f'<View>{TEXT}<Choices name="s" toName="text"><Choice value="a"/><Choice value="b"/></Choices></View>'
MULTI = (f'<View>{TEXT}<Choices name="m" toName="text" choice="multiple">'
         '<Choice value="x"/><Choice value="y"/><Choice value="z"/></Choices></View>')


def _ann(task: int, from_name: str, value: dict, type_: str = "choices", ann_id: int = 1) -> dict:
    return {"id": ann_id, "task": task, "updated_at": f"2026-11-30T00:00:{ann_id:02d}Z",
            "result": [{"from_name": from_name, "to_name": "text", "type": type_, "value": value}]}


def test_choices_is_registered_for_its_tag_and_result_type():
    assert task_type_of(parse_label_config(SINGLE).controls[0]) is TASK_TYPES["choices"]
    assert "choices" in RESULT_TYPES and tasktypes.BY_TAG["Choices"] is TASK_TYPES["choices"]


def test_parsed_controls_carry_their_task_type_through_storage():
    cfg = parse_label_config(SINGLE)
    stored = cfg.to_dict()
    assert stored["controls"][0]["task_type"] == "choices"
    assert LabelConfig.from_dict(stored) == cfg
    # Configs stored before task types were named are <Choices>.
    del stored["controls"][0]["task_type"]
    assert LabelConfig.from_dict(stored) == cfg


def test_choices_answers_drop_options_the_config_no_longer_has():
    single, multi = parse_label_config(SINGLE).controls[0], parse_label_config(MULTI).controls[0]
    t = task_type_of(single)
    assert t.answer(single, [{"value": {"choices": ["gone", "b"]}}]) == "b"
    assert t.answer(single, [{"value": {"choices": ["gone"]}}]) is None
    assert t.answer(multi, [{"value": {"choices": ["z", "x", "gone"]}}]) == frozenset({"x", "z"})
    assert t.targets(multi, [frozenset({"z", "x"})]) == [["x", "z"]]


def test_single_choice_models_weigh_classes_as_the_simulator_does():
    from backend.simulation import replay
    single, multi = parse_label_config(SINGLE).controls[0], parse_label_config(MULTI).controls[0]
    t = task_type_of(single)
    assert t.make_model(single).class_weight == "balanced" == replay.Protocol().class_weight
    assert replay.LOOP["class_weight"] == "balanced" and replay.BATCH["class_weight"] is None
    model = t.make_model(multi)
    assert model.multiple and model.class_weight is None


@pytest.mark.parametrize("value", [[], "b", {"choices": "b"}, {"choices": [{"b": 1}, ["b"]]}, None])
def test_choices_answers_of_a_malformed_value_are_no_answer(value):
    """An export or a Redis value shaped unlike Label Studio's result never crashes training."""
    single, multi = parse_label_config(SINGLE).controls[0], parse_label_config(MULTI).controls[0]
    assert task_type_of(single).answer(single, [{"value": value}]) is None
    assert task_type_of(multi).answer(multi, [{"value": value}]) == frozenset()


def test_choices_results_carry_the_models_probability_and_respect_min_confidence():
    single = parse_label_config(SINGLE).controls[0]
    t = task_type_of(single)
    model = ChoicesClassifier()
    model.classes_ = np.array(["a", "b", "gone"])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.45, 0.55, 0.0]])
    items = t.results(single, model, proba, min_confidence=0.5)
    assert items[0] == {"from_name": "s", "to_name": "text", "type": "choices",
                        "value": {"choices": ["a"]}, "score": 0.7}
    assert items[1] is None  # "b" at 0.3 is below 0.5; "gone" is never proposed
    assert items[2]["value"] == {"choices": ["b"]} and items[2]["score"] == 0.55
    assert np.allclose(t.uncertainty(model, proba[:, :2]), scores.margin_uncertainty(proba[:, :2]))


def test_stored_models_are_read_back_by_their_task_type_and_bad_types_are_not_served():
    X = np.eye(4, dtype=np.float32)

    model = ChoicesClassifier().fit(sp.csr_matrix(X), ["a", "b", "a", "b"])
    arts = pack_version({"s": model}, np.zeros(3), None, {"s": "choices"})
    assert np.allclose(load_models(arts)["s"].coef_, model.coef_)
    assert load_models({**arts, "model_types": b'{"s": "no-such-type"}'}) == {}
    assert "s" in load_models({**arts, "model_types": b"not json"})  # unreadable: read as <Choices>


# -- a new task type is one module plus its registration ------------------------------


@dataclass(frozen=True)
class StarsControl(Control):
    max_rating: int = 5
    task_type: str = "test-stars"


class StarsTask(TaskType):
    """A toy: predict a made-up ``<Stars>`` control of the text as a class among its stars."""

    name = "test-stars"
    tags = ("Stars",)
    result_type = "stars"
    supported = "<Stars> of a <Text> (test only)"

    def parse(self, el, objects):
        if el.get("toName") not in objects:
            raise NotPredicted("its toName names no object tag")
        return StarsControl(name=el.get("name"), objects=(object_tag(objects[el.get("toName")]),),
                             max_rating=int(el.get("maxRating") or 5))

    def control_from_dict(self, d):
        from backend.labelstudio.tasktypes import ObjectTag

        return StarsControl(name=d["name"], objects=tuple(ObjectTag(**o) for o in d["objects"]),
                             max_rating=d["max_rating"])

    def answer(self, control, items) -> Hashable | None:
        rating = (items[0].get("value") or {}).get("stars")
        return str(rating) if isinstance(rating, int) and 1 <= rating <= control.max_rating else None

    def targets(self, control, answers: Sequence[Hashable]) -> list:
        return list(answers)

    def make_model(self, control):
        return ChoicesClassifier()

    def load_model(self, raw):
        return ChoicesClassifier.from_bytes(raw)

    def results(self, control, model, proba, min_confidence=0.0):
        best = proba.argmax(axis=1)
        return [{"from_name": control.name, "to_name": control.to_names[0], "type": "stars",
                 "value": {"stars": int(model.classes_[b])}, "score": float(p[b])} for b, p in zip(best, proba)]

    def uncertainty(self, model, proba):
        return scores.margin_uncertainty(proba)


@pytest.fixture
def stars_registered():
    saved = dict(TASK_TYPES), dict(tasktypes.BY_TAG), set(RESULT_TYPES)
    register(StarsTask())
    yield
    TASK_TYPES.clear(), TASK_TYPES.update(saved[0])
    tasktypes.BY_TAG.clear(), tasktypes.BY_TAG.update(saved[1])
    RESULT_TYPES.clear(), RESULT_TYPES.update(saved[2])


RATED = f'<View>{TEXT}<Stars name="stars" toName="text" maxRating="3"/></View>'


def test_an_unregistered_tag_is_ignored_with_a_reason():
    with pytest.raises(ValueError, match="<Stars> controls are not predicted"):
        parse_label_config(RATED)


def test_a_registered_task_type_is_parsed_stored_and_trained_on(stars_registered):
    cfg = parse_label_config(RATED)
    (control,) = cfg.controls
    assert isinstance(control, StarsControl) and control.max_rating == 3
    assert control_from_dict(cfg.to_dict()["controls"][0]) == control
    anns = [_ann(1, "stars", {"stars": 3}, "stars", 1), _ann(2, "stars", {"stars": 1}, "stars", 2),
            _ann(3, "stars", {"stars": 9}, "stars", 3)]
    labeled = build_labeled_set(anns, cfg)
    assert labeled.answers["stars"] == {1: "3", 2: "1"}  # 9 stars is out of range: no answer
    assert "stars" in RESULT_TYPES
    # A config mixing both task types predicts both.
    both = parse_label_config(SINGLE.replace("</View>", '<Stars name="stars" toName="text"/></View>'))
    assert [type(c) for c in both.controls] == [ChoicesControl, StarsControl]


def test_registering_a_tag_twice_is_refused(stars_registered):
    with pytest.raises(ValueError, match="registered already"):
        register(StarsTask())
