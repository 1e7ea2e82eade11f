"""``min_confidence``: a pre-annotation is shown only when the model is sure enough, in /predict and in the push."""

from __future__ import annotations

from tests.conftest import annotation_event, predict_body, setup_body, tasks_created
from worker.push import head_predictions

POOL = [(1, "great wonderful film"), (2, "awful boring film"), (3, "great acting"), (4, "boring plot"),
        (5, "a film"), (6, "wonderful great lovely"), (7, "awful awful boring")]


def trained(client, store, worker, extra_params: dict) -> str:
    body = setup_body()
    body["extra_params"] = extra_params
    assert client.post("/setup", json=body).status_code == 200
    client.post("/webhook", json=tasks_created(POOL))
    for i, (tid, label) in enumerate([(1, "pos"), (2, "neg"), (3, "pos"), (4, "neg")], 1):
        client.post("/webhook", json=annotation_event(i, tid, dict(POOL)[tid], label))
    worker()
    return store.current_version()


def test_a_threshold_hides_unsure_pre_annotations_but_keeps_the_queue_order(client, store, worker):
    version = trained(client, store, worker, {})
    shown = client.post("/predict", json=predict_body(POOL[4:])).json()["results"]
    probs = [p["result"][0]["score"] for p in shown]
    assert all(p["result"] for p in shown)
    cut = sorted(probs)[1]  # hides the least sure pre-annotation(s), keeps the others
    assert min(probs) < cut

    body = setup_body()
    body["extra_params"] = {"min_confidence": cut}
    assert client.post("/setup", json=body).status_code == 200
    after = client.post("/predict", json=predict_body(POOL[4:])).json()["results"]
    assert [bool(p["result"]) for p in after] == [p >= cut for p in probs]
    assert [p["score"] for p in after] == [p["score"] for p in shown]  # queue positions unchanged
    assert all(p["model_version"] == version for p in after)

    pushed = {p["task"]: p for p in head_predictions(store, version, 10, 1000, min_confidence=cut)}
    assert pushed and all(item["score"] >= cut for p in pushed.values() for item in p["result"])
    assert any(not p["result"] for p in pushed.values())
    assert all(p["result"] for p in head_predictions(store, version, 10, 1000))


def test_an_invalid_threshold_is_refused_at_setup(client):
    body = setup_body()
    body["extra_params"] = {"min_confidence": 1.5}
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "min_confidence" in r.json()["detail"]


def test_the_measurement_script_counts_shown_and_wrong_pre_annotations():
    """``scripts/min_confidence.py`` on the built-in digits (small): a higher threshold shows fewer, never more."""
    from scripts.min_confidence import measure, table

    result = measure("digits", seeds=1, checkpoints=[100, 200], head=50, thresholds=(0.0, 0.5, 0.9), max_rows=1500)
    for where in ("head", "random"):
        for per_t in result["counts"][where].values():
            (n0, s0, w0), (_, s5, w5), (_, s9, w9) = per_t.values()
            assert n0 > 0 and s0 == n0  # no threshold: every task shows its pre-annotation
            assert s0 >= s5 >= s9 and w0 >= w5 >= w9 and 0 <= w0 <= s0
    assert "| 100 | off | 100% |" in table(result)
