"""Replay every body a real Label Studio 1.23.2 sent and check the answers field by field."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.service.predictor import COLD_START
from tests.conftest import PAYLOADS, PREFIX, annotation_event, payload, predict_body, setup_body

SHARED = Path(__file__).resolve().parents[3] / "shared" / "label-studio-payloads"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside this clone")
def test_fixture_copies_match_shared():
    shared = sorted(p.name for p in SHARED.glob("*.json"))
    ours = sorted(p.name for p in PAYLOADS.glob("*.json"))
    assert set(shared) <= set(ours)  # the repository may hold newer captures (scripts/capture_ls_payloads.py)
    for name in shared:
        assert (SHARED / name).read_bytes() == (PAYLOADS / name).read_bytes(), name


def test_health_reports_redis(client):
    for path in ("/health", "/"):
        r = client.get(path)
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "UP"
        assert body["model_class"] == "ActiveLearningTextClassifier"
        assert body["redis"] is True


def test_setup_replay(client, store):
    r = client.post("/setup", json=payload("setup"))
    assert r.status_code == 200, r.text
    assert r.json() == {"model_version": COLD_START}
    cfg = store.config()
    assert cfg["schema"] == payload("setup")["schema"]
    assert cfg["project_epoch"] == 1795483663
    assert cfg["hostname"] == "http://localhost:8080"
    (control,) = cfg["parsed"]["controls"]
    assert control["name"] == "sentiment"
    assert control["labels"] == ["pos", "neg"]
    assert control["objects"][0]["value_key"] == "text"


def test_predict_replay_cold_start(client):
    r = client.post("/predict", json=payload("predict"))
    assert r.status_code == 200, r.text
    (pred,) = r.json()["results"]
    assert pred == {"result": [], "score": 0.5, "model_version": COLD_START}


def test_predict_replay_with_model(client, worker):
    client.post("/setup", json=setup_body())
    texts = {"pos": "a wonderful, moving and beautiful film", "neg": "a dull, boring and awful mess"}
    for i in range(20):
        label = "pos" if i % 2 else "neg"
        client.post("/webhook", json=annotation_event(100 + i, 200 + i, f"{texts[label]} number {i}", label))
    assert worker() >= 1
    body = predict_body([(21, "what a wonderful beautiful film"), (22, "boring awful mess")])
    r = client.post("/predict", json=body)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2
    versions = client.get("/versions", params={"project": "1"}).json()["versions"]
    for pred in results:
        assert set(pred) == {"result", "score", "model_version"}
        assert pred["model_version"] == versions[-1]
        assert 0.0 <= pred["score"] <= 1.0
        (item,) = pred["result"]
        assert item["from_name"] == "sentiment"
        assert item["to_name"] == "text"
        assert item["type"] == "choices"
        assert 0.5 <= item["score"] <= 1.0
    assert results[0]["result"][0]["value"] == {"choices": ["pos"]}
    assert results[1]["result"][0]["value"] == {"choices": ["neg"]}


def test_every_webhook_replay_is_accepted(client, store):
    client.post("/setup", json=payload("setup"))
    expected = {
        "webhook_annotation_created": "annotation 1 recorded",
        "webhook_annotation_updated": "annotation 1 recorded",
        "webhook_annotations_deleted": "1 annotation(s) deleted (1 were known)",
        "webhook_project_updated": "label config unchanged",
        "webhook_start_training": "training requested",
        "webhook_tasks_created": "2 task(s) added to the pool",
    }
    for name, detail in expected.items():
        body = payload(name)
        r = client.post("/webhook", json=body)
        assert r.status_code == 200, (name, r.text)
        assert r.json() == {"status": "ok", "action": body["action"], "detail": detail}, name
    assert store.annotations() == []  # created, updated, then deleted
    assert set(store.tasks()) == {8, 21, 22}
    assert store.r.sismember(store.key("deletions_unconfirmed"), 1)  # the worker asks Label Studio


def test_annotation_webhook_records_the_label(client, store):
    client.post("/webhook", json=payload("webhook_annotation_created"))
    (ann,) = store.annotations()
    assert len(ann.pop("content")) == 16
    assert ann == {
        "id": 1,
        "task": 8,
        "result": payload("webhook_annotation_created")["annotation"]["result"],
        "was_cancelled": False,
        "completed_by": 1,
        "updated_at": "2026-11-24T01:29:11.440555Z",
    }
    assert store.tasks()[8] == {"text": "sample text number 7"}
    client.post("/webhook", json=payload("webhook_annotation_updated"))
    (ann,) = store.annotations()
    assert ann["result"][0]["value"]["choices"] == ["pos"]


def test_versions_lists_all_projects_without_param(client, worker):
    for pid in (1, 2):
        client.post("/setup", json=setup_body(pid))
        client.post("/webhook", json=annotation_event(pid * 10, pid * 100, "some text", "pos", pid=pid))
    worker()
    all_versions = client.get("/versions").json()["versions"]
    one = client.get("/versions", params={"project": "2.1795483663"}).json()["versions"]
    assert len(all_versions) == 2 and len(one) == 1 and one[0] in all_versions


def test_metrics_is_prometheus_text(client):
    client.post("/predict", json=payload("predict"))
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'al_requests_total{route="/predict",status="200"}' in text
    assert "al_request_seconds_bucket" in text
    assert 'al_queue_jobs{queue="t-queue",state="queued"}' in text
    assert PREFIX  # metrics are process-wide; the prefix only scopes Redis keys
