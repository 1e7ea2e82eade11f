"""A project's task features, from the worker's Redis cache where possible.

A task's features never change for a given featurizer (every featurizer is
deterministic per row), so each task is featurised once and its row kept in
Redis under the featurizer's key; a refresh reads rows in chunks and
featurises only the cache misses.  Another featurizer is another cache, so
switching a project's representation never mixes rows.

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

from backend.labelstudio.fetch import shared_fetcher
from backend.labelstudio.label_config import LabelConfig
from backend.labelstudio.content import control_content, model_content, reads_features
from backend.labelstudio.task_data import TaskDataError
from backend.labelstudio.tasktypes import Control, task_type_of
from backend.learning import featurizers
from backend.learning.featurizers import Featurizer, Matrix, decode_rows, encode_rows, vstack
from backend.learning.model import ChoicesClassifier
from backend.settings import get_settings
from backend.state.store import ProjectStore

FEATURE_CHUNK = 50_000  # tasks read from the feature cache per Redis round trip
#: A featurizer fitted on the pool (numbers) sees this many of its tasks, and is refit once the pool doubles.
FIT_SAMPLE = 10_000


@dataclass
class _Resident:
    """Rows of one project's feature cache (one featurizer and control) held by this process."""

    token: str
    pos: dict[int, int] = field(default_factory=dict)  # task id -> row of X
    X: Matrix | None = None
    used: float = 0.0

    def add(self, ids: list[int], X: Matrix, n_features: int, sparse: bool) -> None:
        if not ids:
            return
        start = len(self.pos)
        self.pos.update((tid, start + i) for i, tid in enumerate(ids))
        self.X = X if self.X is None else vstack([self.X, X], n_features, sparse=sparse)

    def rows(self, ids: list[int]) -> Matrix:
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
    spec: Featurizer,
    control: Control,
    task_ids: list[int],
    max_chars: int,
    *,
    resident: bool = True,
) -> tuple[list[int], Matrix, dict[int, str]]:
    """Features of ``task_ids`` for one control, from memory or the cache where possible.

    Returns the ids that have features (in the order of ``task_ids``),
    their rows, and a skip reason for the others.  Only the tasks missing
    from this process's copy are read from Redis, and only those missing
    from Redis are featurised (and written back).  ``resident=False``
    (shards of a pool too large to keep): Redis only, nothing kept.
    """
    cache_key = f"{spec.key}:{control.name}"
    if not resident:
        return _read_features(store, spec, control, task_ids, max_chars)
    memo, missing = _resident(store, cache_key, task_ids)
    if memo is None:
        return _read_features(store, spec, control, task_ids, max_chars)
    skipped: dict[int, str] = {}
    if missing:
        got, X_new, skipped = _read_features(store, spec, control, missing, max_chars)
        memo.add(got, X_new, spec.n_features, spec.sparse)
    ids = [tid for tid in task_ids if tid in memo.pos]
    return ids, (memo.rows(ids) if ids else vstack([], spec.n_features, sparse=spec.sparse)), skipped


