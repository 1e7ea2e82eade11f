"""A project's task features, from the worker's Redis cache where possible.

A task's features never change for a given featurizer (every featurizer is
deterministic per row), so each task is featurised once and its row kept in
Redis under the featurizer's key; a refresh reads rows in chunks and
featurises only the cache misses.  Another featurizer is another cache, so
switching a project's representation never mixes rows.
"""

from __future__ import annotations

import numpy as np

from backend.labelstudio.fetch import shared_fetcher
from backend.labelstudio.label_config import LabelConfig
from backend.labelstudio.task_data import TaskDataError, control_text
from backend.labelstudio.tasktypes import Control
from backend.learning.featurizers import Featurizer, Matrix, decode_rows, encode_rows, vstack
from backend.learning.model import ChoicesClassifier
from backend.settings import get_settings
from backend.state.store import ProjectStore

FEATURE_CHUNK = 50_000  # tasks read from the feature cache per Redis round trip


def control_features(
    store: ProjectStore,
    spec: Featurizer,
    control: Control,
    task_ids: list[int],
    max_chars: int,
) -> tuple[list[int], Matrix, dict[int, str]]:
    """Features of ``task_ids`` for one control, from the cache where possible.

    Returns the ids that have features, their rows, and a skip reason for the
    others.  Only the tasks missing from the cache are read and featurised
    (and written back).  Work goes in chunks so a million-task pool never
    holds more than one chunk of raw bytes beside the matrix.
    """
    cache_key = f"{spec.key}:{control.name}"
    fetch = None
    ids: list[int] = []
    parts: list[Matrix] = []
    skipped: dict[int, str] = {}
    for start in range(0, len(task_ids), FEATURE_CHUNK):
        chunk = task_ids[start:start + FEATURE_CHUNK]
        cached = store.cached_features(cache_key, chunk)
        missing = [tid for tid, raw in zip(chunk, cached) if raw is None]
        fresh: dict[int, bytes] = {}
        if missing:
            # Texts given as URLs are read like /predict reads them (the same safe fetcher).
            fetch = fetch or shared_fetcher(get_settings()).for_project(store.config)
            tasks = store.tasks_by_id(missing)
            todo, texts = [], []
            for tid in missing:
                try:
                    texts.append(control_text(tasks.get(tid), control, max_chars=max_chars, fetch=fetch))
                    todo.append(tid)
                except TaskDataError as exc:
                    skipped[tid] = str(exc)
            if todo:
                fresh = dict(zip(todo, encode_rows(spec.transform(texts))))
                store.cache_features(cache_key, fresh)
        rows, kept = [], []
        for tid, raw in zip(chunk, cached):
            raw = raw if raw is not None else fresh.get(tid)
            if raw is not None:
                rows.append(raw)
                kept.append(tid)
        ids.extend(kept)
        parts.append(decode_rows(rows, spec.n_features, sparse=spec.sparse))
        del cached, rows, fresh
    return ids, vstack(parts, spec.n_features, sparse=spec.sparse), skipped


def pool_probas(
    store: ProjectStore,
    spec: Featurizer,
    config: LabelConfig,
    models: dict[str, ChoicesClassifier],
    ids: list[int],
    X_geo: Matrix,
    max_chars: int,
) -> dict[str, np.ndarray]:
    """Probabilities of every trained control for the tasks ``ids`` (rows of ``X_geo``).

    The first control's features are the geometry already read; other
    controls read their own text, and a task unreadable for one of them
    gets 0.5 for each of its labels (no opinion).
    """
    probas = {}
    for control in config.controls:
        model = models.get(control.name)
        if model is None:
            continue
        if control is config.controls[0]:
            probas[control.name] = model.predict_proba(X_geo)
            continue
        c_ids, X_c, _ = control_features(store, spec, control, ids, max_chars)
        proba = np.full((len(ids), len(model.classes_)), 0.5)
        pos = {t: i for i, t in enumerate(ids)}
        proba[[pos[t] for t in c_ids]] = model.predict_proba(X_c)
        probas[control.name] = proba
    return probas
