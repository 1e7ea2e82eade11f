"""The offline simulator's protocol (``al-backend simulate``).

What must hold for its numbers to mean anything: the test split is never
offered to the annotators, the oracle reveals a label only when asked and the
model learns only from revealed labels, one seed reproduces every number
bit for bit, and the command runs end to end.  Data: scikit-learn's digits
(real, ships with scikit-learn, nothing to download) and small files written
here for the input formats.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.selection import strategies
from backend.simulation import replay
from backend.simulation.datasets import load_dataset
from backend.simulation.replay import Oracle, Protocol, SimulationError, make_split, run_strategy, simulate
from backend.simulation.report import aulc, format_table, labels_to_reach, mean_ci, summarise

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(seeds=2, budget=120, batch_size=30, initial=30, max_rows=600)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_X(digits):
    return NgramFeaturizer().transform(digits.texts)


class RecordingOracle(Oracle):
    """The oracle, with every call kept."""

    def __init__(self, labels, pool):
        super().__init__(labels, pool)
        self.calls: list[list[int]] = []

    def reveal(self, rows):
        self.calls.append([int(r) for r in rows])
        return super().reveal(rows)


# -- the protocol ------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", strategies.DEFAULT_STRATEGY])
def test_test_split_is_never_queried(digits, digits_X, strategy):
    protocol = Protocol(strategies=("random", strategies.DEFAULT_STRATEGY), **SMALL)
    split = make_split(digits.labels, protocol, 0)
    oracle = RecordingOracle(digits.labels, split.pool)
    curve = run_strategy(digits_X, digits.labels, split, strategy, protocol, 0, oracle=oracle)
    asked = oracle.asked
    assert not set(asked) & set(split.test.tolist())
    assert set(asked) <= set(split.pool.tolist())
    assert len(asked) == len(set(asked)) == protocol.budget  # the budget, each task once
    assert curve.labels == list(range(protocol.initial, protocol.budget + 1, protocol.batch_size))
    assert oracle.calls[0] == sorted(split.initial.tolist())  # then one call per batch
    assert [len(c) for c in oracle.calls[1:]] == [protocol.batch_size] * 3


def test_split_is_disjoint_stratified_and_differs_by_repetition(digits):
    protocol = Protocol(**SMALL)
    a, b = make_split(digits.labels, protocol, 0), make_split(digits.labels, protocol, 1)
    assert not set(a.pool.tolist()) & set(a.test.tolist())
    assert len(a.pool) + len(a.test) == protocol.max_rows
    assert set(a.initial.tolist()) <= set(a.pool.tolist())
    assert not np.array_equal(a.test, b.test)
    y = np.asarray(digits.labels)
    assert set(y[a.test]) == set(y)  # stratified: every class is scored


def test_oracle_refuses_test_rows_and_repeats(digits):
    split = make_split(digits.labels, Protocol(**SMALL), 0)
    oracle = Oracle(digits.labels, split.pool)
    first = int(split.pool[0])
    assert oracle.reveal([first]) == [digits.labels[first]]
    with pytest.raises(SimulationError, match="not in the pool"):
        oracle.reveal([int(split.test[0])])
    with pytest.raises(SimulationError, match="twice"):
        oracle.reveal([first])
    assert oracle.asked == [first]


def test_model_learns_only_from_revealed_labels(digits, digits_X, monkeypatch):
    """Every training set is exactly the oracle's answers so far, in the order given."""
    protocol = Protocol(strategies=("random", strategies.DEFAULT_STRATEGY), **SMALL)
    split = make_split(digits.labels, protocol, 0)
    oracle = RecordingOracle(digits.labels, split.pool)
    seen: list[tuple[int, list[str]]] = []
    real_fit = replay.ChoicesClassifier.fit

    def fit(self, X, y, init=None):
        seen.append((len(oracle.asked), list(y)))
        return real_fit(self, X, y, init=init)

    monkeypatch.setattr(replay.ChoicesClassifier, "fit", fit)
    run_strategy(digits_X, digits.labels, split, strategies.DEFAULT_STRATEGY, protocol, 0, oracle=oracle)
    assert len(seen) == 4
    for asked_then, y in seen:
        assert y == [digits.labels[r] for r in oracle.asked[:asked_then]]


