"""The ``class_weight`` project option, through /setup, the real worker and the stored model."""

from __future__ import annotations

from backend.state.versions import load_version
from tests.conftest import annotation_event, setup_body, tasks_created

POOL = [(1, "wonderful acting"), (2, "a wonderful story"), (3, "awful plot"), (4, "boring and awful"), (5, "fine")]


def _setup(client, **extra) -> int:
    body = setup_body()
    body["extra_params"] = extra
    return client.post("/setup", json=body).status_code


def _project(client, worker, **extra) -> None:
    assert _setup(client, **extra) == 200
    client.post("/webhook", json=tasks_created(POOL))
    for i, (tid, label) in enumerate([(1, "pos"), (2, "pos"), (3, "neg")]):
        client.post("/webhook", json=annotation_event(i + 1, tid, dict(POOL)[tid], label))
    worker()


def _served_weight(store):
    version = load_version(store, store.current_version())
    return version.models["sentiment"].class_weight


def test_single_choice_defaults_to_balanced_and_none_turns_it_off(client, store, worker):
    _project(client, worker)
    assert _served_weight(store) == "balanced"
    assert store.version_meta(store.current_version())["model_params"] == {}
    first = store.current_version()
    assert _setup(client, class_weight="none") == 200  # same labels: retrained all the same
    worker()
    meta = store.version_meta(store.current_version())
    assert store.current_version() != first and meta["trained_in"] == meta["version"]
    assert meta["model_params"] == {"class_weight": None} and _served_weight(store) is None


def test_balanced_is_set_on_multiple_choice_too(client, store, worker):
    schema = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text" choice="multiple">'
              '<Choice value="pos"/><Choice value="neg"/></Choices></View>')
    body = setup_body(schema=schema)
    body["extra_params"] = {"class_weight": "balanced"}
    assert client.post("/setup", json=body).status_code == 200
    client.post("/webhook", json=tasks_created(POOL))
    for i, (tid, label) in enumerate([(1, ["pos"]), (2, ["pos"]), (3, ["neg"])]):
        client.post("/webhook", json=annotation_event(i + 1, tid, dict(POOL)[tid], label))
    worker()
    model = load_version(store, store.current_version()).models["sentiment"]
    assert model.multiple and model.class_weight == "balanced"


def test_an_unknown_class_weight_is_refused_at_setup(client):
    body = setup_body()
    body["extra_params"] = {"class_weight": "equal"}
    r = client.post("/setup", json=body)
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "class_weight" in detail and "'default', 'balanced' or 'none'" in detail
