"""Score a large pool in shards that every idle worker helps with.

For a pool of a million tasks, a refresh's per-task work (reading cached
features from Redis, predicting, projecting) dominates, so it is split into
shards of ``SHARD_SIZE`` tasks.  The refresh job, which holds the project's
lock, fits the shared pieces on a sample (the projection, the pool's mean
direction), writes a work list to Redis and enqueues helper jobs; then it
and every idle worker pop shards until none are left, each writing its
shard's small arrays (probabilities, projection, typicality) back.  The
refresh merges them and ranks.  Nothing depends on a helper: a shard that
no one finished within ``SHARD_TIMEOUT`` is redone by the refresh itself.

Only arrays cross Redis (``.npz`` read with ``allow_pickle=False``).
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from dataclasses import dataclass

import numpy as np
import orjson

from backend.labelstudio.label_config import LabelConfig
from backend.learning import featurizers
from backend.learning.featurizers import Featurizer, Matrix
from backend.learning.model import ChoicesClassifier
from backend.learning.versions import load_models, pack_models
from backend.selection import ranking
from backend.state.queueing import SHARDS_JOB, job_queue
from backend.state.store import ProjectStore
from worker.pool_features import control_features, pool_probas

log = logging.getLogger(__name__)

SHARD_SIZE = 100_000
SHARD_TIMEOUT = 120.0  # seconds without progress before the refresh redoes missing shards itself
FIT_ROWS = 20_000
N_COMPONENTS = 32
KEY_TTL = 3600


@dataclass
class ScoredPool:
    """The merged result: rows aligned with ``ids`` (the pool tasks that have features)."""

    ids: list[int]
    probas: dict[str, np.ndarray]
    Z: np.ndarray
    typicality: np.ndarray  # cosine to the pool's (sampled) mean direction: the cold-start utility
    centroid: np.ndarray | None
    unreadable: int
    shards: int
    by_helpers: int
    geometry: dict[str, np.ndarray]  # the shared projection, to map the labeled tasks alike


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _unnpz(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _keys(store: ProjectStore, token: str) -> tuple[str, str, str]:
    return store.shard_keys(token)


def fit_geometry(X_sample: Matrix, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The pieces every shard shares, fitted on a sample of the pool.

    The PCA of :func:`backend.selection.ranking.project` (its mean and components) and
    the pool's mean direction, estimated from the sample: the mean of a
    uniform sample is an unbiased estimate of the pool's.
    """
    Y = ranking.reduce_dim(X_sample)
    k = int(min(N_COMPONENTS, Y.shape[0] - 1, Y.shape[1]))
    centroid = np.asarray(X_sample.mean(axis=0)).ravel().astype(np.float32)
    if k < 1:
        return {"mean": np.zeros(Y.shape[1], np.float32), "components": np.zeros((0, Y.shape[1]), np.float32),
                "centroid": centroid}
    from sklearn.decomposition import PCA

    pca = PCA(n_components=k, svd_solver="randomized", random_state=int(rng.integers(2**31 - 1))).fit(Y)
    return {"mean": pca.mean_.astype(np.float32), "components": pca.components_.astype(np.float32),
            "centroid": centroid}


def project_rows(X: Matrix, geometry: dict[str, np.ndarray]) -> np.ndarray:
    """L2-normalised coordinates of rows in the shared PCA space."""
    comps = geometry["components"]
    if comps.shape[0] == 0:
        return np.zeros((X.shape[0], 1), np.float32)
    Z = (ranking.reduce_dim(X) - geometry["mean"]) @ comps.T
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (Z / norms).astype(np.float32)


def score_shard(store: ProjectStore, plan: dict, models: dict[str, ChoicesClassifier], ids: list[int]) -> bytes:
    """One shard's arrays: kept ids, probabilities per control, projection, typicality."""
    spec = featurizers.from_dict(plan["spec"])
    config = LabelConfig.from_dict(plan["config"])
    geometry = plan["geometry"]
    geo = config.controls[0]
    # A shard is read once per refresh: keeping it in memory would only cost memory.
    kept, X, skipped = control_features(store, spec, geo, ids, plan["max_chars"], resident=False)
    out: dict[str, np.ndarray] = {
        "ids": np.asarray(kept, dtype=np.int64),
        "Z": project_rows(X, geometry),
        "typicality": np.asarray(X @ _unit(geometry["centroid"])).ravel().astype(np.float32),
        "unreadable": np.asarray([len(skipped)]),
    }
    probas = pool_probas(store, spec, config, models, kept, X, plan["max_chars"], resident=False)
    for i, control in enumerate(config.controls):
        if control.name in probas:
            out[f"proba{i}"] = probas[control.name].astype(np.float32)
    return _npz(**out)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _load_plan(store: ProjectStore, token: str) -> tuple[dict, dict[str, ChoicesClassifier], np.ndarray] | None:
    base, _, _ = _keys(store, token)
    raw = store.r.hgetall(base)
    if not raw:
        return None
    plan = orjson.loads(raw[b"plan"])
    plan["geometry"] = _unnpz(raw[b"geometry"])
    models = load_models({k.decode(): v for k, v in raw.items() if k.startswith(b"model")})
    ids = np.frombuffer(raw[b"ids"], dtype=np.int64)
    return plan, models, ids


