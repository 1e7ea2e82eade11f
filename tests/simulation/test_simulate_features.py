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
