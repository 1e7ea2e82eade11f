"""Bring your own model (issue 18): a project ranked by another ML backend's predictions.

The user's model is ``harness/remote_backend.RemoteBackend``, a real server
speaking Label Studio's ML backend protocol on loopback: one rectangle per
image task (a span per text task) whose score is the task's
``data["confidence"]``.  The backend, Redis and RQ are real; no Label Studio
is needed here (``tests/e2e/test_remote.py`` drives the real one).
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from backend.settings import host_port
from backend.state.remote import RemotePredictions
from harness.remote_backend import Behaviour, RemoteBackend
from backend.state.queueing import request_refresh
from tests.conftest import PREFIX, QUEUE, annotation_event, predict_body, setup_body, tasks_created
from worker.push import head_predictions

CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
          '<Label value="car"/></RectangleLabels></View>')
NER = ('<View><Labels name="label" toName="text"><Label value="PER"/></Labels>'
       '<Text name="text" value="$text"/></View>')
N = 30


@pytest.fixture(autouse=True)
def remote(monkeypatch):
    """The user's model, listed by the operator in AL_REMOTE_ALLOW_HOSTS (before the settings are read)."""
    with RemoteBackend(Behaviour()) as server:
        monkeypatch.setenv("AL_REMOTE_ALLOW_HOSTS", f"example.org:9090, {host_port(server.url)}")
        yield server


def _image(i: int) -> str:
    rng = np.random.default_rng(i)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


#: Each task's confidence in the remote's box: a fixed shuffle, so the lowest are not the first ids.
CONFIDENCE = {tid: round(float(c), 3) for tid, c in
              zip(range(1, N + 1), np.random.default_rng(7).permutation(np.linspace(0.05, 0.95, N)))}


def _set_up(client, remote, schema=CONFIG, key="image", **extra) -> None:
    body = setup_body(schema=schema)
    body["extra_params"] = {"model": "remote", "remote_url": remote.url, "control_share": 0, **extra}
    r = client.post("/setup", json=body)
    assert r.status_code == 200, r.text
    event = tasks_created([(tid, "") for tid in CONFIDENCE], key=key)
    for t in event["tasks"]:
        t["data"] = {key: _image(t["id"]) if key == "image" else f"Alice met Bob, task {t['id']}",
                     "confidence": CONFIDENCE[t["id"]]}
    assert client.post("/webhook", json=event).status_code == 200


