"""One identity per project, and Label Studio as the truth: recreated projects start clean,
forged deletions do not block labels, old state is migrated; real Redis and RQ."""

from __future__ import annotations

import orjson

from backend.state.store import ProjectStore, epoch_of, migrate
from tests.conftest import PREFIX, annotation_event, payload, setup_body, tasks_created

CREATED_AT = payload("webhook_annotation_created")["project"]["created_at"]


def _deleted(ids: list[int]) -> dict:
    body = payload("webhook_annotations_deleted")
    body["annotations"] = [{"id": i} for i in ids]
    return body


def test_epoch_matches_what_setup_sends():
    assert epoch_of(CREATED_AT) == int(setup_body()["project"].split(".")[1])
    assert epoch_of(None) is None and epoch_of("not a time") is None


def test_forged_deletion_does_not_block_future_annotations(client, store, worker):
    """Security (issue 13, item 2): an ANNOTATIONS_DELETED naming future ids must leave no tombstones."""
    client.post("/setup", json=setup_body())
    r = client.post("/webhook", json=_deleted(list(range(100, 110))))
    assert r.status_code == 200
    for i, (text, label) in enumerate([("good film", "pos"), ("bad film", "neg")]):
        r = client.post("/webhook", json=annotation_event(100 + i, 10 + i, text, label))
        assert r.json()["detail"] == f"annotation {100 + i} recorded"
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "model" and meta["labeled_tasks"] == 2


def test_recreated_project_starts_clean(client, store, worker):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=annotation_event(1, 10, "good film", "pos"))
    client.post("/webhook", json=annotation_event(2, 11, "bad film", "neg"))
    worker()
    assert store.current_version() and len(store.annotations()) == 2
    body = setup_body()
    body["project"] = "1.1900000000"  # the same id, created later: a reset or another Label Studio
    assert client.post("/setup", json=body).json() == {"model_version": "cold-start"}
    assert store.annotations() == [] and store.versions() == [] and store.current_version() is None
    assert store.identity()["epoch"] == 1900000000
    assert store.exists()  # the new project's config


def test_webhook_of_a_recreated_project_wipes_the_old_state(client, store):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=tasks_created([(1, "a"), (2, "b")]))
    client.post("/webhook", json=annotation_event(1, 1, "a", "pos"))
    body = annotation_event(7, 70, "new project's text", "neg")
    body["project"]["created_at"] = "2027-01-01T00:00:00.000000Z"
    assert client.post("/webhook", json=body).status_code == 200
    assert [a["id"] for a in store.annotations()] == [7] and store.task_ids() == [70]
    assert not store.exists()  # not set up again yet: /setup comes when the backend is connected


def test_same_epoch_keeps_the_state(client, store):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=annotation_event(1, 10, "good film", "pos"))
    client.post("/setup", json=setup_body())
    assert len(store.annotations()) == 1


def test_old_layout_keys_get_migrated(redis_conn, client):
    """State written before identities: tombstones and no identity key."""
    old = ProjectStore(redis_conn, PREFIX, 3)
    old.save_config({"schema": "<View/>", "project_epoch": 1795483663, "hostname": "http://ls.example"})
    redis_conn.sadd(old.key("annotations_deleted"), 5, 6)
    redis_conn.sadd(old.key("tasks_deleted"), 9)
    redis_conn.hset(old.key("annotations"), 4, orjson.dumps({"id": 4, "task": 40, "result": []}))
    assert migrate(redis_conn, PREFIX) == [3]
    assert not redis_conn.exists(old.key("annotations_deleted"), old.key("tasks_deleted"))
    assert old.identity() == {"epoch": 1795483663, "hostname": "http://ls.example"}
    assert len(old.annotations()) == 1  # the state itself is kept
    assert migrate(redis_conn, PREFIX) == []  # idempotent
    # An annotation whose id an old tombstone held counts now.
    body = annotation_event(5, 50, "t", "pos", pid=3)
    assert client.post("/webhook", json=body).json()["detail"] == "annotation 5 recorded"


def test_bulk_annotations_created_are_recorded_at_once(client, store, redis_conn):
    """Data Manager's "create annotations from predictions": one event, many annotations (real payload)."""
    client.post("/setup", json=setup_body())
    body = payload("webhook_annotations_created")
    body["project"]["created_at"] = CREATED_AT
    r = client.post("/webhook", json=body)
    assert r.status_code == 200 and r.json()["detail"] == "2 annotation(s) received (2 new or changed)"
    anns = sorted(store.annotations(), key=lambda a: a["id"])
    assert [(a["id"], a["task"]) for a in anns] == [(1, 1), (2, 2)]
    assert anns[0]["result"][0]["value"]["choices"] == ["pos"]
    assert set(store.task_ids()) == {1, 2}
    assert redis_conn.exists(f"{PREFIX}:p:1:refresh_pending")


def test_every_captured_event_is_understood(client, store):
    """Each real Label Studio 1.23.2 webhook body is handled, none answered as unknown."""
    client.post("/setup", json=setup_body())
    for name in ("webhook_annotations_created", "webhook_annotations_deleted_bulk", "webhook_tasks_deleted",
                 "webhook_tasks_deleted_bulk", "webhook_annotation_created", "webhook_annotation_updated",
                 "webhook_annotations_deleted", "webhook_project_updated", "webhook_start_training",
                 "webhook_tasks_created"):
        body = payload(name)
        body["project"]["created_at"] = CREATED_AT
        r = client.post("/webhook", json=body)
        assert r.status_code == 200 and r.json()["status"] == "ok", (name, r.text)
