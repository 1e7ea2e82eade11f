"""A worker killed (SIGKILL) in the middle of a training, then restarted: the
last good version keeps serving, and the restarted worker catches up."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import psutil
from rq import Queue

from backend.simulation.datasets import load_dataset
from backend.state.versions import load_version
from tests.conftest import PREFIX, QUEUE, TEST_REDIS_URL, annotation_event, setup_body, tasks_created


def spawn_worker(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AL_", "LABEL_STUDIO"))}
    env.update(REDIS_URL=TEST_REDIS_URL, AL_KEY_PREFIX=PREFIX, AL_QUEUE=QUEUE, AL_LOCK_TTL="3", AL_WORKER_NICE="0")
    log = open(tmp_path / "worker.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def test_worker_killed_mid_training_recovers(client, store, tmp_path):
    ds = load_dataset("crowdflower-tweets")
    order = np.random.default_rng(0).permutation(len(ds.texts))  # the file is sorted by label
    texts, labels = [ds.texts[i] for i in order], [ds.labels[i] for i in order]
    client.post("/setup", json=setup_body(schema=(
        '<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
        '<Choice value="negative"/><Choice value="neutral"/><Choice value="positive"/></Choices></View>')))
    for start in range(0, 20_000, 2_000):
        client.post("/webhook", json=tasks_created([(i, texts[i]) for i in range(start, start + 2_000)]))
    for i in range(300):
        client.post("/webhook", json=annotation_event(i + 1, i, texts[i], labels[i]))
    worker = spawn_worker(tmp_path)
    try:
        wait_for(store.current_version, 120, "a first version")
        # More labels: the next training starts; kill the worker (and its work horse) inside it.
        for i in range(300, 1_500):
            client.post("/webhook", json=annotation_event(i + 1, i, texts[i], labels[i]))
        wait_for(lambda: store.status().get("stage") == "train" and store.r.exists(store.key("lock")), 60,
                 "the training to start")
        serving = store.current_version()
        proc = psutil.Process(worker.pid)
        for p in proc.children(recursive=True) + [proc]:
            p.kill()
        worker.wait(10)
        # A complete earlier version still serves (the killed one was never published).
        current = store.current_version()
        assert current == serving and store.version_meta(current)["labeled_tasks"] < 1_500
        assert load_version(store, current) is not None
        assert client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": "great"}}],
                                             "project": "1.0"}).json()["results"][0]["model_version"] == current
        worker = spawn_worker(tmp_path)
        latest = wait_for(
            lambda: (v := store.current_version()) != current and store.version_meta(v)["labeled_tasks"] == 1_500 and v,
            120, "the restarted worker to catch up")
        assert store.version_meta(latest)["kind"] == "model"
    finally:
        worker.kill()
        worker.wait(10)


def test_a_pending_flag_without_its_job_is_cleared(client, store, redis_conn, settings):
    """A job lost as it started (Redis restarted) must not leave the loop coalescing into nothing."""
    from backend.state.queueing import PENDING_TTL, pending_key
    from worker.schedule import ORPHAN_AFTER, clear_orphaned_pending

    client.post("/setup", json=setup_body())
    Queue(settings.queue_name, connection=redis_conn).empty()  # the job /setup asked for: lost
    key = pending_key(store.prefix, store.pid)
    redis_conn.set(key, "lost", ex=PENDING_TTL)
    assert not clear_orphaned_pending(store, settings.queue_name)  # too young to tell
    redis_conn.expire(key, int(PENDING_TTL - ORPHAN_AFTER - 5))
    client.post("/webhook", json=annotation_event(1, 10, "good", "pos"))  # coalesced into the lost job
    assert not Queue(settings.queue_name, connection=redis_conn).get_job_ids()
    assert clear_orphaned_pending(store, settings.queue_name)
    client.post("/webhook", json=annotation_event(2, 11, "bad", "neg"))
    assert len(Queue(settings.queue_name, connection=redis_conn).get_job_ids()) == 1
    assert not clear_orphaned_pending(store, settings.queue_name)  # now its job is queued