def _label(client, ann_id: int, task_id: int) -> None:
    box = {"from_name": "label", "to_name": "image", "type": "rectanglelabels",
           "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["car"]}}
    event = annotation_event(ann_id, task_id, "", "", key="image", result=[box])
    assert client.post("/webhook", json=event).status_code == 200


def _order(store) -> list[int]:
    ranking = store.ranking(store.current_version())
    return sorted(ranking, key=ranking.get)


def test_setup_accepts_a_rectangles_config_only_for_a_listed_remote(client, remote):
    body = setup_body(schema=CONFIG)
    r = client.post("/setup", json=body)  # this backend predicts no rectangles itself
    assert r.status_code == 422, r.text
    body["extra_params"] = {"model": "remote", "remote_url": "http://10.0.0.5:9090"}
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "AL_REMOTE_ALLOW_HOSTS" in r.text and "10.0.0.5:9090" in r.text
    body["extra_params"] = {"model": "remote", "remote_url": remote.url.replace("127.0.0.1", "localhost")}
    assert client.post("/setup", json=body).status_code == 400  # the listed host:port, not another name of it
    body["extra_params"] = {"model": "remote"}
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "remote_url" in r.text
    body["extra_params"] = {"model": "remote", "remote_url": remote.url}
    r = client.post("/setup", json=body)
    assert r.status_code == 200, r.text
    status = client.get("/status/1").json()
    assert status["refusal"] is None and status["remote"]["failures"] == 0


def test_a_refresh_ranks_the_pool_by_the_remote_in_batches_and_pushes_its_boxes(client, store, worker, remote):
    _set_up(client, remote, remote_batch=8)
    assert worker() >= 1
    assert remote.behaviour.calls == [8, 8, 8, 6]
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "remote" and meta["ranked"] == N and meta["geometry"] == "image"
    assert meta["remote"]["model_version"] == "detector-v1" and meta["remote"]["with_uncertainty"] == N
    by_confidence = sorted(CONFIDENCE, key=CONFIDENCE.get)
    order = _order(store)
    assert order[:5] == by_confidence[:5]  # least confident boxes first
    assert np.corrcoef([order.index(t) for t in by_confidence], range(N))[0, 1] > 0.9
    head = head_predictions(store, store.current_version(), 10, 10_000)
    assert [p["task"] for p in head] == order[:10]
    first = head[0]
    assert first["model_version"] == store.current_version() and first["score"] == 0.0
    (box,) = first["result"]
    assert box["type"] == "rectanglelabels" and box["value"]["rectanglelabels"] == ["car"]
    assert box["score"] == CONFIDENCE[first["task"]]
    # /predict answers the cached box without calling the remote; an unknown task is asked live.
    calls = len(remote.behaviour.calls)
    body = predict_body([(order[0], _image(order[0]))], key="image", label_config=CONFIG)
    got = client.post("/predict", json=body).json()["results"][0]
    assert got["result"] == first["result"] and got["model_version"] == store.current_version()
    assert len(remote.behaviour.calls) == calls
    body = predict_body([(999, _image(999))], key="image", label_config=CONFIG)
    body["tasks"][0]["data"]["confidence"] = 0.99
    got = client.post("/predict", json=body).json()["results"][0]
    assert got["result"][0]["score"] == 0.99 and got["score"] > 0.5  # confident: late in the queue
    assert remote.behaviour.calls[calls:] == [1]


def test_a_new_label_reranks_from_the_cache_and_a_new_remote_version_asks_again(client, store, worker, remote):
    _set_up(client, remote)
    worker()
    assert remote.behaviour.calls == [N]
    first = store.current_version()
    top = _order(store)[0]
    _label(client, 1, top)
    worker()
    assert remote.behaviour.calls == [N, 1]  # only a one-task probe of the remote's version
    assert store.current_version() != first and top not in _order(store) and len(_order(store)) == N - 1
    # The remote serves a new model: the probe sees it, and every cached prediction is asked again.
    remote.behaviour.model_version = "detector-v2"
    _label(client, 2, _order(store)[0])
    worker()
    assert remote.behaviour.calls == [N, 1, 1, N - 3]  # the probed task is cached under v2 already
    meta = store.version_meta(store.current_version())
    assert meta["remote"]["model_version"] == "detector-v2"
    # Nothing changed: no new version; the scheduler asks again after AL_REMOTE_POLL_INTERVAL.
    current = store.current_version()
    request_refresh(store.r, PREFIX, QUEUE, 1, "test")
    worker()
    assert store.current_version() == current and remote.behaviour.calls == [N, 1, 1, N - 3, 1]


def test_a_failing_remote_keeps_the_last_version_and_shows_the_error_then_recovers(client, store, worker, remote):
    _set_up(client, remote)
    worker()
    serving = store.current_version()
    remote.behaviour.fail = True
    _label(client, 1, _order(store)[0])
    worker()
    assert store.current_version() == serving
    status = client.get("/status/1").json()
    health = status["remote"]
    assert health["failures"] == 1 and "HTTP 500" in health["last_error"]
    assert 0 < health["next_retry_at"] - time.time() <= 5
    assert "remote model" in status["status"]["last_error"]
    # The lead sees it on the dashboard: the model failing, why, and when it is tried again.
    page = client.get("/dashboard/1").text
    assert 'id="remote"' in page and "Failing" in page and "HTTP 500" in page and "next try at" in page
    # /predict does not call a remote the worker backs off from either: an unknown task gets an empty result.
    calls = len(remote.behaviour.calls)
    body = predict_body([(999, _image(999))], key="image", label_config=CONFIG)
    r = client.post("/predict", json=body)
    assert r.status_code == 200 and r.json()["results"][0]["result"] == [] and len(remote.behaviour.calls) == calls
    # Backing off: another label re-queues a refresh, which does not call the remote before the retry time.
    calls = len(remote.behaviour.calls)
    _label(client, 2, _order(store)[1])
    worker()
    assert len(remote.behaviour.calls) == calls and store.current_version() == serving
    # The retry time comes (the scheduler's check is due then), and the remote works again.
    remote.behaviour.fail = False
    cache = RemotePredictions(store)
    store.r.hset(cache._health_key(), "next_retry_at", time.time() - 1)
    from worker.refresh import training_overdue
    assert training_overdue(store.version_meta(serving), 0, now=time.time() + 5)
    request_refresh(store.r, PREFIX, QUEUE, 1, "test")
    worker()
    assert store.current_version() != serving and len(_order(store)) == N - 2
    health = client.get("/status/1").json()["remote"]
    assert health["failures"] == 0 and health["last_ok_at"]


def test_a_slow_remote_is_an_error_not_a_hang(client, store, worker, remote):
    remote.behaviour.delay = 3.0
    _set_up(client, remote, remote_timeout=0.5)
    # /predict asks live (nothing cached yet) and does not wait: an empty result, never an error.
    body = predict_body([(1, _image(1))], key="image", label_config=CONFIG)
    started = time.monotonic()
    r = client.post("/predict", json=body)
    assert r.status_code == 200 and r.json()["results"][0]["result"] == []
    assert time.monotonic() - started < 2.5
    started = time.monotonic()
    worker()
    assert time.monotonic() - started < 2.5
    assert store.current_version() is None
    health = client.get("/status/1").json()["remote"]
    assert health["failures"] == 1 and "took longer than 0.5 s" in health["last_error"]


def test_spans_of_a_text_project_rank_without_any_own_model(client, store, worker, remote):
    _set_up(client, remote, schema=NER, key="text", strategy="density")
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "remote" and meta["geometry"] == "text" and meta["strategy"] == "density"
    order = _order(store)
    assert CONFIDENCE[order[0]] < 0.3
    (span,) = head_predictions(store, store.current_version(), 1, 10_000)[0]["result"]
    assert span["type"] == "labels" and span["value"]["labels"] == ["PER"]


def test_hostile_remote_results_are_dropped_not_pushed(store):
    from backend.state.remote import result_of

    assert result_of({"result": "not a list"}) == []
    assert result_of(None) == []
    good = {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": {"x": 1}}
    assert result_of({"result": [good, 3, {"type": "x"}, {**good, "value": "v"}]}) == [good]


def test_the_dashboard_and_status_of_a_remote_project_answer(client, store, worker, remote):
    _set_up(client, remote)
    worker()
    assert client.get("/dashboard").status_code == 200
    page = client.get("/dashboard/1")
    assert page.status_code == 200
    assert "Your model" in page.text and "detector-v1" in page.text and "Answering: last success" in page.text
    assert remote.url.split("//")[1] in page.text  # which backend orders the queue
    status = client.get("/status/1").json()
    assert status["current"]["kind"] == "remote" and status["remote"]["model_version"] == "detector-v1"
    assert "access_token" not in str(status["remote"])


def test_a_refresh_spends_at_most_the_budget_on_the_remote_and_queues_the_rest(client, store, worker, remote,
                                                                             monkeypatch):
    from backend.settings import get_settings

    monkeypatch.setenv("AL_REMOTE_BUDGET", "0.25")
    get_settings.cache_clear()
    remote.behaviour.delay = 0.2
    _set_up(client, remote, remote_batch=5)
    worker()  # the burst runs the refresh and the ones it queued, each within its budget
    versions = [v.name for v in store.versions()]
    assert len(versions) >= 2 and all(n == 5 for n in remote.behaviour.calls)
    first = store.version_meta(versions[0])["remote"]
    last = store.version_meta(versions[-1])["remote"]
    assert not first["complete"] and first["tasks_asked"] < N
    assert last["complete"] and sum(remote.behaviour.calls) == N
    assert _order(store)[0] == min(CONFIDENCE, key=CONFIDENCE.get)
