"""The simulator on numbers to predict (``<Number>``, ``<Rating>``): real data, the worker's regressor, error curves.

The data is scikit-learn's diabetes set (442 patients, a number to predict),
given as the built-in, as a CSV of ``<Table>`` records, and as a Label
Studio export of ``<Rating>`` or ``<Number>`` annotations.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from backend.cli import main
from backend.learning.featurizers.numbers import NumberFeaturizer
from backend.learning.regressor import CommitteeRegressor
from backend.simulation.datasets import load_dataset
from backend.simulation.replay import Oracle, Protocol, SimulationError, load_source, make_split, run_strategy, simulate
from backend.simulation.report import format_table, summarise
from backend.simulation.targets import NUMBER, TARGETS

SMALL = {"seeds": 2, "budget": 60, "batch_size": 10, "initial": 10, "warm_start": False}


@pytest.fixture(scope="module")
def diabetes():
    return load_dataset("diabetes")


@pytest.fixture(scope="module")
def diabetes_X(diabetes):
    return NumberFeaturizer().fit(diabetes.texts).transform(diabetes.texts)


def test_the_built_in_is_records_and_their_numbers(diabetes):
    bunch = load_diabetes()
    assert diabetes.target == NUMBER and diabetes.kind == "numbers" and len(diabetes) == 442
    assert diabetes.labels == [float(v) for v in bunch.target]
    assert list(diabetes.texts[0]) == list(bunch.feature_names)


def test_a_run_scores_the_worker_regressor_by_its_error_on_the_test_split_only(diabetes, diabetes_X):
    protocol = Protocol(strategies=("random", "margin"), **SMALL)
    target = TARGETS[NUMBER]
    split = make_split(diabetes.labels, protocol, 0, target)
    assert not set(split.pool) & set(split.test)
    oracle = Oracle(diabetes.labels, split.pool)
    curve = run_strategy(diabetes_X, diabetes.labels, split, "margin", protocol, 0, target=target, oracle=oracle)
    assert curve.labels == list(range(10, 61, 10))
    assert set(oracle.asked) <= set(split.pool.tolist()) and len(oracle.asked) == 60
    # The last point is the worker's model trained on exactly the labels asked, scored on the test split.
    y = np.asarray(diabetes.labels)
    asked = np.asarray(oracle.asked)
    model = CommitteeRegressor().fit(diabetes_X[asked], y[asked])
    mae = float(np.mean(np.abs(model.predict(diabetes_X[split.test]) - y[split.test])))
    assert curve.scores["mae"][-1] == pytest.approx(mae)
    baseline = float(np.mean(np.abs(y[split.pool].mean() - y[split.test])))
    assert curve.scores["skill"][-1] == pytest.approx(1 - mae / baseline)
    # Skill is the MAE on one fixed scale per repetition: a monotone transform, so savings read either.
    ratio = (1 - np.asarray(curve.scores["skill"])) / np.asarray(curve.scores["mae"])
    assert np.allclose(ratio, 1 / baseline)
    assert curve.scores["skill"][-1] > 0.2  # 60 labels learn something real


def test_the_test_split_of_numbers_is_not_stratified_and_repeats_by_seed(diabetes):
    protocol = Protocol(**SMALL)
    a = make_split(diabetes.labels, protocol, 0, TARGETS[NUMBER])
    b = make_split(diabetes.labels, protocol, 0, TARGETS[NUMBER])
    c = make_split(diabetes.labels, protocol, 1, TARGETS[NUMBER])
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)
    assert len(a.test) == int(np.ceil(0.2 * 442))  # scikit-learn's share, rounded up


def test_simulate_reports_skill_and_mae_against_random(diabetes):
    result = simulate(diabetes, Protocol(strategies=("random", "margin", "kcenter"), **SMALL), progress=False)
    assert result.target == NUMBER and result.classes == []
    full = result.repetitions[0].full
    assert 0.2 < full["skill"] < 0.7 and full["mae"] > 0
    summary = summarise(result)
    assert summary["target"] == NUMBER and summary["metric"] == "skill"
    for name in ("random", "margin", "kcenter"):
        entry = summary["strategies"][name]
        assert set(entry["curve"]) >= {"skill_mean", "mae_mean", "skill_per_seed", "mae_per_seed"}
        assert entry["curve"]["mae_mean"][-1] < entry["curve"]["mae_mean"][0]  # more labels, less error
        assert "mae_at" in entry and "skill_at" in entry
    margin = summary["strategies"]["margin"]
    paired = np.asarray(margin["curve"]["skill_per_seed"]) - np.asarray(summary["strategies"]["random"]["curve"]["skill_per_seed"])
    assert margin["curve"]["skill_vs_random_mean"] == pytest.approx(paired.mean(axis=0).tolist())
    assert "savings_at_random_budget" in margin and "savings_vs_random_95" in margin
    table = format_table(summary)
    assert "skill@60" in table and "MAE@60" in table and "a number to predict" in table and "classes" not in table


def test_a_csv_of_records_with_a_target_column(tmp_path, diabetes, caplog):
    path = tmp_path / "patients.csv"
    with open(path, "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["record", "progression"])
        for i, (rec, y) in enumerate(zip(diabetes.texts[:100], diabetes.labels[:100])):
            rows.writerow([json.dumps(rec), f"{y:,.0f}" if i == 3 else y])  # "1,234": as the worker reads numbers
        rows.writerow([json.dumps(diabetes.texts[100]), ""])     # no answer: skipped
        rows.writerow([json.dumps(diabetes.texts[101]), "n/a"])  # not a number: skipped with the reason
        rows.writerow([json.dumps(diabetes.texts[102]), 0])      # 0 is a number, not a blank
    ds = load_source(str(path), number_column="record", target_column="progression")
    assert ds.target == NUMBER and len(ds) == 101
    assert ds.labels[:100] == pytest.approx(diabetes.labels[:100]) and ds.labels[-1] == 0.0
    assert "with a blank 'progression' (line 102)" in caplog.text
    assert "whose 'progression' is not a number (line 103)" in caplog.text


def test_a_jsonl_of_texts_with_numbers_to_predict(tmp_path):
    path = tmp_path / "reviews.jsonl"
    texts = ["great", "awful", "fine", "great fun", "awful mess", "fine enough"]
    path.write_text("".join(json.dumps({"text": t, "stars": s}) + "\n" for t, s in zip(texts, [5, 1, 3, 5, 1, 3])))
    ds = load_source(str(path), text_column="text", target_column="stars")
    assert ds.kind == "text" and ds.target == NUMBER and ds.labels == [5.0, 1.0, 3.0, 5.0, 1.0, 3.0]


@pytest.mark.parametrize("kwargs, message", [
    ({"text_column": "text", "target_column": "stars", "label_column": "stars"}, "give one of --label-column"),
    ({"text_column": "text", "target_column": "nope"}, "no column 'nope'"),
    ({"text_column": "text", "target_column": "same"}, "every row has the number 4"),
])
def test_bad_numbers_to_predict_are_refused_with_the_fix(tmp_path, kwargs, message):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "stars": i % 5, "same": 4}) + "\n" for i in range(10)))
    with pytest.raises(SimulationError, match=message):
        load_source(str(path), **kwargs)


def test_features_auto_is_refused_for_numbers(diabetes):
    with pytest.raises(SimulationError, match="--features numbers"):
        simulate(diabetes, Protocol(**SMALL), features="auto", progress=False)


def _rating_export(tmp_path, diabetes, kind: str) -> tuple:
    """An export of a <Rating> (or <Number>) project: two annotators on some tasks, a cancelled one, an unlabeled one."""
    tasks, expected = [], []
    for i, (rec, y) in enumerate(zip(diabetes.texts[:80], diabetes.labels[:80])):
        text = ", ".join(f"{k} {v:.3f}" for k, v in rec.items())
        value = round(y / 70) if kind == "rating" else y  # stars 1..5 from the progression
        anns = [{"id": 2 * i, "was_cancelled": False,
                 "result": [{"from_name": "score", "to_name": "text", "type": kind, "value": {kind: value}}]}]
        if i % 4 == 0:  # a second annotator: the answer is the median of the two
            anns.append({"id": 2 * i + 1, "was_cancelled": False,
                         "result": [{"from_name": "score", "to_name": "text", "type": kind, "value": {kind: value + 2}}]})
            value = value + 1
        tasks.append({"id": 1000 + i, "data": {"text": text}, "annotations": anns})
        expected.append(float(value))
    tasks.append({"id": 5000, "data": {"text": "never labeled"}, "annotations": []})
    tasks.append({"id": 5001, "data": {"text": "skipped"}, "annotations": [{"id": 9, "was_cancelled": True, "result": []}]})
    path = tmp_path / f"export-{kind}.json"
    path.write_text(json.dumps(tasks))
    return path, expected


@pytest.mark.parametrize("kind", ["rating", "number"])
def test_a_label_studio_export_of_numbers_is_read_with_the_annotators_median(tmp_path, diabetes, kind, caplog):
    path, expected = _rating_export(tmp_path, diabetes, kind)
    ds = load_source(str(path))
    assert ds.target == NUMBER and ds.labels == pytest.approx(expected)
    assert "1 without annotations (task ids 5000)" in caplog.text and "1 with only cancelled" in caplog.text


def test_the_command_simulates_a_rating_export_end_to_end(tmp_path, diabetes, capsys):
    path, _ = _rating_export(tmp_path, diabetes, "rating")
    out = tmp_path / "out"
    code = main(["simulate", str(path), "--strategies", "margin", "--seeds", "2", "--budget", "40",
                 "--batch-size", "10", "--initial", "10", "--out", str(out), "--no-progress"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["target"] == NUMBER and results["dataset"]["rows"] == 80
    assert results["strategies"]["margin"]["curve"]["labels"] == [10, 20, 30, 40]
    assert (out / "learning-curves.png").stat().st_size > 10_000
    assert "MAE@40" in capsys.readouterr().out


def test_the_command_refuses_a_target_column_for_an_export(tmp_path, diabetes, capsys):
    path, _ = _rating_export(tmp_path, diabetes, "rating")
    assert main(["simulate", str(path), "--target-column", "score", "--no-progress"]) == 2
    assert "--target-column is for CSV/JSONL files" in capsys.readouterr().err


def test_the_bikeshare_built_in_is_read_as_the_worker_reads_a_table_record():
    ds = load_dataset("bikeshare")  # ISLP's wheel, read and cached on first use
    assert ds.target == NUMBER and len(ds) == 8_645 and min(ds.labels) >= 1
    assert all(isinstance(v, float) for v in ds.texts[0].values())  # text fields ("Jan") are missing values
    assert ds.texts[0]["hr"] == 0.0 and np.isnan(ds.texts[0]["weathersit"])
