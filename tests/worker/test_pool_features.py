"""The refresh process's resident copy of the feature cache (``worker/pool_features.py``)."""

from __future__ import annotations

from backend.labelstudio.label_config import parse_label_config
from backend.learning.featurizers.ngrams import NgramFeaturizer
from tests.conftest import LABEL_CONFIG
from worker import pool_features
from worker.pool_features import control_features

TEXTS = {1: "a wonderful film", 2: "an awful plot", 3: "", 4: "fine, average"}


def _features(store, ids):
    control = parse_label_config(LABEL_CONFIG).controls[0]
    return control_features(store, NgramFeaturizer(), control, ids, 10_000)


def test_resident_rows_equal_the_cache_and_follow_a_wiped_project(store, settings):
    store.add_tasks((tid, {"text": t}) for tid, t in TEXTS.items())
    ids, X, skipped = _features(store, [4, 1, 2, 3])
    assert ids == [4, 1, 2] and set(skipped) == {3}  # in the order asked; the empty text skipped
    expected = NgramFeaturizer().transform([TEXTS[t] for t in ids])
    assert (X != expected).nnz == 0
    assert len(pool_features._RESIDENT[(store.base, f"{NgramFeaturizer().key}:sentiment")].pos) == 3
    # Served from memory: gone from Redis, still the same rows.
    store.r.delete(store.key(f"features:{NgramFeaturizer().key}:sentiment"))
    again_ids, again, _ = _features(store, [1, 2])
    assert again_ids == [1, 2] and (again != expected[1:]).nnz == 0
    # The project recreated (every key wiped): the same task ids now hold other texts.
    store.wipe()
    store.add_tasks([(1, {"text": "completely different words"}), (2, {"text": "an awful plot"})])
    new_ids, new, _ = _features(store, [1, 2])
    assert new_ids == [1, 2]
    assert (new != NgramFeaturizer().transform(["completely different words", "an awful plot"])).nnz == 0


def test_resident_rows_stay_within_the_shard_threshold(store, settings, monkeypatch):
    monkeypatch.setattr(settings, "shard_threshold", 2)
    monkeypatch.setattr(pool_features, "get_settings", lambda: settings)
    pool_features._RESIDENT.clear()
    store.add_tasks((tid, {"text": t}) for tid, t in TEXTS.items())
    ids, X, _ = _features(store, [1, 2, 4])  # more than the cap: read from Redis, nothing kept
    assert ids == [1, 2, 4] and X.shape[0] == 3 and not pool_features._RESIDENT
    _features(store, [1, 2])
    assert sum(len(m.pos) for m in pool_features._RESIDENT.values()) == 2
    ids, X, _ = _features(store, [4])  # a third row: the copy starts over rather than grow past the cap
    assert ids == [4] and sum(len(m.pos) for m in pool_features._RESIDENT.values()) <= 2
