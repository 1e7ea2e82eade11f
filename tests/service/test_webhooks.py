"""Webhooks record state in Redis, coalesce jobs and survive repeats and reordering."""

from __future__ import annotations

from backend.state.queueing import job_queue
from tests.conftest import QUEUE, annotation_event, payload, setup_body, tasks_created


def queued(redis_conn) -> int:
    return job_queue(QUEUE, redis_conn).count


def test_burst_of_annotations_is_one_job(client, redis_conn, store, worker):
    client.post("/setup", json=setup_body())
    for i in range(500):
        r = client.post("/webhook", json=annotation_event(i + 1, 1000 + i, f"text {i}", "pos" if i % 2 else "neg"))
        assert r.status_code == 200
    assert queued(redis_conn) == 1
    assert len(store.annotations()) == 500
    assert worker() == 1
    meta = store.version_meta(store.current_version())
    assert meta["labeled_tasks"] == 500 and meta["kind"] == "model"
    assert meta["controls"]["sentiment"]["label_counts"] == {"neg": 250, "pos": 250}


def test_event_during_a_run_schedules_exactly_one_more(client, redis_conn, store, worker):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=annotation_event(1, 10, "good", "pos"))
    # The job clears the pending flag when it starts, as a running job would.
    redis_conn.delete("t:p:1:refresh_pending")
    client.post("/webhook", json=annotation_event(2, 11, "bad", "neg"))
    client.post("/webhook", json=annotation_event(3, 12, "worse", "neg"))
    assert queued(redis_conn) == 2


def test_repeated_and_reordered_updates_keep_the_newest(client, store):
    new = annotation_event(7, 70, "t", "neg", action="ANNOTATION_UPDATED", updated_at="2026-11-24T02:00:00.000000Z")
    old = annotation_event(7, 70, "t", "pos", updated_at="2026-11-24T01:00:00.000000Z")
    for body in (new, old, new, old):
        assert client.post("/webhook", json=body).status_code == 200
    (ann,) = store.annotations()
    assert ann["result"][0]["value"]["choices"] == ["neg"]


def test_delete_leaves_no_tombstone_but_asks_the_worker_to_confirm(client, store):
    """Label Studio is the truth: a deleted id may come back, and the worker checks each deletion."""
    body = payload("webhook_annotations_deleted")
    body["annotations"] = [{"id": 5}]
    client.post("/webhook", json=body)
    r = client.post("/webhook", json=annotation_event(5, 50, "t", "pos"))
    assert r.json()["detail"] == "annotation 5 recorded"
    assert [a["id"] for a in store.annotations()] == [5]
    assert store.r.smembers(store.key("deletions_unconfirmed")) == {b"5"}


def test_cancelled_annotation_is_kept_but_not_a_label(client, store, worker):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=annotation_event(1, 10, "good film", "pos"))
    client.post("/webhook", json=annotation_event(2, 11, "bad film", "neg"))
    client.post("/webhook", json=annotation_event(3, 12, "skipped one", "pos", cancelled=True))
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["labeled_tasks"] == 2
    assert meta["pool"] == 1  # the skipped task stays in the queue


def test_tasks_created_and_deleted_change_the_pool(client, store):
    client.post("/webhook", json=tasks_created([(1, "a"), (2, "b"), (3, "c")]))
    body = {"action": "TASKS_DELETED", "tasks": [{"id": 2}], "project": {"id": 1}}
    r = client.post("/webhook", json=body)
    assert r.status_code == 200 and r.json()["detail"] == "1 task(s) removed from the pool"
    assert set(store.tasks()) == {1, 3}


def test_project_updated_with_new_config_is_stored(client, store):
    client.post("/setup", json=setup_body())
    body = payload("webhook_project_updated")
    new = body["project"]["label_config"].replace('<Choice value="neg"/>', '<Choice value="neg"/><Choice value="mixed"/>')
    body["project"]["label_config"] = new
    r = client.post("/webhook", json=body)
    assert r.json()["detail"] == "label config changed"
    assert store.config()["parsed"]["controls"][0]["labels"] == ["pos", "neg", "mixed"]
    # An unsupported edit is reported, and the last good config is kept.
    body["project"]["label_config"] = '<View><Image name="i" value="$i"/></View>'
    r = client.post("/webhook", json=body)
    assert r.status_code == 200 and r.json()["detail"].startswith("label config not supported")
    assert store.config()["parsed"]["controls"][0]["labels"] == ["pos", "neg", "mixed"]
    assert "cannot serve" in store.status()["last_error"]


def test_unknown_events_are_ignored(client, redis_conn):
    r = client.post("/webhook", json={"action": "PROJECT_CREATED", "project": {"id": 1}})
    assert r.status_code == 200 and r.json()["status"] == "ignored"
    assert queued(redis_conn) == 0


def test_malformed_events_are_400(client):
    cases = [
        (b"not json", "JSON decode error"),
        (b"[1, 2]", "valid dictionary"),
        (b'{"project": {"id": 1}}', '"action"'),
        (b'{"action": "ANNOTATION_CREATED", "project": {"id": 1}}', "annotation"),
        (b'{"action": "ANNOTATIONS_DELETED", "project": {"id": 1}, "annotations": [{"x": 1}]}', "annotations.0.id"),
        (b'{"action": "START_TRAINING"}', "project"),
    ]
    for raw, needle in cases:
        r = client.post("/webhook", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, raw
        assert needle in r.json()["detail"], (raw, r.json())
        assert r.json()["detail"].startswith(("malformed webhook", "invalid request")), raw


def test_repeated_webhook_with_same_labels_wakes_nobody(client, redis_conn, store):
    body = annotation_event(8, 80, "t", "pos")
    assert client.post("/webhook", json=body).json()["detail"] == "annotation 8 recorded"
    redis_conn.delete("t:p:1:refresh_pending")
    job_queue(QUEUE, redis_conn).empty()
    later = annotation_event(8, 80, "t", "pos", action="ANNOTATION_UPDATED", updated_at="2026-11-24T05:00:00.000000Z")
    assert client.post("/webhook", json=later).json()["detail"] == "annotation 8 unchanged"
    assert queued(redis_conn) == 0
    assert store.annotations()[0]["updated_at"] == "2026-11-24T05:00:00.000000Z"
