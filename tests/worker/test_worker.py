"""The worker's refresh job: versions, rankings, failures, config changes; real Redis and RQ."""

from __future__ import annotations

import numpy as np
import pytest

from backend.learning.model import ChoicesClassifier
from backend.simulation.datasets import load_dataset
from tests.conftest import annotation_event, payload, predict_body, setup_body, tasks_created

POOL = [
    (1, "the acting was wonderful and the story moving"),
    (2, "a wonderful, moving story with great acting"),
    (3, "great acting and a wonderful story"),
    (4, "boring plot and awful acting"),
    (5, "an awful, boring plot"),
    (6, "boring and awful from start to end"),
    (7, "zzzz qqqq xxxx"),
]


def test_cold_start_ranks_the_pool(client, store, worker):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=tasks_created(POOL))
    assert worker() == 1
    version = store.current_version()
    meta = store.version_meta(version)
    assert meta["kind"] == "cold-start" and meta["ranked"] == len(POOL)
    r = client.post("/predict", json=predict_body(POOL))
    preds = r.json()["results"]
    assert all(p["result"] == [] and p["model_version"] == version for p in preds)
    scores = [p["score"] for p in preds]
    assert sorted(scores) == sorted(set(scores)) and min(scores) == 0.0 and max(scores) < 1.0
    assert scores[6] > 0.5  # the gibberish outlier is not at the head


def test_labels_produce_a_model_version_and_new_scores(client, store, worker):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=tasks_created(POOL))
    worker()
    cold = store.current_version()
    client.post("/webhook", json=annotation_event(1, 1, POOL[0][1], "pos"))
    client.post("/webhook", json=annotation_event(2, 4, POOL[3][1], "neg"))
    assert worker() == 1
    version = store.current_version()
    assert version != cold
    meta = store.version_meta(version)
    assert meta["kind"] == "model" and meta["labeled_tasks"] == 2 and meta["pool"] == 5
    assert meta["controls"]["sentiment"]["label_counts"] == {"neg": 1, "pos": 1}
    preds = client.post("/predict", json=predict_body(POOL[1:3] + POOL[4:6])).json()["results"]
    assert [p["result"][0]["value"]["choices"][0] for p in preds] == ["pos", "pos", "neg", "neg"]
    assert all(p["model_version"] == version for p in preds)
    assert client.post("/setup", json=setup_body()).json() == {"model_version": version}


def test_nothing_changed_means_no_new_version_unless_forced(client, store, worker, redis_conn):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=tasks_created(POOL))
    worker()
    first = store.current_version()
    client.post("/webhook", json=tasks_created(POOL[:2]))  # same tasks again
    worker()
    assert store.current_version() == first
    client.post("/webhook", json=payload("webhook_start_training"))
    worker()
    assert store.current_version() != first
    assert len(client.get("/versions").json()["versions"]) == 2


def test_failed_training_keeps_the_last_good_model(client, store, worker, monkeypatch):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=annotation_event(1, 1, POOL[0][1], "pos"))
    client.post("/webhook", json=annotation_event(2, 4, POOL[3][1], "neg"))
    worker()
    good = store.current_version()

    def broken_fit(self, X, y, **kwargs):
        raise MemoryError("simulated failure while training")

    monkeypatch.setattr(ChoicesClassifier, "fit", broken_fit)
    client.post("/webhook", json=annotation_event(3, 2, POOL[1][1], "pos"))
    worker()
    assert store.current_version() == good
    assert "simulated failure" in store.status()["last_error"]
    preds = client.post("/predict", json=predict_body(POOL[2:3])).json()["results"]
    assert preds[0]["model_version"] == good and preds[0]["result"]
    status = client.get("/status/1").json()
    assert status["current_version"] == good and "MemoryError" in status["status"]["last_error"]


def test_label_removed_from_config_does_not_crash(client, store, worker):
    three = payload("setup")["schema"].replace('<Choice value="neg"/>', '<Choice value="neg"/><Choice value="meh"/>')
    client.post("/setup", json=setup_body(schema=three))
    for i, (tid, text) in enumerate(POOL[:6]):
        client.post("/webhook", json=annotation_event(i + 1, tid, text, ["pos", "neg", "meh"][i % 3]))
    client.post("/webhook", json=annotation_event(99, 7, POOL[6][1], "meh"))
    worker()
    assert sorted(store.version_meta(store.current_version())["controls"]["sentiment"]["label_counts"]) == [
        "meh", "neg", "pos"]
    body = payload("webhook_project_updated")
    body["project"]["label_config"] = payload("setup")["schema"]  # "meh" removed
    client.post("/webhook", json=body)
    worker()
    meta = store.version_meta(store.current_version())
    assert sorted(meta["controls"]["sentiment"]["label_counts"]) == ["neg", "pos"]
    preds = client.post("/predict", json=predict_body(POOL[:3])).json()["results"]
    assert all(p["result"][0]["value"]["choices"][0] in ("pos", "neg") for p in preds)