def test_the_loop_protocol_starts_from_the_cold_start_ranking_and_warm_starts(digits, digits_X, monkeypatch):
    """``initial=0``: the first label is the cold-start ranking's first task; then one label per
    retraining, each fitted from the previous model, as the worker retrains."""
    protocol = Protocol(strategies=("random", strategies.DEFAULT_STRATEGY), seeds=1, budget=25, batch_size=1,
                        initial=0, max_rows=600, warm_start=True)
    split = make_split(digits.labels, protocol, 0)
    assert split.initial.size == 0
    oracle = RecordingOracle(digits.labels, split.pool)
    inits: list[bool] = []
    real_fit = replay.ChoicesClassifier.fit

    def fit(self, X, y, init=None):
        inits.append(init is not None)
        return real_fit(self, X, y, init=init)

    monkeypatch.setattr(replay.ChoicesClassifier, "fit", fit)
    curve = run_strategy(digits_X, digits.labels, split, strategies.DEFAULT_STRATEGY, protocol, 0, oracle=oracle)
    assert [len(c) for c in oracle.calls] == [0] + [1] * 25  # nothing revealed up front, then one at a time
    assert curve.labels == list(range(1, 26))
    # The first task asked is the first of the worker's cold-start ranking of the same pool with the same rng.
    rows = np.sort(split.pool)
    rng = np.random.default_rng(replay._seed_sequence(protocol.seed, 0, replay._STRATEGY,
                                                       replay._strategy_key(strategies.DEFAULT_STRATEGY)))
    cold = strategies.rank_pool(strategies.Pool(X=digits_X[rows]), strategies.SelectionParams(
        batch_size=1, control_share=protocol.control_share, head=1), rng)
    assert oracle.calls[1] == [int(rows[cold.order[0]])]
    # Once a model exists, every later fit starts from it.
    first = inits.index(True)
    assert all(inits[first:]) and first <= 10, inits


def test_a_growing_batch_takes_a_share_of_the_labels_per_round(digits, digits_X):
    """``batch_growth``: one label per round while 0.1 x labels < 1, then a tenth of the labels."""
    protocol = Protocol(strategies=("random", "badge"), seeds=1, budget=40, batch_size=1, initial=0,
                        max_rows=600, warm_start=True, batch_growth=0.1)
    split = make_split(digits.labels, protocol, 0)
    for strategy in protocol.strategies:
        oracle = RecordingOracle(digits.labels, split.pool)
        curve = run_strategy(digits_X, digits.labels, split, strategy, protocol, 0, oracle=oracle)
        sizes = [len(c) for c in oracle.calls[1:]]
        before = [0] + curve.labels[:-1]  # labels revealed before each round
        assert sizes[:-1] == [protocol.round_size(n) for n in before[:-1]]  # the last round is cut to the budget
        assert sizes == [1] * 20 + [2] * 5 + [3] * 3 + [1] and sum(sizes) == 40
        assert len(sizes) == replay.rounds_per_run(protocol, len(split.pool))
    with pytest.raises(SimulationError, match="batch_growth"):
        Protocol(batch_growth=1.5)


def test_class_weights_reach_every_fit_and_the_full_data_reference(digits, digits_X, monkeypatch):
    seen: list = []
    real_fit = replay.ChoicesClassifier.fit

    def fit(self, X, y, init=None):
        seen.append(self.class_weight)
        return real_fit(self, X, y, init=init)

    monkeypatch.setattr(replay.ChoicesClassifier, "fit", fit)
    protocol = Protocol(strategies=("random",), seeds=1, budget=12, batch_size=4, initial=4, max_rows=600,
                        class_weight="balanced")
    split = make_split(digits.labels, protocol, 0)
    replay.full_data_scores(digits_X, digits.labels, split, protocol.class_weight)
    run_strategy(digits_X, digits.labels, split, "random", protocol, 0)
    assert len(seen) == 4 and set(seen) == {"balanced"}
    with pytest.raises(SimulationError, match="class_weight"):
        Protocol(class_weight="heavy")


def test_same_seed_is_bit_identical_and_independent_of_processes(digits):
    protocol = Protocol(strategies=("random", strategies.DEFAULT_STRATEGY), **SMALL)
    one = summarise(simulate(digits, protocol, jobs=1, progress=False))
    two = summarise(simulate(digits, protocol, jobs=2, progress=False))
    assert json.dumps(one) == json.dumps(two)
    other = summarise(simulate(digits, Protocol(strategies=protocol.strategies, seed=1, **SMALL), progress=False))
    assert json.dumps(other) != json.dumps(one)


