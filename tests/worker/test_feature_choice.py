"""``features: "auto"`` through /setup, the real worker (refresh and evaluate jobs), Redis and the dashboard."""

from __future__ import annotations

from backend.learning import auto_features, featurizers
from backend.learning.auto_features import Choice
from backend.simulation.datasets import load_dataset
from backend.state.progress import ProgressStore
from tests.conftest import annotation_event, setup_body, tasks_created

N_TASKS, N_LABELED = 150, 60
DIGITS = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
          + "".join(f'<Choice value="{d}"/>' for d in range(10)) + "</Choices></View>")


def _digits_project(client, *, labeled: int = N_LABELED, **extra) -> None:
    """8x8 digits as pixel tokens: text an embedding cannot read, so the comparison has a clear answer."""
    ds = load_dataset("digits")
    body = setup_body(schema=DIGITS)
    body["extra_params"] = extra
    assert client.post("/setup", json=body).status_code == 200
    client.post("/webhook", json=tasks_created([(i + 1, ds.texts[i]) for i in range(N_TASKS)]))
    for i in range(labeled):
        client.post("/webhook", json=annotation_event(i + 1, i + 1, ds.texts[i], ds.labels[i]))


def test_auto_moves_a_project_off_a_representation_its_labels_do_not_support(client, store, worker):
    # As if an earlier comparison, at 40 labels, had picked embeddings: with 60 labels one is due again.
    stale = Choice(chosen="embeddings", previous="ngrams", labels=40, accuracy={"embeddings": 0.5}, reason="earlier")
    ProgressStore(store).set_feature_choice(stale)
    _digits_project(client, features="auto")
    worker()
    versions = store.versions()
    trained = [v for v in versions if v.meta.get("kind") == "model"]
    # The first trained version used the stored choice, and says so.
    first = trained[0].meta
    assert first["feature_spec"]["featurizer"] == "embeddings" and first["features_option"] == "auto"
    assert first["feature_choice"]["labels"] == 40
    # The evaluate job compared all three on the 60 labels, switched, and the refresh it asked for retrained.
    choice = ProgressStore(store).feature_choice()
    assert choice is not None and choice.labels == N_LABELED and choice.previous == "embeddings"
    assert choice.chosen in ("ngrams", "concat") and set(choice.accuracy) == set(auto_features.candidates())
    assert choice.accuracy["embeddings"] < 0.5 < choice.accuracy[choice.chosen]
    last = store.version_meta(store.current_version())
    assert featurizers.from_dict(last["feature_spec"]) == featurizers.get(choice.chosen)
    assert last["trained_in"] == last["version"]  # a new fit, not the embedding models
    assert last["feature_choice"]["chosen"] == choice.chosen
    # The version's progress record and the project's summary carry the choice too.
    summary = ProgressStore(store).summary()
    assert summary.features == choice.chosen and summary.feature_choice.chosen == choice.chosen
    assert store.version_meta(trained[0].name)["progress"]["feature_choice"]["chosen"] == choice.chosen


def test_the_dashboard_shows_the_representation_and_why(client, store, worker):
    _digits_project(client, features="auto")
    worker()
    choice = ProgressStore(store).feature_choice()
    assert choice is not None and choice.chosen in ("ngrams", "concat")
    page = client.get("/dashboard/1").text
    assert "representation" in page and "features: auto" in page
    assert f"compared by cross-validation on {N_LABELED} labels" in page
    assert f"embeddings {round(100 * choice.accuracy['embeddings'])}%" in page


def test_before_enough_labels_auto_trains_on_the_default_and_compares_nothing(client, store, worker):
    _digits_project(client, labeled=auto_features.MIN_LABELS - 5, features="auto")
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "model" and meta["feature_spec"]["featurizer"] == featurizers.DEFAULT
    assert ProgressStore(store).feature_choice() is None
    assert "representation" in client.get("/dashboard/1").text


def test_a_project_that_names_its_features_is_never_compared(client, store, worker):
    _digits_project(client, features="embeddings")
    worker()
    assert ProgressStore(store).feature_choice() is None
    summary = ProgressStore(store).summary()
    assert summary.features == "embeddings" and summary.feature_choice is None


def test_a_stored_choice_that_does_not_fit_trains_on_the_default(client, store, worker, redis_conn):
    progress = ProgressStore(store)
    redis_conn.set(progress._key("feature_choice"), b'{"chosen": "__import__(\'os\')", "labels": 10}')
    _digits_project(client, labeled=auto_features.MIN_LABELS - 5, features="auto")
    worker()
    meta = store.version_meta(store.current_version())
    assert meta["kind"] == "model" and meta["feature_spec"]["featurizer"] == featurizers.DEFAULT
    redis_conn.set(progress._key("feature_choice"), b"\x80not json")
    assert progress.feature_choice() is None


def test_auto_is_accepted_at_setup_and_a_typo_is_refused(client):
    body = setup_body()
    body["extra_params"] = {"features": "auto"}
    assert client.post("/setup", json=body).status_code == 200
    body["extra_params"] = {"features": "autoo"}
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "unknown featurizer 'autoo'" in r.json()["detail"]