def test_multiple_choice_and_several_controls(client, store, worker):
    schema = (
        '<View><Text name="text" value="$text"/><Text name="title" value="$title"/>'
        '<Choices name="topic" toName="text" choice="multiple"><Choice value="sports"/><Choice value="politics"/></Choices>'
        '<Choices name="tone" toName="title"><Choice value="calm"/><Choice value="angry"/></Choices></View>'
    )
    client.post("/setup", json=setup_body(schema=schema))
    rows = [
        (1, "goal match team", "quiet day", ["sports"], "calm"),
        (2, "vote election parliament", "FURIOUS!!!", ["politics"], "angry"),
        (3, "team goal vote", "so angry", ["sports", "politics"], "angry"),
        (4, "match team", "calm and quiet", ["sports"], "calm"),
    ]
    for tid, text, title, topics, tone in rows:
        body = annotation_event(tid, tid, text, topics, from_name="topic")
        body["task"]["data"] = {"text": text, "title": title}
        body["annotation"]["result"].append(
            {"from_name": "tone", "to_name": "title", "type": "choices", "value": {"choices": [tone]}})
        client.post("/webhook", json=body)
    worker()
    meta = store.version_meta(store.current_version())
    assert set(meta["controls"]) == {"topic", "tone"} and meta["kind"] == "model"
    body = predict_body([(10, "goal team match")], label_config=schema)
    body["tasks"][0]["data"] = {"text": "goal team match", "title": "quiet calm"}
    (pred,) = client.post("/predict", json=body).json()["results"]
    by_control = {item["from_name"]: item for item in pred["result"]}
    assert "sports" in by_control["topic"]["value"]["choices"]
    assert by_control["tone"]["value"]["choices"] == ["calm"]
    assert by_control["tone"]["to_name"] == "title"


def test_majority_vote_over_annotators(client, store, worker):
    client.post("/setup", json=setup_body())
    text = "an ambiguous film"
    client.post("/webhook", json=annotation_event(1, 1, text, "pos"))
    client.post("/webhook", json=annotation_event(2, 1, text, "neg"))
    client.post("/webhook", json=annotation_event(3, 1, text, "neg"))
    client.post("/webhook", json=annotation_event(4, 2, "clearly great", "pos"))
    client.post("/webhook", json=annotation_event(5, 3, "a tie", "pos", updated_at="2026-11-24T01:00:00.000000Z"))
    client.post("/webhook", json=annotation_event(6, 3, "a tie", "neg", updated_at="2026-11-24T03:00:00.000000Z"))
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["controls"]["sentiment"]["label_counts"] == {"neg": 2, "pos": 1}
    assert meta["ties"] == 1 and meta["annotations_used"] == 6


@pytest.mark.parametrize("n_labels", [1000])
def test_learns_real_text(client, store, worker, n_labels):
    """On real movie-review snippets, predictions clearly beat the majority class (57.8%)."""
    ds = load_dataset("rotten-tomatoes")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(ds.texts))[: n_labels + 500]
    schema = payload("setup")["schema"].replace('"pos"', '"fresh"').replace('"neg"', '"rotten"')
    client.post("/setup", json=setup_body(schema=schema))
    for k, i in enumerate(idx[:n_labels]):
        client.post("/webhook", json=annotation_event(k + 1, int(i) + 1, ds.texts[i], ds.labels[i]))
    worker()
    test = idx[n_labels:]
    body = predict_body([(int(i) + 1, ds.texts[i]) for i in test], label_config=schema)
    preds = client.post("/predict", json=body).json()["results"]
    got = [p["result"][0]["value"]["choices"][0] for p in preds]
    accuracy = np.mean([g == ds.labels[i] for g, i in zip(got, test)])
    assert accuracy > 0.63, accuracy
    # The low-priority evaluation job added a cross-validated estimate close to it.
    control = store.version_meta(store.current_version())["controls"]["sentiment"]
    assert control["cv_labels"] == n_labels and abs(control["cv_accuracy"] - accuracy) < 0.08