def work(store: ProjectStore, token: str) -> int:
    """Pop and score shards until the work list is empty; returns how many this process did."""
    loaded = _load_plan(store, token)
    if loaded is None:
        return 0
    plan, models, ids = loaded
    _, todo, done = _keys(store, token)
    count = 0
    while (raw := store.r.lpop(todo)) is not None:
        i = int(raw)
        part = ids[i * plan["shard_size"]:(i + 1) * plan["shard_size"]].tolist()
        store.r.hset(done, i, score_shard(store, plan, models, part))
        store.r.expire(done, KEY_TTL)
        count += 1
    return count


def score_pool(
    store: ProjectStore,
    spec: Featurizer,
    config: LabelConfig,
    models: dict[str, ChoicesClassifier],
    pool_ids: list[int],
    *,
    max_chars: int,
    queue_name: str,
    rng: np.random.Generator,
    shard_size: int | None = None,
    timeout: float = SHARD_TIMEOUT,
) -> ScoredPool:
    """Score ``pool_ids`` in shards, with whatever workers are idle; returns the merged arrays."""
    shard_size = shard_size or SHARD_SIZE
    token = uuid.uuid4().hex[:12]
    base, todo, done = _keys(store, token)
    geo = config.controls[0]
    sample_ids = sorted(rng.choice(pool_ids, size=min(FIT_ROWS, len(pool_ids)), replace=False).tolist())
    _, X_sample, _ = control_features(store, spec, geo, sample_ids, max_chars, resident=False)
    geometry = fit_geometry(X_sample, rng)
    n_shards = -(-len(pool_ids) // shard_size)
    plan = {"spec": spec.to_dict(), "config": config.to_dict(), "max_chars": max_chars, "shard_size": shard_size}
    pipe = store.r.pipeline()
    pipe.hset(base, mapping={
        "plan": orjson.dumps(plan),
        "geometry": _npz(**geometry),
        "ids": np.asarray(pool_ids, dtype=np.int64).tobytes(),
        **pack_models(models, config.task_types()),
    })
    pipe.rpush(todo, *range(n_shards))
    for key in (base, todo):
        pipe.expire(key, KEY_TTL)
    pipe.execute()
    helpers = min(n_shards - 1, 16)
    if helpers > 0:
        q = job_queue(queue_name, store.r)
        for h in range(helpers):
            q.enqueue(SHARDS_JOB, store.pid, token, store.prefix,
                      job_id=f"shards-{store.pid}-{token}-{h}", at_front=True,
                      description=f"help score shards of project {store.pid}", result_ttl=60, failure_ttl=3600)
    try:
        mine = work(store, token)
        last_progress, seen = time.monotonic(), mine
        while (finished := store.r.hlen(done)) < n_shards:
            if finished != seen:
                last_progress, seen = time.monotonic(), finished
                store.set_status(stage_progress=f"rank: {finished}/{n_shards} shards scored")
            elif time.monotonic() - last_progress > timeout:
                # A helper died mid-shard: redo what is missing here.
                have = {int(k) for k in store.r.hkeys(done)}
                plan_loaded = _load_plan(store, token)
                assert plan_loaded is not None
                p, m, all_ids = plan_loaded
                for i in sorted(set(range(n_shards)) - have):
                    part = all_ids[i * shard_size:(i + 1) * shard_size].tolist()
                    store.r.hset(done, i, score_shard(store, p, m, part))
                    mine += 1
                log.warning("project %s: redid %d shard(s) a helper left unfinished", store.pid, n_shards - len(have))
                break
            time.sleep(0.05)
        parts = [_unnpz(raw) for raw in store.r.hmget(done, list(range(n_shards)))]
    finally:
        store.r.delete(base, todo, done)
    probas = {}
    for i, control in enumerate(config.controls):
        if control.name in models:
            probas[control.name] = np.concatenate([p[f"proba{i}"] for p in parts]).astype(np.float64)
    return ScoredPool(
        ids=np.concatenate([p["ids"] for p in parts]).tolist(),
        probas=probas,
        Z=np.concatenate([p["Z"] for p in parts]),
        typicality=np.concatenate([p["typicality"] for p in parts]),
        centroid=geometry["centroid"] if X_sample.shape[0] else None,
        unreadable=int(sum(int(p["unreadable"][0]) for p in parts)),
        shards=n_shards,
        by_helpers=n_shards - mine,
        geometry=geometry,
    )
