"""``<Labels>`` over ``<Text>``: parsing, answers, the span model, results and uncertainty (``tasktypes/labels.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.labelstudio.label_config import LabelConfig, parse_label_config
from backend.labelstudio.tasktypes import RESULT_TYPES, TASK_TYPES, LabelsControl, task_type_of
from backend.learning.labeled_set import build_labeled_set
from backend.learning.model import NotEnoughLabelsError
from backend.learning.versions import load_models, pack_version
from backend.selection import scores

pytest.importorskip("pycrfsuite")

NER = ('<View><Labels name="ner" toName="text"><Label value="PER"/><Label value="ORG"/><Label value="LOC"/>'
       '</Labels><Text name="text" value="$text"/></View>')
TASK = TASK_TYPES["labels"]
SENTENCES = [
    ("Angela Merkel visited Paris .", [(0, 13, "PER"), (22, 27, "LOC")]),
    ("Siemens opened a plant in Berlin .", [(0, 7, "ORG"), (26, 32, "LOC")]),
    ("John Smith works for Siemens .", [(0, 10, "PER"), (21, 28, "ORG")]),
    ("The weather was fine .", []),
    ("Paris and Berlin are cities .", [(0, 5, "LOC"), (10, 16, "LOC")]),
    ("Mary Jones met John Smith in Paris .", [(0, 10, "PER"), (15, 25, "PER"), (29, 34, "LOC")]),
    ("Nothing happened today .", []),
    ("Acme hired Mary Jones .", [(0, 4, "ORG"), (11, 21, "PER")]),
] * 3


def _items(text: str, spans, name: str = "ner") -> list[dict]:
    return [{"from_name": name, "to_name": "text", "type": "labels",
             "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}} for s, e, label in spans]


def _control() -> LabelsControl:
    return parse_label_config(NER).controls[0]


def _fitted():
    control = _control()
    answers = [TASK.answer(control, _items(t, s)) for t, s in SENTENCES]
    return control, TASK.make_model(control).fit([t for t, _ in SENTENCES], TASK.targets(control, answers))


def test_labels_over_text_is_predicted_and_stored():
    cfg = parse_label_config(NER)
    control = cfg.controls[0]
    assert task_type_of(control) is TASK and "labels" in RESULT_TYPES
    assert control.labels == ("PER", "ORG", "LOC") and control.to_names == ("text",)
    assert LabelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("xml, reason", [
    ('<View><HyperText name="h" value="$html"/><Labels name="ner" toName="h"><Label value="PER"/></Labels></View>',
     "XPath"),
    ('<View><Paragraphs name="p" value="$dialogue"/><Labels name="ner" toName="p"><Label value="PER"/></Labels>'
     '</View>', "paragraph indices"),
    ('<View><Text name="t" value="$t"/><Labels name="ner" toName="t" value="$labels"/></View>', "dynamic labels"),
    ('<View><Text name="t" value="$t"/><Labels name="ner" toName="t"></Labels></View>', "at least one <Label>"),
    ('<View><Text name="a" value="$a"/><Text name="b" value="$b"/><Labels name="ner" toName="a,b">'
     '<Label value="X"/></Labels></View>', "bind it to one <Text>"),
    ('<View><Image name="i" value="$img"/><Labels name="ner" toName="i"><Label value="X"/></Labels></View>',
     "only <Text> are read"),
])
def test_what_is_refused_says_why(xml, reason):
    cfg = parse_label_config(xml.replace("</View>", '<Text name="x" value="$x"/><Choices name="c" toName="x">'
                                                   '<Choice value="a"/><Choice value="b"/></Choices></View>'))
    assert [i.name for i in cfg.ignored] == ["ner"] and reason in cfg.ignored[0].reason


def test_answers_are_span_sets_and_malformed_ones_are_skipped():
    control, text = _control(), "Angela Merkel visited Paris ."
    got = TASK.answer(control, _items(text, [(22, 27, "LOC"), (0, 13, "PER")]))
    assert got == ((0, 13, "PER", "Angela Merkel"), (22, 27, "LOC", "Paris"))
    assert TASK.answer(control, []) == ()  # no spans marked: no entities
    # A label the config no longer has is dropped (no entity under this config); the rest stays.
    assert TASK.answer(control, _items(text, [(0, 13, "GONE"), (22, 27, "LOC")])) == ((22, 27, "LOC", "Paris"),)
    for bad in ({"start": 5, "end": 2, "labels": ["PER"]}, {"start": -1, "end": 2, "labels": ["PER"]},
                {"start": "/p[1]", "end": "/p[1]", "labels": ["PER"]}, {"start": 0, "end": 2}, None):
        assert TASK.answer(control, [{"type": "labels", "value": bad}]) is None, bad


def test_an_empty_annotation_is_no_entities_and_a_cancelled_one_nothing():
    cfg = parse_label_config(NER)
    anns = [{"id": 1, "task": 1, "result": []},
            {"id": 2, "task": 2, "result": [], "was_cancelled": True},
            {"id": 3, "task": 3, "result": _items("Paris .", [(0, 5, "LOC")])}]
    labeled = build_labeled_set(anns, cfg)
    assert labeled.answers["ner"] == {1: (), 3: ((0, 5, "LOC", "Paris"),)}


def test_consensus_is_the_majority_span_set_then_the_latest():
    control = _control()
    a, b = ((0, 5, "LOC", "Paris"),), ((0, 5, "ORG", "Paris"),)
    assert TASK.consensus([a, b, a]) == (a, False)
    assert TASK.consensus([a, b]) == (b, True)


def test_the_model_trains_on_texts_and_serves_exact_spans_through_storage():
    control, model = _fitted()
    stored = load_models(pack_version({"ner": model}, np.zeros(0), None, {"ner": "labels"}))["ner"]
    text = "Mary Jones visited Berlin ."
    out = TASK.output(stored, [text, "Nothing at all ."])
    rows = TASK.results(control, stored, out)
    assert len(rows) == 2
    for item in rows[0]:
        v = item["value"]
        assert text[v["start"]:v["end"]] == v["text"] and v["labels"][0] in control.labels
        assert item["type"] == "labels" and item["to_name"] == "text" and 0 < item["score"] <= 1
    assert {(i["value"]["text"], i["value"]["labels"][0]) for i in rows[0]} >= {("Berlin", "LOC")}
    # min_confidence drops uncertain spans; a sentence without entities gets an empty list.
    assert TASK.results(control, stored, out, min_confidence=1.01) == [[], []]


def test_a_span_not_in_its_text_is_skipped_by_the_model_not_fatal():
    control = _control()
    texts = [t for t, _ in SENTENCES] + ["Short ."]
    answers = [TASK.answer(control, _items(t, s)) for t, s in SENTENCES] + [((40, 45, "PER", "Smith"),)]
    model = TASK.make_model(control).fit(texts, answers)
    assert list(model.skipped_) == [len(texts) - 1] and "not in the task's text" in model.skipped_[len(texts) - 1]


def test_only_empty_answers_are_not_enough_to_train():
    control = _control()
    with pytest.raises(NotEnoughLabelsError):
        TASK.make_model(control).fit(["Nothing here .", "Nor here ."], [(), ()])


def test_uncertainty_is_what_every_strategy_ranks_by():
    control, model = _fitted()
    out = TASK.output(model, ["Angela Merkel visited Paris .", "Zorblax Quintavious met Vrettana Oolf ."])
    u = TASK.uncertainty(model, out)
    measures = TASK.measures(model, out)
    assert set(measures) >= {"least_confident", "mean_token_margin", "min_token_margin", "expected_entities"}
    assert np.allclose(u, measures["least_confident_raw"]) and u[1] > u[0]
    assert np.allclose(scores.margin_uncertainty(TASK.as_probabilities(model, out)), u)


def test_answer_keys_and_distribution_for_the_dashboard():
    a = ((0, 5, "LOC", "Paris"), (10, 16, "LOC", "Berlin"))
    assert TASK.answer_key(a) == "0-5 LOC; 10-16 LOC" and TASK.answer_key(()) == "(no entities)"
    assert TASK.distribution([a, (), ()]) == {"LOC": 2, "(no entities)": 2}