def test_new_tasks_rerank_without_retraining(client, store, worker):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=annotation_event(1, 1, POOL[0][1], "pos"))
    client.post("/webhook", json=annotation_event(2, 4, POOL[3][1], "neg"))
    worker()
    trained = store.current_version()
    client.post("/webhook", json=tasks_created(POOL[4:]))
    worker()
    reranked = store.current_version()
    meta = store.version_meta(reranked)
    assert reranked != trained and meta["trained_in"] == trained and meta["ranked"] == 3
    assert meta["controls"] == store.version_meta(trained)["controls"]


def test_job_without_changes_skips_before_loading(client, store, settings):
    from worker.refresh import build_version

    client.post("/setup", json=setup_body())
    client.post("/webhook", json=tasks_created(POOL))
    assert build_version(store, settings)["published"] is True
    # No change since: the epochs match, nothing is loaded or published.
    store.r.delete(store.key("tasks"))  # would change the pool if it were read
    assert build_version(store, settings) == {
        "published": False, "reason": "nothing changed", "version": store.current_version()}


def test_train_every_n_labels(client, store, worker):
    body = setup_body()
    body["extra_params"] = {"train_every": 3}
    client.post("/setup", json=body)
    client.post("/webhook", json=annotation_event(1, 1, POOL[0][1], "pos"))
    client.post("/webhook", json=annotation_event(2, 4, POOL[3][1], "neg"))
    worker()
    first = store.current_version()
    assert store.version_meta(first)["trained_in"] == first  # the first model is trained at once
    client.post("/webhook", json=annotation_event(3, 2, POOL[1][1], "pos"))
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["trained_in"] == first and meta["labeled_tasks"] == 3  # re-ranked, not retrained
    client.post("/webhook", json=annotation_event(4, 5, POOL[4][1], "neg"))
    client.post("/webhook", json=annotation_event(5, 3, POOL[2][1], "pos"))
    worker()
    latest = store.current_version()
    assert store.version_meta(latest)["trained_in"] == latest  # 3 changes: retrained
    assert store.version_meta(latest)["controls"]["sentiment"]["labeled"] == 5


def test_status_lists_jobs_with_timings(client, worker, monkeypatch):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=annotation_event(1, 1, POOL[0][1], "pos"))
    status = client.get("/status/1").json()
    (queued,) = status["jobs"]["queued"]
    assert queued["job"] == "refresh_project" and queued["status"] == "queued"
    worker()
    status = client.get("/status/1").json()
    (done,) = status["jobs"]["finished"]
    assert done["duration_s"] > 0 and done["started_at"] and done["ended_at"]
    assert status["jobs"]["queued"] == [] and status["annotations"] == 1

    def boom(*args, **kwargs):
        raise RuntimeError("simulated")

    monkeypatch.setattr("worker.jobs.build_version", boom)
    client.post("/webhook", json=annotation_event(2, 4, POOL[3][1], "neg"))
    worker()
    (failed,) = client.get("/status/1").json()["jobs"]["failed"]
    assert failed["error"] == "RuntimeError: simulated"


def test_cold_start_places_unranked_tasks_live(client, store, worker):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=tasks_created(POOL))
    worker()
    ranked = POOL[:2]
    new = [(100, "a wonderful moving story with great acting"), (101, "zzzz qqqq xxxx yyyy")]
    preds = client.post("/predict", json=predict_body(ranked + new)).json()["results"]
    scores = [p["score"] for p in preds]
    assert scores[:2] == [round(v, 6) for v in store.ranking_scores(store.current_version(), [1, 2])]
    assert all(p["result"] == [] for p in preds)
    assert 0.0 <= scores[2] < scores[3] <= 1.0  # the typical new task ahead of the gibberish one


def _many_tasks(n: int, start: int = 1000) -> list[tuple[int, str]]:
    texts = load_dataset("rotten-tomatoes").texts
    return [(start + i, texts[i]) for i in range(n)]


@pytest.mark.parametrize("share", [0.0, 0.2])
def test_control_share_is_recorded_with_the_version(client, store, worker, share):
    body = setup_body()
    body["extra_params"] = {"control_share": share}
    client.post("/setup", json=body)
    pool = _many_tasks(60)
    client.post("/webhook", json=tasks_created(pool))
    worker()
    name = store.current_version()
    control = store.random_pick_tasks(name)
    assert len(control) == int(60 * share) and store.version_meta(name)["control_tasks"] == len(control)
    assert control <= {tid for tid, _ in pool}
    if control:  # spread through the queue: one in every five places is a random task
        ranking = store.ranking(name)
        head = sorted(ranking, key=ranking.get)[:30]
        assert sum(t in control for t in head) == 6