def test_adding_a_strategy_does_not_change_the_others(digits):
    both = simulate(digits, Protocol(strategies=("random", strategies.DEFAULT_STRATEGY), **SMALL), progress=False)
    alone = simulate(digits, Protocol(strategies=("random",), **SMALL), progress=False)
    for a, b in zip(both.repetitions, alone.repetitions):
        assert a.curves["random"].accuracy == b.curves["random"].accuracy


def test_time_limit_that_leaves_no_repetition_is_an_error(digits):
    with pytest.raises(SimulationError, match="time limit"):
        simulate(digits, Protocol(**SMALL), time_limit=0.0, progress=False)


# -- metrics -------------------------------------------------------------------


def test_aulc_is_the_mean_score_over_the_label_range():
    assert aulc([10, 20, 30], [0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert aulc([0, 10], [0.0, 1.0]) == pytest.approx(0.5)
    assert aulc([100], [0.7]) == pytest.approx(0.7)


def test_labels_to_reach_interpolates_the_first_crossing():
    assert labels_to_reach([100, 200, 300], [0.5, 0.7, 0.9], 0.8) == pytest.approx(250)
    assert labels_to_reach([100, 200], [0.9, 0.95], 0.5) == pytest.approx(100)
    assert labels_to_reach([100, 200], [0.5, 0.6], 0.9) is None


def test_mean_ci_is_students_t():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0)
    assert (hi - m) == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)  # t(0.975, 2) * sd / sqrt(n)
    assert mean_ci([1.0])[1:] == (None, None)


def test_summary_pairs_strategies_with_random_over_seeds(digits):
    result = simulate(digits, Protocol(strategies=("random", strategies.DEFAULT_STRATEGY), **SMALL), progress=False)
    s = summarise(result)
    entry = s["strategies"][strategies.DEFAULT_STRATEGY]
    per_seed = [
        aulc(r.curves[strategies.DEFAULT_STRATEGY].labels, r.curves[strategies.DEFAULT_STRATEGY].accuracy)
        - aulc(r.curves["random"].labels, r.curves["random"].accuracy)
        for r in result.repetitions
    ]
    assert entry["aulc_vs_random"]["per_seed"] == pytest.approx(per_seed)
    assert "aulc_vs_random" not in s["strategies"]["random"]
    table = format_table(s)
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 3 and rows[2].startswith(f"| {strategies.DEFAULT_STRATEGY} |")  # header + 2 strategies


# -- inputs ----------------------------------------------------------------------


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(SimulationError) as exc:
        Protocol(strategies=("random", "no-such-strategy"))
    for name in strategies.STRATEGIES:
        assert name in str(exc.value)


def test_random_is_required():
    with pytest.raises(SimulationError, match="random"):
        Protocol(strategies=(strategies.DEFAULT_STRATEGY,))


def test_csv_and_jsonl_inputs(tmp_path):
    rows = [("great fun", "pos"), ("dull and long", "neg"), ("", "pos"), ("fine", "")]
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("review,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows))
    d = replay.load_source(str(csv_path), text_column="review", label_column="label")
    assert d.texts == ["great fun", "dull and long"] and d.labels == ["pos", "neg"]
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps({"t": t, "y": lab}) for t, lab in rows))
    d = replay.load_source(str(jl), text_column="t", label_column="y")
    assert d.labels == ["pos", "neg"]


