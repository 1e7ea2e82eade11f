"""An image classification project end to end through /setup, the worker and /predict (real Redis and RQ).

Tasks carry Fashion-MNIST images as ``data:`` URIs (Label Studio accepts
them in task data), so no Label Studio is needed here; the real Label
Studio, with uploaded files and its UI, is driven in ``tests/e2e``.
"""

from __future__ import annotations

import base64
import io
import numpy as np
import pytest
from PIL import Image

from backend.learning import featurizers
from backend.simulation.datasets import load_fashion_mnist
from tests.conftest import annotation_event, predict_body, setup_body, tasks_created

CONFIG = ('<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
          '<Choice value="Trouser"/><Choice value="Bag"/><Choice value="Sneaker"/></Choices></View>')
KEY = "image"


def data_uri(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def shop() -> tuple[list[str], list[str]]:
    """60 real images of three classes, as data URIs, with their classes."""
    images, labels = load_fashion_mnist(limit=2000)
    keep = [i for i, lab in enumerate(labels) if lab in ("Trouser", "Bag", "Sneaker")][:60]
    return [data_uri(images[i]) for i in keep], [labels[i] for i in keep]


def _set_up(client, shop, **extra) -> None:
    body = setup_body(schema=CONFIG)
    body["extra_params"] = extra
    r = client.post("/setup", json=body)
    assert r.status_code == 200, r.text
    uris, _ = shop
    assert client.post("/webhook", json=tasks_created(list(enumerate(uris, start=1)), key=KEY)).status_code == 200


def _label(client, shop, n: int) -> None:
    uris, labels = shop
    for i in range(n):
        event = annotation_event(100 + i, i + 1, uris[i], labels[i], from_name="choice", key=KEY)
        assert client.post("/webhook", json=event).status_code == 200


def _predict(client, tasks: list[tuple[int, object]]) -> list[dict]:
    r = client.post("/predict", json=predict_body(tasks, key=KEY, label_config=CONFIG))
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_an_image_project_learns_from_its_pixels_and_serves_preannotations(client, store, worker, redis_conn, shop):
    _set_up(client, shop)
    _label(client, shop, 24)
    assert worker() >= 1
    meta = store.version_meta(store.current_version())
    spec = featurizers.from_dict(meta["feature_spec"])
    assert meta["kind"] == "model" and spec.name == featurizers.default_for("image") == "efficientnet"
    assert meta["unreadable_tasks"] == 0 and meta["ranked"] == 36
    uris, labels = shop
    results = _predict(client, list(enumerate(uris, start=1))[24:])
    got = [p["result"][0]["value"]["choices"][0] for p in results]
    assert np.mean([g == t for g, t in zip(got, labels[24:])]) >= 0.9  # three distinct kinds of clothing
    item = results[0]["result"][0]
    assert item["from_name"] == "choice" and item["to_name"] == "image" and item["type"] == "choices"
    assert 0 < item["score"] <= 1 and 0 <= results[0]["score"] <= 1
    # Every task was embedded once, into the cache of this featurizer and control.
    assert redis_conn.hlen(store.key(f"features:{spec.key}:choice")) == 60


def test_predict_reads_a_cached_embedding_instead_of_fetching_the_image(client, store, worker, shop):
    """The worker embedded task 30 already: /predict needs neither its image nor a fetch."""
    _set_up(client, shop)
    _label(client, shop, 24)
    worker()
    uris, labels = shop
    fresh = _predict(client, [(30, uris[29])])[0]
    # The same task id with a link nobody may fetch: the cached row still answers.
    cached = _predict(client, [(30, "https://unreachable.example/x.png")])[0]
    assert cached["result"] == fresh["result"] and cached["result"][0]["value"]["choices"] == [labels[29]]
    # A task the worker never saw with that link: a per-task skip, not an error.
    unknown = _predict(client, [(999, "https://unreachable.example/x.png")])[0]
    assert unknown["result"] == [] and unknown["score"] == 1.0
    # A task the worker never saw, readable: computed now, not cached (the backend does not know its data).
    new = _predict(client, [(998, uris[40])])[0]
    assert new["result"][0]["value"]["choices"] == [labels[40]]
    key = featurizers.from_dict(store.version_meta(store.current_version())["feature_spec"]).key
    assert store.cached_features(f"{key}:choice", [998]) == [None]


def test_predict_caches_a_new_tasks_row_only_for_the_tasks_own_image(client, store, worker, shop):
    """A task announced after the refresh: /predict embeds it for the worker, but only from its own image."""
    _set_up(client, shop)
    _label(client, shop, 24)
    worker()
    uris, labels = shop
    key = featurizers.from_dict(store.version_meta(store.current_version())["feature_spec"]).key
    assert client.post("/webhook", json=tasks_created([(61, uris[40]), (62, uris[41])], key=KEY)).status_code == 200
    # Another image sent under task 61's id: predicted, never cached as task 61's row.
    _predict(client, [(61, uris[0])])
    assert store.cached_features(f"{key}:choice", [61]) == [None]
    # Task 62 with its own image: cached, the very row the worker would compute.
    _predict(client, [(62, uris[41])])
    row = store.cached_features(f"{key}:choice", [62])[0]
    from backend.learning.featurizers import decode_rows, get

    expected = get("efficientnet").transform([load_image(uris[41])])
    np.testing.assert_allclose(decode_rows([row], expected.shape[1], sparse=False), expected, atol=1e-5)


def test_broken_images_are_skipped_per_task_and_counted(client, store, worker, shop):
    uris, _ = shop
    body = setup_body(schema=CONFIG)
    assert client.post("/setup", json=body).status_code == 200
    broken = [(1, "data:image/png;base64,bm90IGFuIGltYWdl"), (2, "data:text/plain,hello"), (3, 7)]
    assert client.post("/webhook", json=tasks_created(list(enumerate(uris[:10], start=10)) + broken,
                                                      key=KEY)).status_code == 200
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "cold-start" and meta["unreadable_tasks"] == 3 and meta["ranked"] == 10


def test_the_hog_fallback_serves_the_same_project(client, store, worker, shop):
    _set_up(client, shop, features="hog")
    _label(client, shop, 24)
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "model" and meta["feature_spec"]["featurizer"] == "hog"


def test_a_text_featurizer_on_an_image_project_is_refused_at_setup(client, store):
    body = setup_body(schema=CONFIG)
    body["extra_params"] = {"features": "ngrams"}
    r = client.post("/setup", json=body)
    assert r.status_code == 400
    assert "features 'ngrams' reads text, but the label config's controls read image" in r.text
    assert "efficientnet, hog" in r.text


def test_the_worker_reads_and_embeds_images_a_batch_at_a_time(client, store, shop):
    """Decoded images are large: a refresh holds ``Featurizer.batch`` of them at a time, and every row lands."""
    from dataclasses import dataclass

    from backend.labelstudio.label_config import parse_label_config
    from backend.learning.featurizers.hog import HogFeaturizer
    from worker.pool_features import control_features

    @dataclass(frozen=True)
    class SmallBatches(HogFeaturizer):
        batch = 7

    _set_up(client, shop)
    control = parse_label_config(CONFIG).controls[0]
    ids, X, skipped = control_features(store, SmallBatches(), control, list(range(1, 61)), 1000, resident=False)
    assert ids == list(range(1, 61)) and not skipped
    direct = HogFeaturizer().transform([load_image(u) for u in shop[0]])
    np.testing.assert_allclose(X, direct, atol=1e-6)


def load_image(uri: str) -> np.ndarray:
    from backend.labelstudio.task_images import image_array

    return image_array(uri, "image", None, max_bytes=2**20)