def test_train_interval_retrains_after_a_quiet_period(client, store, worker, settings, redis_conn):
    import time

    from worker.refresh import training_overdue
    from worker.schedule import tick

    body = setup_body()
    body["extra_params"] = {"train_every": 100, "train_interval": 60}
    client.post("/setup", json=body)
    client.post("/webhook", json=annotation_event(1, 1, POOL[0][1], "pos"))
    client.post("/webhook", json=annotation_event(2, 4, POOL[3][1], "neg"))
    worker()
    first = store.current_version()
    client.post("/webhook", json=annotation_event(3, 2, POOL[1][1], "pos"))
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["trained_in"] == first  # one new label of 100: re-ranked only
    assert not training_overdue(meta, 60, now=time.time())
    later = meta["trained_at_ts"] + 61
    assert training_overdue(meta, 60, now=later)
    redis_conn.delete(f"{settings.key_prefix}:scheduler_tick")
    assert tick(redis_conn, settings, now=later) == [(1, "train interval")]
    # The job runs "now", so let the model look older than the interval.
    store.update_version_meta(store.current_version(), trained_at_ts=meta["trained_at_ts"] - 61)
    worker()
    latest = store.current_version()
    assert store.version_meta(latest)["trained_in"] == latest
    assert store.version_meta(latest)["controls"]["sentiment"]["labeled"] == 3
    assert not training_overdue(store.version_meta(latest), 60, now=later)


def test_prune_frees_old_versions_but_keeps_their_history(client, store, worker):
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=tasks_created(POOL))
    worker()
    names = [store.current_version()]
    for ann, (tid, text) in enumerate(POOL[:3], start=1):
        client.post("/webhook", json=annotation_event(ann, tid, text, "pos" if tid < 4 else "neg"))
        client.post("/webhook", json=annotation_event(10 + ann, tid + 3, POOL[tid + 2][1], "neg"))
        worker()  # the prune job runs after each publish
        names.append(store.current_version())
    assert len(set(names)) == 4
    current = names[-1]
    for old in names[:-1]:
        assert store.version_meta(old) is not None  # history stays
        assert store.artifacts(old) == {} and store.ranking(old) == {}
    assert store.artifacts(current) and store.ranking(current)
    assert len(client.get("/versions").json()["versions"]) == 4


def test_the_scheduled_reconcile_is_a_low_priority_job_that_never_holds_a_refresh(
        client, store, worker, redis_conn, settings, monkeypatch):
    """Reading every labeled task (20 s at 5,000 labels) runs beside refreshes, not inside one."""
    import time

    from backend.settings import get_settings
    from backend.state.queueing import job_queue, pending_key
    from tests.conftest import QUEUE
    from worker.schedule import tick

    client.post("/setup", json=setup_body())
    client.post("/webhook", json=annotation_event(1, 1, POOL[0][1], "pos"))
    client.post("/webhook", json=annotation_event(2, 4, POOL[3][1], "neg"))
    worker()
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens: the reconcile fails
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "test-key")
    get_settings.cache_clear()
    now = time.time()
    assert tick(redis_conn, get_settings(), now=now) == [(1, "sync")]
    low, main = job_queue(QUEUE + "-low", redis_conn), job_queue(QUEUE, redis_conn)
    assert [j.split("-")[0] for j in low.get_job_ids()] == ["reconcile"] and main.count == 0
    worker()
    status = store.status()
    assert "sync" in status["last_error"] and status["last_sync_failed_at"] >= now
    assert any(j.startswith("reconcile-") for j in low.finished_job_registry.get_job_ids()) and main.count == 0
    # A failed reconcile is retried after the interval, not at every tick.
    redis_conn.delete(f"{settings.key_prefix}:scheduler_tick")
    assert (1, "sync") not in tick(redis_conn, get_settings(), now=time.time())  # (a push retry is due)
    redis_conn.delete(pending_key(settings.key_prefix, 1))
    redis_conn.delete(f"{settings.key_prefix}:scheduler_tick")
    later = status["last_sync_failed_at"] + get_settings().reconcile_interval + 1
    assert tick(redis_conn, get_settings(), now=later) == [(1, "sync")]