def test_csv_errors_are_clear(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("review,label\na,pos\nb,pos\n")
    with pytest.raises(SimulationError, match=r"no column 'text'.*\['label', 'review'\].*--text-column"):
        replay.load_source(str(path), text_column="text", label_column="label")
    with pytest.raises(SimulationError, match="at least 2 classes"):
        replay.load_source(str(path), text_column="review", label_column="label")
    with pytest.raises(SimulationError, match=r"needs --text-column \(or --image-column, or --number-column\) and --label-column"):
        replay.load_source(str(path))
    with pytest.raises(SimulationError, match="neither a built-in dataset"):
        replay.load_source(str(tmp_path / "missing.csv"))


def _annotation(choice, *, cancelled=False, when="2026-01-01T00:00:00Z"):
    result = [] if cancelled else [
        {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}
    ]
    return {"id": 1, "result": result, "was_cancelled": cancelled, "updated_at": when, "completed_by": 1}


def test_label_studio_export_majority_vote_skips_cancelled(tmp_path):
    tasks = [
        {"id": 11, "data": {"text": "loved it"}, "annotations": [
            _annotation("pos"), _annotation("pos"), _annotation("neg"), _annotation("neg", cancelled=True)]},
        {"id": 12, "data": {"text": "hated it"}, "annotations": [_annotation("neg")]},
        {"id": 13, "data": {"text": "skipped"}, "annotations": [_annotation("pos", cancelled=True)]},
        {"id": 14, "data": {"text": "tie"}, "annotations": [
            _annotation("pos", when="2026-01-01T00:00:00Z"), _annotation("neg", when="2026-01-02T00:00:00Z")]},
        {"id": 15, "data": {"text": "not labeled yet"}, "annotations": []},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    d = replay.load_source(str(path))
    assert sorted(zip(d.texts, d.labels)) == [("hated it", "neg"), ("loved it", "pos"), ("tie", "neg")]


def test_label_studio_export_with_label_config_and_errors(tmp_path):
    tasks = [
        {"id": 1, "data": {"review": "good", "meta": "x"}, "annotations": [_annotation("pos")]},
        {"id": 2, "data": {"review": "bad", "meta": "y"}, "annotations": [_annotation("neg")]},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    with pytest.raises(SimulationError, match="which task data field.*--text-column"):
        replay.load_source(str(path))
    assert replay.load_source(str(path), text_column="review").texts == ["good", "bad"]
    config = tmp_path / "config.xml"
    config.write_text('<View><Text name="text" value="$review"/><Choices name="sentiment" toName="text">'
                      '<Choice value="pos"/><Choice value="neg"/></Choices></View>')
    d = replay.load_source(str(path), label_config=str(config))
    assert d.texts == ["good", "bad"] and d.labels == ["pos", "neg"]
    (tmp_path / "bad.json").write_text('{"not": "a list"}')
    with pytest.raises(SimulationError, match="expected a list of tasks"):
        replay.load_source(str(tmp_path / "bad.json"))


# -- the command -------------------------------------------------------------------


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "backend.cli", "simulate", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_quick_runs_end_to_end_and_reproduces(tmp_path):
    runs = []
    for name in ("a", "b"):
        proc = _cli("digits", "--quick", "--out", str(tmp_path / name), cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads((tmp_path / name / "results.json").read_text()))
        assert (tmp_path / name / "learning-curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| random |" in proc.stdout and f"| {strategies.DEFAULT_STRATEGY} |" in proc.stdout
    a, b = runs
    assert a["protocol"]["seeds"] == 3 and a["repetitions"] == 3
    assert (a["protocol"]["batch_size"], a["protocol"]["initial"], a["protocol"]["warm_start"]) == (5, 0, True)
    assert a["protocol"]["control_share"] == strategies.DEFAULT_CONTROL_SHARE
    a.pop("timing"), b.pop("timing")
    assert a == b


def test_the_batch_protocol_keeps_the_earlier_runs_comparable(tmp_path):
    proc = _cli("digits", "--quick", "--protocol", "batch", "--seeds", "1", "--out", str(tmp_path), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    p = json.loads((tmp_path / "results.json").read_text())["protocol"]
    assert (p["batch_size"], p["initial"], p["warm_start"]) == (50, 50, False)
    assert replay.PROTOCOLS["batch"] == {"seeds": 10, "budget": 1000, "batch_size": 100, "initial": 100,
                                         "warm_start": False, "batch_growth": 0.0, "class_weight": None}
    assert p["class_weight"] is None  # the model of the earlier runs


def test_cli_reports_bad_input_without_a_traceback(tmp_path):
    proc = _cli("digits", "--quick", "--strategies", "nope", "--out", str(tmp_path), cwd=ROOT)
    assert proc.returncode == 2
    assert "unknown strategy 'nope'; known:" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli(str(tmp_path / "none.csv"), "--quick", cwd=ROOT)
    assert proc.returncode == 2 and "neither a built-in dataset" in proc.stderr
