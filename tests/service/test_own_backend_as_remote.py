"""This backend as another project's remote model: the protocol it serves is the one it reads.

"Their" backend is this project itself, run as real processes (``al-backend
serve`` and ``al-backend worker``, ``harness.stack.Stack``, on a Redis prefix
of its own and no Label Studio): it trains on ten labeled digits (scikit-
learn's 8x8 digits read as text, "0" against "1") and answers ``/predict``
with ``choices`` results, each with its probability as ``score``.  "Our"
backend (the test app) ranks a project with ``{"model": "remote"}`` by those
answers: the task their model is least sure of comes first, and the head
carries their choices.
"""

from __future__ import annotations

import types

import httpx
import numpy as np
import pytest

from backend.settings import host_port
from backend.simulation.datasets import load_dataset
from harness.stack import Stack, wait_for
from tests.conftest import TEST_REDIS_URL, annotation_event, setup_body, tasks_created
from worker.push import head_predictions

CONFIG = ('<View><Text name="text" value="$text"/><Choices name="digit" toName="text">'
          '<Choice value="0"/><Choice value="1"/></Choices></View>')
N_LABELED, N_POOL = 10, 40


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    rows = [i for i, y in enumerate(ds.labels) if y in ("0", "1")][:N_LABELED + N_POOL]
    return {1000 + k: (ds.texts[i], ds.labels[i]) for k, i in enumerate(rows)}


@pytest.fixture
def theirs(redis_conn, tmp_path, digits):
    """This backend as someone else's model server, trained on the first ten tasks (after the test DB's flush)."""
    nowhere = types.SimpleNamespace(url="http://127.0.0.1:9", token="unused")  # no Label Studio to push to
    stack = Stack(nowhere, tmp_path, redis_url=TEST_REDIS_URL).start()
    try:
        setup = setup_body(schema=CONFIG)
        assert httpx.post(f"{stack.url}/setup", json=setup, timeout=10).status_code == 200
        event = tasks_created([(tid, text) for tid, (text, _) in digits.items()])
        assert httpx.post(f"{stack.url}/webhook", json=event, timeout=10).status_code == 200
        for ann, (tid, (text, label)) in enumerate(list(digits.items())[:N_LABELED], 1):
            result = [{"from_name": "digit", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
            event = annotation_event(ann, tid, text, "", result=result)
            assert httpx.post(f"{stack.url}/webhook", json=event, timeout=10).status_code == 200
        wait_for(lambda: (stack.status(1).get("current") or {}).get("labeled_tasks") == N_LABELED, 60,
                 what="their backend trained on ten labels")
        yield stack
    finally:
        stack.stop()
        stack.cleanup_redis()


@pytest.fixture
def allowed(theirs, monkeypatch):
    """The operator lists their backend (before our settings are read)."""
    monkeypatch.setenv("AL_REMOTE_ALLOW_HOSTS", host_port(theirs.url))


def test_a_project_ranks_by_this_backends_own_predictions_served_as_a_remote(digits, theirs, allowed, client, store,
                                                                              worker):
    ours = client
    pool = dict(list(digits.items())[N_LABELED:])
    # What their model says of each pool task, asked directly.
    body = {"tasks": [{"id": tid, "data": {"text": text}} for tid, (text, _) in pool.items()],
            "project": setup_body(schema=CONFIG)["project"], "label_config": CONFIG}
    answers = httpx.post(f"{theirs.url}/predict", json=body, timeout=30).json()["results"]
    confidence = {tid: a["result"][0]["score"] for tid, a in zip(pool, answers)}
    assert all(a["result"][0]["type"] == "choices" for a in answers) and len(set(confidence.values())) > 5
    setup = setup_body(schema=CONFIG)
    setup["extra_params"] = {"model": "remote", "remote_url": theirs.url, "control_share": 0}
    assert ours.post("/setup", json=setup).status_code == 200
    event = tasks_created([(tid, text) for tid, (text, _) in pool.items()])
    assert ours.post("/webhook", json=event).status_code == 200
    worker()
    status = ours.get("/status/1").json()
    assert status["current"]["kind"] == "remote" and status["remote"]["failures"] == 0
    ranking = store.ranking(store.current_version())
    order = sorted(ranking, key=ranking.get)
    assert set(order) == set(pool)
    # Their least confident task leads our queue; their most confident ones come last.
    assert confidence[order[0]] == min(confidence.values())
    assert np.mean([confidence[t] for t in order[:10]]) < np.mean([confidence[t] for t in order[-10:]])
    # The head carries their choices, each with their score, as the pre-annotation.
    head = head_predictions(store, store.current_version(), 5, 100_000)
    for p in head:
        (item,) = p["result"]
        assert item["type"] == "choices" and item["score"] == pytest.approx(confidence[p["task"]])
