"""Scoring a large pool in shards: same arrays as one process, helpers share the work, lost shards redone."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from backend.labelstudio.label_config import parse_label_config
from backend.learning.featurizers.ngrams import NgramFeaturizer
from backend.learning.model import ChoicesClassifier
from backend.simulation.datasets import load_dataset
from backend.state.queueing import job_queue
from harness.jobs import run_burst
from tests.conftest import LABEL_CONFIG, QUEUE
from worker import shards
from worker.pool_features import control_features

N = 430


@pytest.fixture
def project(store, settings):
    ds = load_dataset("rotten-tomatoes")
    store.add_tasks((i + 1, {"text": ds.texts[i]}) for i in range(N))
    config = parse_label_config(LABEL_CONFIG)
    spec = NgramFeaturizer()
    ids = list(range(1, N + 1))
    kept, X, _ = control_features(store, spec, config.controls[0], ids[:200], settings.max_text_chars)
    model = ChoicesClassifier().fit(X, [ds.labels[i - 1] for i in kept])
    return config, spec, {config.controls[0].name: model}, ids


def _score(store, settings, project, **kwargs):
    config, spec, models, ids = project
    return shards.score_pool(store, spec, config, models, ids, max_chars=settings.max_text_chars,
                             queue_name=QUEUE, rng=np.random.default_rng(0), shard_size=100, **kwargs)


def test_shards_give_the_arrays_of_one_process(store, settings, project, redis_conn):
    config, spec, models, ids = project
    scored = _score(store, settings, project)
    assert scored.shards == 5 and scored.ids == ids and scored.unreadable == 0
    _, X, _ = control_features(store, spec, config.controls[0], ids, settings.max_text_chars)
    name = config.controls[0].name
    np.testing.assert_allclose(scored.probas[name], models[name].predict_proba(X), rtol=1e-5, atol=1e-6)
    assert scored.Z.shape == (N, 32)
    np.testing.assert_allclose(np.linalg.norm(scored.Z, axis=1), 1.0, rtol=1e-5)
    # Same shared geometry, whichever shard a row fell into.
    geometry = shards.fit_geometry(X[:1], np.random.default_rng(0))
    assert geometry["components"].shape[0] == 0  # one row: nothing to fit, a defined result
    assert not redis_conn.keys(store.key("shards:*"))  # the work list is cleaned up
    helpers = job_queue(QUEUE, redis_conn).jobs
    assert len(helpers) == 4 and all(j.func_name == "worker.jobs.help_score_shards" for j in helpers)


def test_idle_workers_take_shards(store, settings, project, redis_conn, monkeypatch):
    real = shards.score_shard
    coordinator: list[threading.Thread] = []

    def slow_when_coordinating(*args, **kwargs):  # the refresh is busy: the helpers catch up
        if coordinator and threading.current_thread() is coordinator[0]:
            time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(shards, "score_shard", slow_when_coordinating)
    result = {}
    t = threading.Thread(target=lambda: result.update(scored=_score(store, settings, project)))
    coordinator.append(t)
    t.start()
    q = job_queue(QUEUE, redis_conn)
    while t.is_alive():  # an RQ worker in this (main) thread, as `al-backend worker` runs it
        run_burst([q], redis_conn)
        time.sleep(0.01)
    t.join()
    scored = result["scored"]
    assert scored.ids == project[3] and scored.shards == 5
    assert 1 <= scored.by_helpers <= 4  # another worker scored some shards, the refresh the rest


def test_a_shard_lost_with_its_helper_is_redone(store, settings, project, redis_conn):
    stolen = []

    def dead_helper():  # pops a shard and dies without writing it
        deadline = time.time() + 10
        while time.time() < deadline and not stolen:
            for key in redis_conn.scan_iter(store.key("shards:*:todo")):
                item = redis_conn.lpop(key)
                if item is not None:
                    stolen.append(int(item))
                    return
            time.sleep(0.001)

    t = threading.Thread(target=dead_helper)
    t.start()
    scored = _score(store, settings, project, timeout=1.0)
    t.join()
    assert stolen and scored.ids == project[3] and scored.by_helpers == 0


def test_a_refresh_above_the_threshold_ranks_from_shards(client, store, worker, monkeypatch):
    from backend.settings import get_settings
    from tests.conftest import annotation_event, setup_body, tasks_created

    monkeypatch.setenv("AL_SHARD_THRESHOLD", "100")
    monkeypatch.setattr(shards, "SHARD_SIZE", 100)
    get_settings.cache_clear()
    ds = load_dataset("rotten-tomatoes")
    client.post("/setup", json=setup_body())
    client.post("/webhook", json=tasks_created([(i + 1, ds.texts[i]) for i in range(N)]))
    worker()
    cold = store.version_meta(store.current_version())
    assert cold["kind"] == "cold-start" and cold["shards"] == 5 and cold["ranked"] == N
    first = {label: [i for i in range(N) if ds.labels[i] == label][:10] for label in set(ds.labels[:N])}
    labeled = sorted(i for ids in first.values() for i in ids)
    for i in labeled:
        answer = "pos" if ds.labels[i] == "fresh" else "neg"  # the captured config's choices
        client.post("/webhook", json=annotation_event(i + 1, i + 1, ds.texts[i], answer))
    worker()
    name = store.current_version()
    meta = store.version_meta(name)
    assert meta["kind"] == "model", meta
    assert meta["shards"] == 5 and meta["ranked"] == N - 20
    scores = store.ranking(name)
    assert sorted(scores) == sorted(set(range(1, N + 1)) - {i + 1 for i in labeled})  # every unlabeled task, once
    assert sorted(scores.values()) == [i / (N - 20) for i in range(N - 20)]
    assert len(store.random_pick_tasks(name)) == int((N - 20) * 0.1)
