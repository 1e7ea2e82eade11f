"""A project's featurizer, end to end through /setup, the worker and /predict (real Redis and RQ)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.labelstudio.label_config import parse_label_config
from backend.learning import featurizers
from backend.learning.featurizers import embeddings as emb
from backend.learning.model import ChoicesClassifier
from backend.simulation.datasets import load_dataset
from tests.conftest import LABEL_CONFIG, QUEUE, annotation_event, predict_body, setup_body, tasks_created
from worker import shards
from worker.pool_features import control_features

POOL = [
    (1, "the acting was wonderful and the story moving"),
    (2, "a wonderful, moving story with great acting"),
    (3, "great acting and a wonderful story"),
    (4, "boring plot and awful acting"),
    (5, "an awful, boring plot"),
    (6, "boring and awful from start to end"),
    (7, "zzzz qqqq xxxx"),
]


def _setup(client, **extra) -> None:
    body = setup_body()
    body["extra_params"] = extra
    assert client.post("/setup", json=body).status_code == 200


def _label_two(client) -> None:
    client.post("/webhook", json=tasks_created(POOL))
    client.post("/webhook", json=annotation_event(1, 1, POOL[0][1], "pos"))
    client.post("/webhook", json=annotation_event(2, 4, POOL[3][1], "neg"))


def _choices(client) -> list[str]:
    preds = client.post("/predict", json=predict_body(POOL[1:3] + POOL[4:6])).json()["results"]
    return [p["result"][0]["value"]["choices"][0] for p in preds]


@pytest.mark.parametrize("name", ["embeddings", "concat"])
def test_a_project_learns_and_serves_on_its_featurizer(client, store, worker, redis_conn, name):
    _setup(client, features=name)
    _label_two(client)
    assert worker() >= 1
    version = store.current_version()
    meta = store.version_meta(version)
    assert meta["kind"] == "model" and featurizers.from_dict(meta["feature_spec"]) == featurizers.get(name)
    assert _choices(client) == ["pos", "pos", "neg", "neg"]
    # The pool's rows are cached under this featurizer's key only.
    key = featurizers.get(name).key
    cached = redis_conn.keys(store.key("features:*"))
    assert cached == [store.key(f"features:{key}:sentiment").encode()]
    if name == "embeddings":
        row = redis_conn.hget(cached[0], 2)
        assert len(row) == 256 * 4  # one dense float32 row


def test_switching_featurizer_retrains_and_never_mixes_cached_rows(client, store, worker, redis_conn):
    _setup(client)  # the default: hashed n-grams, as before featurizers had names
    _label_two(client)
    worker()
    first = store.current_version()
    assert store.version_meta(first)["feature_spec"]["featurizer"] == "ngrams"
    _setup(client, features="embeddings")  # /setup queues a refresh
    worker()
    second = store.current_version()
    meta = store.version_meta(second)
    assert second != first and meta["feature_spec"]["featurizer"] == "embeddings"
    assert meta["trained_in"] == second  # retrained, not the n-gram models on embedding rows
    keys = {k.decode().rsplit(":", 2)[-2] for k in redis_conn.keys(store.key("features:*"))}
    assert keys == {featurizers.get("ngrams").key, featurizers.get("embeddings").key}
    assert _choices(client) == ["pos", "pos", "neg", "neg"]


def test_a_version_stored_before_featurizers_had_names_still_serves(client, store, worker):
    _setup(client)
    _label_two(client)
    worker()
    version = store.current_version()
    # What versions published before featurizers had names hold: the n-gram spec alone.
    legacy = {k: v for k, v in store.version_meta(version)["feature_spec"].items() if k != "featurizer"}
    store.update_version_meta(version, feature_spec=legacy)
    assert _choices(client) == ["pos", "pos", "neg", "neg"]
    client.post("/webhook", json=tasks_created(POOL[:1]))
    worker()  # the worker reads it as the same featurizer: nothing to retrain, nothing to re-rank
    assert store.current_version() == version


def test_unknown_or_unavailable_featurizer_is_refused_at_setup(client, monkeypatch):
    body = setup_body()
    body["extra_params"] = {"features": "bert"}
    r = client.post("/setup", json=body)
    assert r.status_code == 400
    assert "unknown featurizer 'bert'; known: ngrams, embeddings, concat" in r.json()["detail"]
    monkeypatch.setattr(emb, "PACKAGE", "no_such_package_here")
    body["extra_params"] = {"features": "embeddings"}
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "pip install 'label-studio-active-learning[embeddings]'" in r.json()["detail"]


def test_shards_of_dense_rows_give_the_arrays_of_one_process(store, settings):
    """A pool scored in shards (the path of very large pools) works on embedding rows alike."""
    n = 330
    ds = load_dataset("rotten-tomatoes")
    store.add_tasks((i + 1, {"text": ds.texts[i]}) for i in range(n))
    config = parse_label_config(LABEL_CONFIG)
    spec = featurizers.get("embeddings")
    ids = list(range(1, n + 1))
    kept, X, _ = control_features(store, spec, config.controls[0], ids, settings.max_text_chars)
    assert isinstance(X, np.ndarray) and X.shape == (n, 256)
    name = config.controls[0].name
    models = {name: ChoicesClassifier().fit(X[:200], [ds.labels[i - 1] for i in kept[:200]])}
    scored = shards.score_pool(store, spec, config, models, ids, max_chars=settings.max_text_chars,
                               queue_name=QUEUE, rng=np.random.default_rng(0), shard_size=100)
    assert scored.shards == 4 and scored.ids == ids
    np.testing.assert_allclose(scored.probas[name], models[name].predict_proba(X), rtol=1e-5, atol=1e-6)
    assert scored.Z.shape == (n, 32)
    np.testing.assert_allclose(np.linalg.norm(scored.Z, axis=1), 1.0, rtol=1e-5)
