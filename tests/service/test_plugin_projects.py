"""Run your model in process (issue 18, item 2): a project ranked by a LabelStudioMLBase-style class.

The class is named by ``module:Class`` in ``extra_params`` (``model:
plugin``), listed by the operator in ``AL_PLUGINS``, and run by the worker
through the remote mode's pipeline (``backend/remote/plugin.py``).  Redis and
RQ are real; the worker runs in this process, as in ``test_remote_projects``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from backend.remote import plugin
from backend.state.queueing import request_refresh
from backend.state.remote import RemotePredictions
from tests.conftest import LABEL_CONFIG, PREFIX, QUEUE, annotation_event, predict_body, setup_body, tasks_created
from worker.push import head_predictions

PLUGIN = f"{__name__}:ConfidencePlugin"
EXAMPLE = "examples.plugin_model:SentimentModel"
N = 30
#: Each task's confidence in the plug-in's label: a fixed shuffle, so the lowest are not the first ids.
CONFIDENCE = {tid: round(float(c), 3) for tid, c in
              zip(range(1, N + 1), np.random.default_rng(7).permutation(np.linspace(0.05, 0.95, N)))}

#: Distinct texts, so near-duplicates do not reorder the queue.
WORDS = "river stone cloud ember violin harbor maple quartz lantern meadow falcon copper thistle orbit saddle".split()


class ConfidencePlugin:
    """A LabelStudioMLBase-style model: "pos" for every task, as sure as ``data["confidence"]`` says."""

    fits: list[tuple[str, dict]] = []
    predicted: list[int] = []  # tasks per predict call
    fail = False

    def __init__(self, project_id=None, label_config=None):
        self.model_version = "conf-0"
        self.project_id, self.label_config = project_id, label_config

    def predict(self, tasks, context=None, **kwargs):
        if ConfidencePlugin.fail:
            raise ValueError("model weights missing " + "x" * 1000)
        ConfidencePlugin.predicted.append(len(tasks))
        return {"results": [{"result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                                          "value": {"choices": ["pos"]}, "score": np.float64(t["data"]["confidence"])}],
                             "score": t["data"]["confidence"]} for t in tasks]}

    def fit(self, event, data, **kwargs):
        ConfidencePlugin.fits.append((event, data))
        self.model_version = f"conf-{len(ConfidencePlugin.fits)}"


@pytest.fixture(autouse=True)
def plugins(monkeypatch):
    """The operator lists the test's class (and the worked example) in AL_PLUGINS, before the settings are read."""
    monkeypatch.setenv("AL_PLUGINS", f"other.module:Model, {PLUGIN},{EXAMPLE}, no_such_module_here:Model")
    ConfidencePlugin.fits, ConfidencePlugin.predicted, ConfidencePlugin.fail = [], [], False
    plugin.forget()
    yield
    plugin.forget()


def _set_up(client, path=PLUGIN, texts=None, **extra) -> None:
    body = setup_body(schema=LABEL_CONFIG)
    body["extra_params"] = {"model": "plugin", "plugin": path, "control_share": 0, **extra}
    r = client.post("/setup", json=body)
    assert r.status_code == 200, r.text
    event = tasks_created([(tid, "") for tid in CONFIDENCE])
    for t in event["tasks"]:
        text = texts[t["id"]] if texts else " ".join(np.random.default_rng(t["id"]).choice(WORDS, 6))
        t["data"] = {"text": text, "confidence": CONFIDENCE[t["id"]]}
    assert client.post("/webhook", json=event).status_code == 200


def _label(client, ann_id: int, task_id: int, label: str = "neg", text: str = "") -> None:
    assert client.post("/webhook", json=annotation_event(ann_id, task_id, text, label)).status_code == 200


def _order(store) -> list[int]:
    ranking = store.ranking(store.current_version())
    return sorted(ranking, key=ranking.get)


def test_setup_accepts_a_plugin_only_if_the_operator_listed_it(client):
    body = setup_body(schema=LABEL_CONFIG)
    body["extra_params"] = {"model": "plugin", "plugin": "os:system"}
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "AL_PLUGINS" in r.text and "os:system" in r.text
    body["extra_params"] = {"model": "plugin", "plugin": PLUGIN.replace(":", ".")}  # not module:Class
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "package.module:ClassName" in r.text
    body["extra_params"] = {"model": "plugin"}
    assert client.post("/setup", json=body).status_code == 400
    assert not plugin._MODELS  # nothing imported or made at /setup
    body["extra_params"] = {"model": "plugin", "plugin": PLUGIN}
    r = client.post("/setup", json=body)
    assert r.status_code == 200, r.text
    status = client.get("/status/1").json()
    assert status["refusal"] is None and status["remote"]["failures"] == 0