def _read_features(
    store: ProjectStore,
    spec: Featurizer,
    control: Control,
    task_ids: list[int],
    max_chars: int,
) -> tuple[list[int], Matrix, dict[int, str]]:
    """``control_features`` from Redis: featurises and writes back the rows it lacks.

    Work goes in chunks so a million-task pool never holds more than one
    chunk of raw bytes beside the matrix.
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
        # Contents given as URLs are read like /predict reads them (the same safe fetcher), a batch at a time
        # (decoded images are large).
        for begin in range(0, len(missing), spec.batch):
            fetch = fetch or shared_fetcher(get_settings()).for_project(store.config)
            batch = missing[begin:begin + spec.batch]
            todo, contents, skipped_now = read_contents(store, control, batch, max_chars, fetch)
            skipped.update(skipped_now)
            if todo:
                rows_now = dict(zip(todo, encode_rows(spec.transform(contents))))
                store.cache_features(cache_key, rows_now)
                fresh.update(rows_now)
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


def model_rows(
    store: ProjectStore,
    spec: Featurizer,
    control: Control,
    task_ids: list[int],
    max_chars: int,
    *,
    resident: bool = True,
) -> tuple[list[int], Matrix | list, dict[int, str]]:
    """What ``control``'s model reads for ``task_ids``: feature rows (``control_features``), or the tasks'
    exact texts for a model that reads them itself (``TaskType.model_input``; read from the pool, never cached:
    a text costs nothing to read again, and a row of it would be the text)."""
    if reads_features(control):
        return control_features(store, spec, control, task_ids, max_chars, resident=resident)
    fetch = shared_fetcher(get_settings()).for_project(store.config)
    return read_contents(store, control, task_ids, max_chars, fetch, read=model_content)


def read_contents(store: ProjectStore, control: Control, task_ids: list[int], max_chars: int, fetch,
                  read=control_content) -> tuple[list[int], list, dict[int, str]]:
    """What ``control`` reads of each task (text, image, numbers): the ids read, their contents, and skip reasons.

    ``read``: ``control_content`` (the featurizer's input) or ``model_content`` (the model's).
    """
    tasks = store.tasks_by_id(task_ids)
    max_bytes = get_settings().fetch_max_bytes
    ids, contents, skipped = [], [], {}
    for tid in task_ids:
        try:
            contents.append(read(tasks.get(tid), control, max_chars=max_chars, fetch=fetch, max_bytes=max_bytes))
            ids.append(tid)
        except TaskDataError as exc:
            skipped[tid] = str(exc)
    return ids, contents, skipped


def fitted_featurizer(store: ProjectStore, spec: Featurizer, control: Control, current_meta: dict | None,
                      max_chars: int) -> Featurizer:
    """``spec``, fitted on a sample of the pool if it learns from it (``Featurizer.fitted_on_pool``).

    The serving version's fit is kept while the pool has not doubled since
    (a new fit is a new cache and a full retraining, so not at every task).
    """
    if not spec.fitted_on_pool:
        return spec
    task_ids = store.task_ids()
    stored = (current_meta or {}).get("feature_spec")
    if isinstance(stored, dict) and stored.get("featurizer") == spec.name:
        try:
            previous = featurizers.from_dict(stored)
        except featurizers.FeaturizerError:
            previous = None
        if previous is not None and previous.n_features > 1 and len(task_ids) < 2 * max(getattr(previous, "fitted_rows", 0), 1):
            return previous
    sample = sorted(task_ids)
    if len(sample) > FIT_SAMPLE:
        sample = sorted(np.random.default_rng(0).choice(sample, FIT_SAMPLE, replace=False).tolist())
    _, contents, _ = read_contents(store, control, sample, max_chars, None)
    return spec.fit(contents)


def pool_probas(
    store: ProjectStore,
    spec: Featurizer,
    config: LabelConfig,
    models: dict[str, ChoicesClassifier],
    ids: list[int],
    X_geo: Matrix,
    max_chars: int,
    *,
    resident: bool = True,
) -> dict[str, np.ndarray]:
    """Probabilities of every trained control for the tasks ``ids`` (rows of ``X_geo``).

    Each control's output as its task type's probability view
    (``TaskType.as_probabilities``), which the strategies rank by.  The
    first control's features are the geometry already read; other
    controls read their own content (a model that reads texts, its texts:
    ``model_rows``), and a task unreadable for one of them gets 0.5 in
    every column (no opinion).
    """
    probas = {}
    for control in config.controls:
        model = models.get(control.name)
        if model is None:
            continue
        task_type = task_type_of(control)
        if control is config.controls[0] and reads_features(control):
            probas[control.name] = task_type.probabilities(model, X_geo)
            continue
        c_ids, X_c, _ = model_rows(store, spec, control, ids, max_chars, resident=resident)
        got = task_type.probabilities(model, X_c)
        proba = np.full((len(ids), got.shape[1]), 0.5)
        pos = {t: i for i, t in enumerate(ids)}
        proba[[pos[t] for t in c_ids]] = got
        probas[control.name] = proba
    return probas
