"""Entity-level figures of a ``<Labels>`` model (``progress/entities.py``), and how the curve and rules read them."""

from __future__ import annotations

import numpy as np
import pytest

from backend.progress import entities, estimators, evaluation
from backend.state.store import VersionInfo

pytest.importorskip("pycrfsuite")


@pytest.fixture(scope="module")
def conll():
    from backend.learning.span_model import SpanModel
    from backend.simulation.ner_datasets import load_ner_corpus

    train = load_ner_corpus(split="train")
    pairs = [(t, s) for t, s in zip(train.texts, train.spans) if len(t.split()) >= 4][:150]
    return SpanModel(), [t for t, _ in pairs], [s for _, s in pairs]


def test_the_held_out_f1_uses_only_the_control_tasks_and_brackets_itself(conll):
    model, texts, answers = conll
    picks = np.zeros(len(texts), dtype=bool)
    picks[::5] = True
    hold = entities.random_pick_holdout(model, texts, answers, picks)
    assert hold["n"] == 30 and 0.2 < hold["f1"] < 1 and hold["low"] < hold["f1"] < hold["high"]
    # micro F1 from its precision and recall; the truth counted is the control tasks' entities only
    p, r = hold["precision"], hold["recall"]
    assert hold["f1"] == pytest.approx(2 * p * r / (p + r))
    assert hold["entities"] == sum(len(answers[i]) for i in np.flatnonzero(picks))
    assert entities.random_pick_holdout(model, texts, answers, picks & False)["reason"].startswith("0 labeled")


def _version(name: str, labels: int, cv: dict, hold: dict) -> VersionInfo:
    return VersionInfo(name, {"kind": "model", "trained_in": name, "labeled_tasks": labels,
                              "progress": {"cv": {"c": cv}, "control_holdout": {"c": hold}, "kappa": 0.9}})


def test_curve_points_carry_each_kind_of_figure_in_its_own_fields():
    ner = evaluation.curve_points([
        _version("v1", 40, {"n": 40, "f1": 0.4}, {"n": 4, "f1": 0.5, "low": 0.2, "high": 0.7}),
        _version("v2", 80, {"n": 80, "f1": 0.55}, {"n": 12, "f1": 0.6, "low": 0.45, "high": 0.75}),
    ], {}, "c")
    assert [(p["labels"], p["cv_entity_f1"], p["holdout_entity_f1"]) for p in ner] == [(40, 0.4, None), (80, 0.55, 0.6)]
    assert (ner[1]["holdout_entity_f1_low"], ner[1]["holdout_entity_f1_high"]) == (0.45, 0.75)
    assert all(p["holdout_low"] is None and p["cv_accuracy"] is None and p["holdout_mae"] is None for p in ner)
    # choices and numbers: as before, no entity figures
    choices = evaluation.curve_points([_version("v1", 40, {"accuracy": 0.8}, {"n": 12, "accuracy": 0.7, "low": 0.5,
                                                                              "high": 0.85})], {}, "c")[0]
    assert (choices["holdout_accuracy"], choices["holdout_low"], choices["holdout_entity_f1"]) == (0.7, 0.5, None)
    numbers = evaluation.curve_points([_version("v1", 40, {"mae": 3.0}, {"n": 12, "mae": 2.5, "low": 2.0,
                                                                         "high": 3.0})], {}, "c")[0]
    assert (numbers["holdout_mae_low"], numbers["holdout_low"], numbers["cv_entity_f1"]) == (2.0, None, None)


def test_target_entity_f1_stops_and_the_plateau_reads_the_f1_series(settings):
    from backend import project_options

    rules = project_options.resolve(settings, {"target_entity_f1": 0.8}).stop_rules()
    assert rules.target_entity_f1 == 0.8
    rec = estimators.recommend(rules, labels=100, accuracy=None, macro_f1_score=None, scores=[], kappas=[],
                               entity_f1=0.81)
    assert rec.action == estimators.STOP and rec.reason == "target entity F1 reached: 0.810 >= 0.8"
    rec = estimators.recommend(rules, labels=100, accuracy=None, macro_f1_score=None, scores=[], kappas=[],
                               entity_f1=0.79)
    assert rec.action == estimators.KEEP_GOING and not rec.signals["target_entity_f1_reached"]
    flat = estimators.recommend(estimators.StopRules(plateau_versions=3), labels=100, accuracy=None,
                                macro_f1_score=None, scores=[0.5, 0.7, 0.7, 0.7], kappas=[0.5], entity_f1=0.7)
    assert flat.signals["plateau"] and flat.action == estimators.CONSIDER_STOPPING
    with pytest.raises(project_options.InvalidOptionsError, match="target_entity_f1"):
        project_options.resolve(settings, {"target_entity_f1": 1.5})