def test_a_refresh_ranks_by_the_plugin_and_pushes_its_results(client, store, worker):
    _set_up(client, remote_batch=8)
    assert worker() >= 1
    assert ConfidencePlugin.predicted == [8, 8, 8, 6] and ConfidencePlugin.fits == []  # no labels: no fit
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "remote" and meta["ranked"] == N and meta["geometry"] == "text"
    assert meta["remote"]["host"] == PLUGIN and meta["remote"]["model_version"] == "conf-0@unfitted"
    assert meta["remote"]["with_uncertainty"] == N
    by_confidence = sorted(CONFIDENCE, key=CONFIDENCE.get)
    order = _order(store)
    assert CONFIDENCE[order[0]] < 0.2
    assert np.corrcoef([order.index(t) for t in by_confidence], range(N))[0, 1] > 0.8
    head = head_predictions(store, store.current_version(), 5, 10_000)
    (item,) = head[0]["result"]
    assert item["value"]["choices"] == ["pos"] and item["score"] == CONFIDENCE[head[0]["task"]]
    # /predict: a cached task without calling the class; an unknown one asked live, in this process.
    calls = len(ConfidencePlugin.predicted)
    got = client.post("/predict", json=predict_body([(order[0], "x")], label_config=LABEL_CONFIG)).json()
    assert got["results"][0]["result"] == head[0]["result"] and len(ConfidencePlugin.predicted) == calls
    body = predict_body([(999, "new")], label_config=LABEL_CONFIG)
    body["tasks"][0]["data"]["confidence"] = 0.99
    got = client.post("/predict", json=body).json()["results"][0]
    assert got["result"][0]["score"] == 0.99 and ConfidencePlugin.predicted[calls:] == [1]


def test_new_labels_fit_the_plugin_and_its_new_version_is_asked_again(client, store, worker):
    _set_up(client)
    worker()
    first = store.current_version()
    top = _order(store)[0]
    _label(client, 1, top, "neg", "Alice met Bob")
    worker()
    ((event, data),) = ConfidencePlugin.fits
    assert event == "START_TRAINING" and data["project"] == {"id": 1}
    (task,) = data["tasks"]
    assert task["id"] == top and task["data"]["text"] == "Alice met Bob"  # the data Label Studio sent last
    assert task["annotations"][0]["result"][0]["value"]["choices"] == ["neg"]
    assert data["annotations"][0]["task"] == top
    # A fit is a new version: every cached prediction is stale, and the pool is asked again.
    assert ConfidencePlugin.predicted == [N, 1, N - 2]
    meta = store.version_meta(store.current_version())
    assert store.current_version() != first and meta["remote"]["model_version"].startswith("conf-1@")
    assert top not in _order(store)
    # Nothing changed: no fit, one probe, no new version.
    current = store.current_version()
    request_refresh(store.r, PREFIX, QUEUE, 1, "test")
    worker()
    assert len(ConfidencePlugin.fits) == 1 and ConfidencePlugin.predicted[-1] == 1
    assert store.current_version() == current


def test_an_exception_in_the_plugin_is_shown_and_the_last_version_keeps_serving(client, store, worker):
    _set_up(client)
    worker()
    serving = store.current_version()
    ConfidencePlugin.fail = True
    _label(client, 1, _order(store)[0])
    worker()
    assert store.current_version() == serving
    status = client.get("/status/1").json()
    health = status["remote"]
    assert health["failures"] == 1 and f"{PLUGIN}.predict raised ValueError: model weights missing" in health[
        "last_error"]
    assert len(health["last_error"]) < 500 and 0 < health["next_retry_at"] - time.time() <= 5
    assert "remote model" in status["status"]["last_error"]
    r = client.post("/predict", json=predict_body([(999, "new")], label_config=LABEL_CONFIG))
    assert r.status_code == 200 and r.json()["results"][0]["result"] == []
    # It works again once the retry time comes.
    ConfidencePlugin.fail = False
    cache = RemotePredictions(store)
    store.r.hset(cache._health_key(), "next_retry_at", 0)
    request_refresh(store.r, PREFIX, QUEUE, 1, "test")
    worker()
    assert store.current_version() != serving and client.get("/status/1").json()["remote"]["failures"] == 0


def test_an_unimportable_plugin_is_an_error_not_a_crash(client, store, worker):
    _set_up(client, path="no_such_module_here:Model")
    worker()
    assert store.current_version() is None
    health = client.get("/status/1").json()["remote"]
    assert "importing no_such_module_here:Model raised ModuleNotFoundError" in health["last_error"]


def test_the_worked_example_learns_from_the_labels_and_pre_annotates(client, store, worker):
    texts = {tid: ("a wonderful, lovely film" if tid % 2 else "a dull, awful film") + f" number {tid}"
             for tid in CONFIDENCE}
    _set_up(client, path=EXAMPLE, texts=texts)
    worker()
    assert store.version_meta(store.current_version())["remote"]["with_uncertainty"] == 0  # cold: no opinion
    for ann, tid in enumerate([1, 2, 3, 4], start=1):
        _label(client, ann, tid, "pos" if tid % 2 else "neg", texts[tid])
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["remote"]["model_version"].startswith("sentiment-4@") and meta["remote"]["with_uncertainty"] == N - 4
    head = {p["task"]: p for p in head_predictions(store, store.current_version(), N, 10_000)}
    for tid, p in head.items():
        (item,) = p["result"]
        assert item["value"]["choices"] == ["pos" if tid % 2 else "neg"]
