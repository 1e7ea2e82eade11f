"""Numbers to predict end to end through /setup, the worker, /predict, /status and the dashboard (real Redis, RQ).

A ``<Number>`` about a ``<Table>`` record: scikit-learn's diabetes data
(442 patients, ten measurements, and the disease's progression a year
later, the number to predict).  Annotations arrive as Label Studio 1.23.2
writes them (``{"type": "number", "value": {"number": 151.0}}``), taken
from the head of the backend's queue round by round.  A ``<Rating>`` of a
text is in ``tests/e2e`` (the real Label Studio and its UI).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from backend.state.progress import ProgressStore
from tests.conftest import annotation_event, label_queue_head, predict_body, setup_body, tasks_created

CONFIG = ('<View><Table name="record" value="$record"/>'
          '<Number name="progression" toName="record" min="0" max="400" step="1"/></View>')
KEY = "record"
N_TASKS, ROUNDS, PER_ROUND = 300, 5, 20


@pytest.fixture(scope="module")
def patients() -> tuple[list[dict], np.ndarray]:
    data = load_diabetes()
    records = [{name: round(float(v), 5) for name, v in zip(data.feature_names, row)} for row in data.data]
    return records[:N_TASKS], data.target[:N_TASKS]


def _number(value: float) -> list[dict]:
    return [{"from_name": "progression", "to_name": KEY, "type": "number", "value": {"number": float(value)}}]


def _annotate(client, store, worker, patients, rounds: int = ROUNDS) -> set[int]:
    records, target = patients
    body = setup_body(schema=CONFIG)
    body["extra_params"] = {"head_size": 40, "control_share": 0.25, "plateau_versions": 3}
    assert client.post("/setup", json=body).status_code == 200
    assert client.post("/webhook", json=tasks_created(list(enumerate(records, start=1)), key=KEY)).status_code == 200
    worker()
    return label_queue_head(client, store, worker, rounds, PER_ROUND, lambda ann, tid, stamp: annotation_event(
        ann, tid, records[tid - 1], "", key=KEY, updated_at=stamp, result=_number(target[tid - 1])))


def test_a_number_project_trains_predicts_values_and_ranks_by_committee_spread(client, store, worker, patients):
    records, target = patients
    done = _annotate(client, store, worker, patients)
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "model" and meta["labeled_tasks"] == ROUNDS * PER_ROUND
    info = meta["controls"]["progression"]
    assert info["targets"]["min"] >= 25 and info["targets"]["max"] <= 346 and "not_trained" not in info
    assert meta["feature_spec"]["featurizer"] == "numbers"

    # /predict: a number on the control's grid, with the committee's confidence as score.
    open_ = [t for t in range(1, N_TASKS + 1) if t not in done]
    body = predict_body([(t, records[t - 1]) for t in open_], key=KEY, label_config=CONFIG)
    preds = client.post("/predict", json=body).json()["results"]
    items = [p["result"][0] for p in preds]
    assert {(i["type"], i["from_name"], i["to_name"]) for i in items} == {("number", "progression", KEY)}
    assert all(isinstance(i["value"]["number"], int) and 0 <= i["value"]["number"] <= 400
               for i in items)  # step 1 from min 0: whole numbers
    values = np.array([i["value"]["number"] for i in items])
    assert all(0 < i["score"] <= 1 for i in items)
    # The model learned the data: its error on the unlabeled tasks beats always guessing the labels' mean.
    truth = target[np.asarray(open_) - 1]
    mae, baseline = np.abs(values - truth).mean(), np.abs(info["targets"]["mean"] - truth).mean()
    assert mae < 0.85 * baseline, (mae, baseline)

    # The queue: the strategy's first tasks are those the committee disagrees on most (low score = ask sooner).
    ranking = store.ranking(store.current_version())
    controls = store.random_pick_tasks(store.current_version())
    by_task = {t: i["score"] for t, i in zip(open_, items)}
    ordered = [t for t in sorted(ranking, key=ranking.get) if t in by_task and t not in controls]
    head, tail = ordered[:20], ordered[-100:]
    assert np.mean([by_task[t] for t in head]) < np.mean([by_task[t] for t in tail])


def test_a_number_projects_progress_is_its_error(client, store, worker, patients):
    _annotate(client, store, worker, patients)
    summary = ProgressStore(store).summary()
    assert summary is not None and summary.measures == "error" and summary.accuracy is None
    err, cv = summary.error, summary.cv_error
    assert cv.n == ROUNDS * PER_ROUND and cv.folds == 5
    assert err.mae is not None and err.mae < err.baseline_mae and 0 < err.skill < 1
    assert summary.curve and summary.curve[-1].cv_mae == pytest.approx(cv.mae)
    assert summary.savings.random_labels is None and "numbers" in summary.savings.reason
    status = client.get("/status/1").json()
    assert status["current"]["controls"]["progression"]["cv_mae"] == pytest.approx(cv.mae)
    page = client.get("/dashboard/1").text
    assert "mean absolute error" in page and "skill" in page and "held-out accuracy" not in page
    index = client.get("/dashboard").text
    assert f"MAE {err.mae:.3f}" in index
