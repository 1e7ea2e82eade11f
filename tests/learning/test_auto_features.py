"""``features: "auto"``: when comparisons run, and what the guard lets through."""

from __future__ import annotations

import numpy as np
import pytest

from backend.learning import auto_features, featurizers
from backend.learning.auto_features import Comparison, choose, compare, due, read_choice
from backend.learning.model import ChoicesClassifier
from backend.simulation.datasets import load_dataset


def test_comparisons_start_at_min_labels_and_rerun_as_labels_grow_by_a_quarter():
    assert not due(auto_features.MIN_LABELS - 1, None)
    assert due(auto_features.MIN_LABELS, None)
    assert not due(124, 100) and due(125, 100)
    # From 30 to 5,000 labels: a couple of dozen comparisons, not one per label.
    n, last, runs = 0, None, 0
    for n in range(1, 5001):
        if due(n, last):
            last, runs = n, runs + 1
    assert 15 <= runs <= 30


def test_the_candidates_are_the_representations_that_run_here():
    assert auto_features.candidates() == ["ngrams", "embeddings", "concat"]  # wordllama is a test dependency


def _noise(n: int, d: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_a_representation_that_separates_the_labels_wins_and_noise_does_not():
    y = np.array(["a", "b"] * 40)
    signal = _noise(80, 8, 1)
    signal[:, 0] += np.where(y == "a", 3.0, -3.0)
    comparison = compare({"ngrams": _noise(80, 8, 2), "embeddings": signal}, list(y), ChoicesClassifier())
    assert comparison.labels == 80 and len(comparison.fold_accuracy["ngrams"]) == auto_features.FOLDS * auto_features.REPEATS
    choice = choose(comparison, "ngrams")
    assert choice.chosen == "embeddings" and choice.switched
    assert choice.accuracy["embeddings"] > 0.9 > 0.7 > choice.accuracy["ngrams"]
    # Once on the better one, the worse one never takes it back.
    assert not choose(comparison, "embeddings").switched


def test_the_guard_keeps_the_current_representation_when_candidates_differ_by_noise():
    """Two representations equally useless: over 20 labeled sets, a switch is rare (the test is corrected)."""
    switches = 0
    for seed in range(20):
        y = list(np.random.default_rng(seed).choice(["a", "b", "c"], size=60))
        comparison = compare({"ngrams": _noise(60, 16, 100 + seed), "embeddings": _noise(60, 16, 200 + seed)}, y,
                             ChoicesClassifier())
        switches += choose(comparison, "ngrams").switched
    assert switches <= 3


def test_identical_rows_never_switch():
    X = _noise(50, 8, 3)
    y = ["a", "b"] * 25
    choice = choose(compare({"ngrams": X, "concat": X.copy()}, y, ChoicesClassifier()), "ngrams")
    assert choice.chosen == "ngrams" and not choice.switched and "no representation beats ngrams" in choice.reason


def test_of_two_winners_within_the_minimum_gain_the_cheaper_one_is_taken():
    folds = auto_features.FOLDS * auto_features.REPEATS
    wobble = np.linspace(-0.01, 0.01, folds)
    comparison = Comparison(labels=100, test_share=0.25, fold_accuracy={
        "ngrams": list(0.85 + wobble), "embeddings": list(0.30 + wobble), "concat": list(0.853 + wobble)})
    choice = choose(comparison, "embeddings")
    assert choice.chosen == "ngrams", choice
    comparison.fold_accuracy["concat"] = list(0.90 + wobble)  # now better by more than MIN_GAIN
    assert choose(comparison, "embeddings").chosen == "concat"


def test_labels_seen_once_cannot_be_compared():
    assert compare({"ngrams": _noise(5, 4, 0)}, ["a", "a", "a", "a", "b"], ChoicesClassifier()) is None
    assert compare({"ngrams": _noise(4, 4, 0)}, ["a"] * 4, ChoicesClassifier()) is None


def test_on_digits_pixel_tokens_the_guard_moves_off_embeddings():
    """Real data: 8x8 digits written as pixel tokens mean nothing to a text embedding."""
    ds = load_dataset("digits")
    texts, y = ds.texts[:60], ds.labels[:60]
    rows = {name: featurizers.get(name).transform(texts) for name in auto_features.candidates()}
    choice = choose(compare(rows, y, ChoicesClassifier(class_weight="balanced")), "embeddings")
    assert choice.chosen in ("ngrams", "concat") and choice.accuracy["embeddings"] < 0.5 < choice.accuracy["ngrams"]


@pytest.mark.parametrize("raw", [None, "ngrams", [], {"chosen": "bert"}, {"chosen": "ngrams", "labels": "many"},
                                 {"chosen": "ngrams", "accuracy": {"ngrams": "high"}}, {"chosen": ["ngrams"]},
                                 {"chosen": "ngrams", "accuracy": {"ngrams": float("nan")}},
                                 {"chosen": "ngrams", "accuracy": {"ngrams": 5.0}}, {"chosen": "ngrams", "labels": -3}])
def test_a_stored_choice_that_does_not_fit_is_no_choice(raw):
    assert read_choice(raw) is None


def test_a_stored_choice_reads_back():
    choice = choose(compare({"ngrams": _noise(40, 4, 0)}, ["a", "b"] * 20, ChoicesClassifier()), "ngrams")
    assert read_choice(choice.to_dict()) == choice
