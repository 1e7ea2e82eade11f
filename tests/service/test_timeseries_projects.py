"""A time-series classification project end to end through /setup, the worker and /predict (real Redis, RQ).

Real series: the UCR archive's ItalyPowerDemand (a day of Italy's
electricity demand, 24 hourly values; which half of the year it is), as
``<TimeSeries valueType="json">`` task data, labeled from the head of the
backend's queue as Label Studio's ``/next`` serves it.
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.simulation.datasets import load_series
from tests.conftest import annotation_event, label_queue_head, predict_body, setup_body, tasks_created

CONFIG = ('<View><TimeSeries name="ts" value="$ts" valueType="json" timeColumn="hour">'
          '<Channel column="demand"/></TimeSeries>'
          '<Choices name="season" toName="ts"><Choice value="1"/><Choice value="2"/></Choices></View>')
KEY = "ts"
N_TASKS, ROUNDS, PER_ROUND = 300, 4, 10


@pytest.fixture(scope="module")
def days() -> tuple[list[dict], list[str]]:
    series, labels = load_series("italy-power-demand")
    return [{"hour": list(range(len(s))), "demand": s} for s in series[:N_TASKS]], labels[:N_TASKS]


def test_a_time_series_project_learns_the_season_from_the_queue_head(client, store, worker, days):
    data, labels = days
    assert client.post("/setup", json=setup_body(schema=CONFIG)).status_code == 200
    tasks = list(enumerate(data, start=1))
    tasks[5] = (6, {"hour": [0, 1], "demand": ["n/a", None]})  # a day without a number: skipped, not fatal
    assert client.post("/webhook", json=tasks_created(tasks, key=KEY)).status_code == 200
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "cold-start" and meta["unreadable_tasks"] == 1
    done = label_queue_head(client, store, worker, ROUNDS, PER_ROUND, lambda ann, tid, stamp: annotation_event(
        ann, tid, data[tid - 1], labels[tid - 1], key=KEY, from_name="season", updated_at=stamp), done={6})
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "model" and meta["feature_spec"]["featurizer"] == "numbers"
    assert sum(meta["controls"]["season"]["label_counts"].values()) == ROUNDS * PER_ROUND
    assert "6" not in store.ranking(store.current_version()) and 6 not in store.ranking(store.current_version())

    open_ = [t for t in range(1, N_TASKS + 1) if t not in done]
    preds = client.post("/predict", json=predict_body([(t, data[t - 1]) for t in open_], key=KEY,
                                                      label_config=CONFIG)).json()["results"]
    chosen = [p["result"][0]["value"]["choices"][0] for p in preds]
    accuracy = np.mean([c == labels[t - 1] for c, t in zip(chosen, open_)])
    # 40 labels; the same features reach 96.5% by 5-fold cross-validation on all 1,029 days.
    assert accuracy > 0.85, accuracy
    assert {(p["result"][0]["type"], p["result"][0]["to_name"]) for p in preds} == {("choices", KEY)}
