"""The simulator on named entities (``<Labels>``): real CoNLL-2003 sentences, the worker's tagger, entity F1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.cli import main
from backend.labelstudio.tasktypes import TASK_TYPES
from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.learning.span_model import span_scores
from backend.learning.spans import entity_scores
from backend.simulation.datasets import load_dataset
from backend.simulation.replay import Oracle, Protocol, load_source, make_split, run_strategy
from backend.simulation.targets import LABELS, TARGETS

SMALL = {"seeds": 1, "budget": 60, "batch_size": 20, "initial": 20, "max_rows": 600, "warm_start": False}


@pytest.fixture(scope="module")
def conll():
    return load_dataset("conll2003-en")


def test_the_built_in_is_sentences_and_their_spans(conll):
    assert conll.target == LABELS and conll.kind == "text" and len(conll) == 14_041
    assert TARGETS[LABELS].classes(conll.labels) == ["LOC", "MISC", "ORG", "PER"]
    text, spans = conll.texts[0], conll.labels[0]
    assert spans and all(text[s:e].strip() == text[s:e] for s, e, _ in spans)


def test_a_run_scores_the_worker_tagger_by_entity_f1_on_the_test_split(conll):
    protocol = Protocol(strategies=("random", "margin"), **SMALL)
    target = TARGETS[LABELS]
    split = make_split(conll.labels, protocol, 0, target)
    assert len(split.pool) + len(split.test) == 600 and not set(split.pool) & set(split.test)
    X = NgramFeaturizer().transform(conll.texts)
    texts = np.asarray(conll.texts, dtype=object)
    oracle = Oracle(conll.labels, split.pool)
    curve = run_strategy(X, conll.labels, split, "margin", protocol, 0, target=target, inputs=texts, oracle=oracle)
    assert curve.labels == [20, 40, 60] and len(oracle.asked) == 60
    assert set(oracle.asked) <= set(split.pool.tolist())
    # The last point: the task type's model on exactly the sentences asked, its spans scored against the truth.
    asked = oracle.asked
    task_type = TASK_TYPES[LABELS]
    model = target.new_model(None).fit([conll.texts[i] for i in asked], [conll.labels[i] for i in asked])
    tagged = task_type.output(model, [conll.texts[i] for i in split.test])
    predicted = [[(t.tokens[i].start, t.tokens[j - 1].end, label)
                  for i, j, label, _ in span_scores(t.tagging, list(model.classes_))] for t in tagged]
    expected = entity_scores([conll.labels[i] for i in split.test], predicted)
    assert curve.scores["entity_f1"][-1] == pytest.approx(expected["f1"])
    assert curve.scores["entity_recall"][-1] == pytest.approx(expected["recall"])
    assert curve.scores["entity_f1"][-1] > 0.3  # 60 sentences learn real entities


def _export(tmp_path, conll) -> tuple:
    """An NER project's export: spans by one annotator, an empty annotation (no entities), a cancelled one."""
    tasks, expected = [], []
    for i in range(60):
        text, spans = conll.texts[i], conll.labels[i]
        result = [{"from_name": "label", "to_name": "text", "type": "labels",
                   "value": {"start": s, "end": e, "text": text[s:e], "labels": [lab]}} for s, e, lab in spans]
        if i == 5:
            result = []  # submitted without marking anything: no entities
        tasks.append({"id": 100 + i, "data": {"text": text}, "annotations": [{"id": i, "result": result}]})
        expected.append(() if i == 5 else tuple(spans))
    tasks.append({"id": 999, "data": {"text": "skipped"}, "annotations": [{"id": 999, "was_cancelled": True,
                                                                             "result": []}]})
    path = tmp_path / "ner-export.json"
    path.write_text(json.dumps(tasks))
    config = tmp_path / "config.xml"
    config.write_text('<View><Labels name="label" toName="text"><Label value="PER"/><Label value="ORG"/>'
                      '<Label value="LOC"/><Label value="MISC"/></Labels><Text name="text" value="$text"/></View>')
    return path, config, expected


def test_an_export_of_an_ner_project_is_read_with_empty_annotations_as_no_entities(tmp_path, conll, caplog):
    path, config, expected = _export(tmp_path, conll)
    ds = load_source(str(path), label_config=str(config))
    assert ds.target == LABELS and len(ds) == 60
    assert [tuple((s, e, lab) for s, e, lab, *_ in spans) for spans in ds.labels] == expected
    assert "1 with only cancelled annotations (task ids 999)" in caplog.text


def test_an_export_without_a_config_finds_the_labels_control(tmp_path, conll):
    path, _, expected = _export(tmp_path, conll)
    ds = load_source(str(path))
    assert ds.target == LABELS and len(ds) == 60


def test_the_command_simulates_an_ner_export(tmp_path, conll, capsys):
    path, config, _ = _export(tmp_path, conll)
    out = tmp_path / "out"
    assert main(["simulate", str(path), "--label-config", str(config), "--seeds", "1", "--budget", "30",
                 "--batch-size", "10", "--initial", "10", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["target"] == LABELS and results["metric"] == "entity_f1"
    assert results["dataset"]["classes"] == ["LOC", "MISC", "ORG", "PER"]
    assert "F1@30" in capsys.readouterr().out
