"""``al-backend simulate --features``: the same comparison once per featurizer, side by side."""

from __future__ import annotations

import json

import pytest

from backend.selection import strategies
from backend.simulation.datasets import load_dataset
from backend.simulation.replay import Protocol, SimulationError, make_split, simulate
from tests.simulation.test_simulation import ROOT, _cli

SMALL = {"seeds": 1, "budget": 90, "batch_size": 30, "initial": 30, "max_rows": 500}


def test_cli_compares_featurizers_on_the_same_splits(tmp_path):
    proc = _cli("rotten-tomatoes", "--features", "ngrams,embeddings,concat", "--no-progress",
                *[f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()], "--out", str(tmp_path), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    results = {name: json.loads((tmp_path / name / "results.json").read_text())
               for name in ("ngrams", "embeddings", "concat")}
    assert {r["features"] for r in results.values()} == {"ngrams", "embeddings", "concat"}
    # Paired: every featurizer saw the same split, so the same pool and test sizes.
    assert len({(r["dataset"]["pool"], r["dataset"]["test"]) for r in results.values()}) == 1
    assert "## features compared" in proc.stdout
    for name in results:
        assert f"| {name} | random |" in proc.stdout and f"| {name} | {strategies.DEFAULT_STRATEGY} |" in proc.stdout


def test_unknown_featurizer_is_a_clear_error(tmp_path):
    proc = _cli("digits", "--quick", "--features", "ngrams,bert", "--out", str(tmp_path), cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown featurizer 'bert'; known: ngrams, embeddings, concat" in proc.stderr
    assert not (tmp_path / "ngrams").exists()  # refused before anything ran


def test_the_split_does_not_depend_on_the_featurizer():
    ds = load_dataset("rotten-tomatoes")
    protocol = Protocol(**SMALL)
    a = simulate(ds, protocol, progress=False, features="embeddings")
    assert a.features == "embeddings" and len(a.repetitions) == 1
    split = make_split(ds.labels, protocol, 0)
    assert a.pool_size == len(split.pool) and a.test_size == len(split.test)
    with pytest.raises(SimulationError, match="unknown featurizer 'bert'"):
        simulate(ds, protocol, progress=False, features="bert")


AUTO_SMALL = {"seeds": 2, "budget": 80, "batch_size": 5, "initial": 0, "max_rows": 600, "warm_start": True}


def test_auto_chooses_as_labels_arrive_and_runs_that_keep_ngrams_match_the_ngrams_run():
    ds = load_dataset("rotten-tomatoes")
    protocol = Protocol(**AUTO_SMALL)
    auto = simulate(ds, protocol, progress=False, features="auto")
    plain = simulate(ds, protocol, progress=False, features="ngrams")
    assert auto.features == "auto"
    kept = 0
    for rep_auto, rep_plain in zip(auto.repetitions, plain.repetitions):
        # Measured against the best representation's full-data score, never a lower one.
        assert rep_auto.full_accuracy >= rep_plain.full_accuracy
        for name, curve in rep_auto.curves.items():
            assert len(curve.features) == len(curve.labels)
            # Comparisons from MIN_LABELS on, then as the labels grow by a quarter.
            assert [c["labels"] for c in curve.choices][:2] == [30, 40]
            assert all(set(c["accuracy"]) == {"ngrams", "embeddings", "concat"} for c in curve.choices)
            assert set(curve.features[:5]) == {"ngrams"}  # the default until the first comparison (at 30)
            if set(curve.features) == {"ngrams"}:  # never switched: the same loop as plain n-grams
                assert curve.accuracy == rep_plain.curves[name].accuracy
                kept += 1
    assert kept >= 1


def test_cli_auto_reports_the_representations_runs_ended_on(tmp_path):
    proc = _cli("rotten-tomatoes", "--features", "auto", "--no-progress",
                *[f"--{k.replace('_', '-')}={v}" for k, v in AUTO_SMALL.items() if k != "warm_start"],
                "--out", str(tmp_path), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["features"] == "auto"
    for entry in result["strategies"].values():
        auto = entry["auto_features"]
        assert sum(auto["final"].values()) == AUTO_SMALL["seeds"] and auto["comparisons_per_run"] >= 2
        assert len(auto["switches"]) == AUTO_SMALL["seeds"]
