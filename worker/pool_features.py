"""A project's task features, from the worker's Redis cache where possible.

Hashed features of a task never change for a given feature spec, so each
task is featurised once and its row kept in Redis; a refresh reads rows in
chunks and featurises only the cache misses.

The refresh process is long-lived (``worker/main.py``), so it also keeps the
rows it read in memory (``_Resident``): at a 100,000-task pool, reading and
decoding the cached rows from Redis took ~1 s of every refresh.  The copy
mirrors the Redis cache exactly (rows are only ever added there), and a
random token stored beside the Redis cache tells when that cache was wiped
(project recreated, Redis flushed), so the copy is never stale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from backend.config import get_settings
from backend.features import FeatureSpec, TextFeaturizer, decode_rows, encode_row
from backend.fetch import shared_fetcher
from backend.label_config import ChoicesControl, LabelConfig
from backend.model import ChoicesClassifier
from backend.store import ProjectStore
from backend.task_data import TaskDataError, control_text

FEATURE_CHUNK = 50_000  # tasks read from the feature cache per Redis round trip


@dataclass
class _Resident:
    """Rows of one project's feature cache (one spec and control) held by this process."""

    token: str
    pos: dict[int, int] = field(default_factory=dict)  # task id -> row of X
    X: sp.csr_matrix | None = None
    used: float = 0.0

    def add(self, ids: list[int], X: sp.csr_matrix) -> None:
        if not ids:
            return
        start = len(self.pos)
        self.pos.update((tid, start + i) for i, tid in enumerate(ids))
        self.X = X if self.X is None else sp.vstack([self.X, X], format="csr")

    def rows(self, ids: list[int]) -> sp.csr_matrix:
        return self.X[[self.pos[t] for t in ids]]


_RESIDENT: dict[tuple[str, str], _Resident] = {}


def _resident(store: ProjectStore, cache_key: str, task_ids: list[int]) -> tuple[_Resident | None, list[int]]:
    """This process's copy of a feature cache and the ``task_ids`` it lacks; ``None`` if they would not fit.

    At most ``AL_SHARD_THRESHOLD`` rows are kept over all projects (pools
    that large are scored in shards, by any worker), the least recently
    used copies going first.
    """
    cap = get_settings().shard_threshold
    if len(task_ids) > cap:
        return None, task_ids
    token = store.feature_cache_token(cache_key)
    key = (store.base, cache_key)
    memo = _RESIDENT.get(key)
    if memo is None or memo.token != token:
        memo = _RESIDENT[key] = _Resident(token)
    memo.used = time.monotonic()
    missing = [tid for tid in task_ids if tid not in memo.pos]
    for other in sorted(_RESIDENT, key=lambda k: _RESIDENT[k].used):
        if sum(len(m.pos) for m in _RESIDENT.values()) + len(missing) <= cap:
            break
        if other != key:
            del _RESIDENT[other]
    if len(memo.pos) + len(missing) > cap:  # start over with just what is asked
        memo = _RESIDENT[key] = _Resident(token, used=memo.used)
        missing = list(task_ids)
    return memo, missing


def control_features(
    store: ProjectStore,
    spec: FeatureSpec,
    control: ChoicesControl,
    task_ids: list[int],
    max_chars: int,
) -> tuple[list[int], sp.csr_matrix, dict[int, str]]:
    """Features of ``task_ids`` for one control, from memory or the cache where possible.

    Returns the ids that have features (in the order of ``task_ids``),
    their rows, and a skip reason for the others.  Only the tasks missing
    from this process's copy are read from Redis, and only those missing
    from Redis are featurised (and written back).
    """
    cache_key = f"{spec.key}:{control.name}"
    memo, missing = _resident(store, cache_key, task_ids)
    if memo is None:
        return _read_features(store, spec, control, task_ids, max_chars)
    if missing:
        got, X_new, skipped = _read_features(store, spec, control, missing, max_chars)
        memo.add(got, X_new)
    else:
        skipped = {}
    ids = [tid for tid in task_ids if tid in memo.pos]
    return ids, (memo.rows(ids) if ids else decode_rows([], spec.n_features)), skipped


def _read_features(
    store: ProjectStore,
    spec: FeatureSpec,
    control: ChoicesControl,
    task_ids: list[int],
    max_chars: int,
) -> tuple[list[int], sp.csr_matrix, dict[int, str]]:
    """``control_features`` from Redis: featurises and writes back the rows it lacks.

    Work goes in chunks so a million-task pool never holds more than one
    chunk of raw bytes beside the matrix.
    """
    cache_key = f"{spec.key}:{control.name}"
    featurizer = None
    fetch = None
    ids: list[int] = []
    parts: list[sp.csr_matrix] = []
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
                featurizer = featurizer or TextFeaturizer(spec)
                X_new = featurizer.transform(texts)
                fresh = {tid: encode_row(X_new, i) for i, tid in enumerate(todo)}
                store.cache_features(cache_key, fresh)
        rows, kept = [], []
        for tid, raw in zip(chunk, cached):
            raw = raw if raw is not None else fresh.get(tid)
            if raw is not None:
                rows.append(raw)
                kept.append(tid)
        ids.extend(kept)
        parts.append(decode_rows(rows, spec.n_features))
        del cached, rows, fresh
    X = sp.vstack(parts, format="csr") if len(parts) > 1 else (parts[0] if parts else decode_rows([], spec.n_features))
    return ids, X, skipped


def pool_probas(
    store: ProjectStore,
    spec: FeatureSpec,
    config: LabelConfig,
    models: dict[str, ChoicesClassifier],
    ids: list[int],
    X_geo: sp.csr_matrix,
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
