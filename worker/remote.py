"""Bring your own model: a version ranked by another ML backend's predictions (``model: remote``).

``worker/refresh.py`` hands a remote-mode project to :func:`build_remote_version`
instead of training.  It

1. asks the remote's ``/predict`` for the unlabeled tasks it has no
   prediction of under the remote's current model version, in batches of
   ``remote_batch``, sending each task as Label Studio does
   (``{"id", "data"}``, never a Label Studio token), and caches every answer
   (``backend/state/remote.py``).  When every task is cached it still asks
   for one task, which tells whether the remote serves a new model version
   (then every cached prediction is stale, and the pool is asked again);
2. reads one uncertainty per task from the predictions
   (``backend/remote/uncertainty.py``; unknown = 0.5, no opinion), turns it
   into probability rows (``margin_rows``) and ranks them with the
   project's strategy, on the geometry of the project's own featurizer when
   the config has an object a featurizer reads; else by the uncertainty alone;
3. publishes a version (``kind: remote``) whose ranking the push imports
   with the remote's ``result`` as the pre-annotation.

The remote is someone else's server: its failures never stall the loop.  A
refresh spends at most ``AL_REMOTE_BUDGET`` seconds calling it (the rest of
the pool waits for the next refresh, queued behind other projects' jobs);
after a failure (error, timeout, wrong answer) nothing is published, the last
version keeps serving, and the failure, its text and the next retry
(``retry_delay``: 5 s doubling to 5 min) are kept for ``/status``; no call is
made before that time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time

import numpy as np
import orjson

from backend.labelstudio.label_config import LabelConfig, parse_label_config
from backend.labelstudio.tasktypes.base import margin_rows
from backend.learning import featurizers
from backend.learning.versions import pack_version
from backend.project_options import ProjectOptions
from backend.remote import plugin, sources
from backend.remote.client import RemoteError, RemoteModel, batches, retry_delay
from backend.remote.uncertainty import model_version, uncertainties
from backend.selection import ranking, strategies
from backend.settings import Settings, host_port
from backend.state.queueing import request_refresh
from backend.state.remote import UNVERSIONED, RemotePredictions
from backend.state.store import ProjectStore
from worker.feature_choice import features_for
from worker.pool_features import control_features, fitted_featurizer
from worker.push import remember_ranking

log = logging.getLogger(__name__)

#: The strategies' name for the remote's opinion (``Pool.probas`` / ``Pool.models`` key).
REMOTE = "remote"
#: An unknown uncertainty (no score in the prediction, or no prediction): the middle, no opinion.
NO_OPINION = 0.5


@dataclasses.dataclass(frozen=True)
class RemoteOpinion:
    """Stands for the remote model in ``strategies.Pool.models``: the strategies read only whether a model
    answers several yes/no questions (it answers one: its uncertainty); committee strategies fall back to entropy."""

    multiple: bool = False


@dataclasses.dataclass
class Queried:
    """What one refresh asked the remote: calls made, tasks answered, whether the budget ran out."""

    calls: int = 0
    answered: int = 0
    new_version: bool = False
    out_of_budget: bool = False


def remote_config(schema: str) -> LabelConfig:
    """The stored label config read for remote mode (the stored ``parsed`` may be an own-mode parse)."""
    return parse_label_config(schema, remote=True)


def _project_ref(store: ProjectStore) -> str:
    """``project`` as Label Studio sends it, ``"<id>.<created epoch>"``."""
    epoch = store.config_field("project_epoch")
    return f"{store.pid}.{epoch}" if isinstance(epoch, int) else str(store.pid)


def labeled_tasks(store: ProjectStore) -> list[dict]:
    """The labeled tasks in Label Studio's export shape (``{"id", "data", "annotations"}``), for a plug-in's ``fit``."""
    by_task: dict[int, list[dict]] = {}
    for a in store.annotations():
        if not a.get("was_cancelled") and isinstance(a.get("task"), int):
            by_task.setdefault(a["task"], []).append(
                {k: a.get(k) for k in ("id", "result", "completed_by", "updated_at")})
    data = store.tasks_by_id(sorted(by_task))
    return [{"id": tid, "data": data[tid], "annotations": sorted(by_task[tid], key=lambda a: str(a["id"]))}
            for tid in sorted(by_task) if isinstance(data.get(tid), dict)]


def prediction_source(store: ProjectStore, options: ProjectOptions, schema: str) -> RemoteModel | plugin.PluginModel:
    """What the pool's predictions come from: the remote backend, or (``model: plugin``) the class run in
    this process, fit first on the labels if they changed since its last fit.  Raises ``RemoteError``."""
    source = sources.prediction_source(options, project=_project_ref(store), label_config=schema)
    if isinstance(source, plugin.PluginModel) and source.fit_to(labeled_tasks(store), store.pid):
        log.info("project %s: plug-in %s fit on the labels (fit %d); it now serves version %r", store.pid,
                 options.plugin, source.fits, source.version()[:80])
    return source


def _where(options: ProjectOptions) -> str | None:
    """The model's name in logs and metadata: the remote's host:port, or the plug-in's class path."""
    return options.plugin if options.model == "plugin" else host_port(options.remote_url)


def query_pool(store: ProjectStore, remote: RemoteModel | plugin.PluginModel, cache: RemotePredictions,
               pool_ids: list[int], *, batch: int, schema: str, budget_s: float) -> Queried:
    """Ask the remote for the pool's uncached tasks (or one task as a version probe); raises ``RemoteError``.

    Each batch's answers are cached as they arrive, so a failure half-way
    loses nothing already answered.  A new version named by an answer drops
    the cache (``RemotePredictions.set_version``), and the tasks asked before
    it are asked again, within the same budget.
    """
    out = Queried()
    started = time.monotonic()
    project = _project_ref(store)
    for _ in range(3):  # a version change mid-run re-asks what came before it; a third change waits
        todo = cache.missing(pool_ids)
        if not todo:
            if out.calls or not pool_ids:
                break
            todo = pool_ids[:1]  # everything is cached: does the remote serve a new version?
        changed = False
        for chunk in batches(todo, batch):
            if out.calls and time.monotonic() - started >= budget_s:
                out.out_of_budget = True
                return out
            data = store.tasks_by_id(list(chunk))
            sent = [tid for tid in chunk if isinstance(data.get(tid), dict)]
            if not sent:
                continue
            answers = remote.predict([{"id": tid, "data": data[tid]} for tid in sent],
                                     project=project, label_config=schema)
            out.calls += 1
            version = next((v for v in map(model_version, answers) if v is not None), UNVERSIONED)
            before = cache.version()
            if cache.set_version(version) and before is not None:
                log.info("project %s: the remote model now serves version %r; its predictions are asked again",
                         store.pid, version[:80])
                out.new_version = changed = True
            cache.put(version, {tid: a for tid, a in zip(sent, answers) if model_version(a) in (version, None)})
            out.answered += len(sent)
        if not changed:
            break
    return out


def _fingerprint(*parts: object) -> str:
    return hashlib.sha1(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


def build_remote_version(store: ProjectStore, settings: Settings, options: ProjectOptions, *, epochs: list[int],
                         current: str | None, current_meta: dict | None, force: bool = False, seed: int = 0) -> dict:
    """Ask the remote (within budget and back-off), rank the pool by its uncertainty, publish; see the module."""
    t0 = time.time()
    schema = store.schema() or ""
    config = remote_config(schema)
    cache = RemotePredictions(store)
    health = cache.health()
    labeled = {a["task"] for a in store.annotations() if not a.get("was_cancelled")}
    pool_ids = sorted(set(store.task_ids()) - labeled)
    if health["next_retry_at"] and t0 < health["next_retry_at"]:
        return {"published": False, "version": current, "remote_error": health["last_error"],
                "reason": f"remote model backing off after {health['failures']} failure(s); next call in "
                          f"{health['next_retry_at'] - t0:.0f} s; the last version keeps serving"}
    try:
        remote = prediction_source(store, options, schema)
        asked = query_pool(store, remote, cache, pool_ids, batch=options.remote_batch, schema=schema,
                           budget_s=settings.remote_budget)
    except RemoteError as exc:
        failures = cache.failures() + 1
        state = cache.record_failure(str(exc), retry_delay(failures))
        if current:  # the scheduler calls again then (``refresh.training_overdue``)
            store.update_version_meta(current, remote_check_after=state["next_retry_at"])
        log.warning("project %s: remote model at %s failed (%s); failure %d in a row, next call in %.0f s; "
                    "the last version keeps serving", store.pid, _where(options), exc, failures,
                    retry_delay(failures))
        return {"published": False, "version": current, "remote_error": str(exc),
                "reason": "remote model failed; the last version keeps serving"}
    cache.record_success(asked.calls)
    if asked.out_of_budget:  # the rest of the pool after other projects' jobs
        request_refresh(store.r, store.prefix, settings.queue_name, store.pid, "remote model: rest of the pool")

    remote_version = cache.version()
    fingerprint = _fingerprint(pool_ids, remote_version, config.config_hash, options.model_dump(),
                               len(cache.missing(pool_ids)))
    check_after = time.time() + settings.remote_poll_interval
    if (not force and current_meta and current_meta.get("kind") == "remote"
            and current_meta.get("remote_fingerprint") == fingerprint):
        store.update_version_meta(current, epochs=epochs, remote_check_after=check_after)
        return {"published": False, "reason": "nothing changed", "version": current}

    t_rank = time.monotonic()
    t_remote = time.time() - t0
    predictions = cache.get(pool_ids)
    u = uncertainties(predictions)
    known = int(np.isfinite(u).sum())
    u = np.where(np.isfinite(u), u, NO_OPINION)
    rng = np.random.default_rng(seed)
    order, source, spec, unreadable = _rank(store, settings, options, config, pool_ids, labeled, u,
                                            current_meta, rng)
    scores = dict(zip(pool_ids, ranking.queue_scores(order).tolist())) if pool_ids else {}
    random_pick_ids = [pool_ids[i] for i in np.flatnonzero(source == strategies.RANDOM_PICK)]

    name = store.next_version_name()
    meta = {
        "version": name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "published_at": time.time(),
        "kind": "remote",
        "controls": {},
        "labeled_tasks": len(labeled),
        "pool": len(pool_ids),
        "ranked": len(scores),
        "unreadable_tasks": unreadable,
        "strategy": options.strategy if spec is not None else "uncertainty (no featurizer reads this config)",
        "control_share": options.control_share,
        "control_tasks": len(random_pick_ids),
        "feature_spec": (spec or featurizers.get(featurizers.resolve(featurizers.KIND_DEFAULT, "text"))).to_dict(),
        "geometry": config.geometry.name if spec is not None else None,
        "config_hash": config.config_hash,
        "epochs": epochs,
        "remote": {"host": _where(options), "model_version": remote_version, "calls": asked.calls,
                   "tasks_asked": asked.answered, "with_uncertainty": known, "complete": not asked.out_of_budget},
        "remote_fingerprint": fingerprint,
        "remote_check_after": check_after,
        "trained_in": None,  # nothing trained here: no evaluate job
        "timings": {"remote_s": round(t_remote, 3), "rank_s": round(time.monotonic() - t_rank, 3)},
    }
    meta["duration_s"] = round(time.time() - t0, 3)
    store.publish_version(name, meta, pack_version({}, ranking.utility_quantiles(u), None), scores,
                          control=random_pick_ids)
    remember_ranking(store, name, meta["published_at"], scores)
    log.info("project %s: published %s (remote model %r: %d call(s), %d ranked) in %.2fs", store.pid, name,
             (remote_version or "")[:80], asked.calls, len(scores), meta["duration_s"])
    return {"published": True, **meta}


def _rank(store, settings, options, config, pool_ids, labeled, u, current_meta, rng):
    """Order the pool (positions in ``pool_ids``) by ``u``, with the project's strategy and geometry if any.

    Returns the order, each position's source (strategy or random pick),
    the featurizer (``None``: no geometry) and how many tasks it could not
    read (placed after the others, by uncertainty).
    """
    n = len(pool_ids)
    geo = config.geometry_control()
    if geo is None or n == 0:
        order, source = strategies.with_control_share(ranking.order_by(u, rng=rng), options.control_share, rng)
        return order, source, None, 0
    features, _ = features_for(store, options, config.kind)
    previous = current_meta if current_meta and current_meta.get("geometry") == geo.name else None
    spec = fitted_featurizer(store, featurizers.get(features), geo, previous, settings.max_text_chars)
    ids, X, _ = control_features(store, spec, geo, pool_ids, settings.max_text_chars)
    pos = {tid: i for i, tid in enumerate(pool_ids)}
    rows = np.array([pos[t] for t in ids], dtype=np.int64)
    rest = np.setdiff1d(np.arange(n), rows)
    labeled_ids, labeled_X, _ = control_features(store, spec, geo, sorted(labeled), settings.max_text_chars)
    u_rows = u[rows]
    known = bool(np.any(u_rows != NO_OPINION))  # no scores at all: cold start (typical, diverse tasks first)
    pool = strategies.Pool(X=X, probas={REMOTE: margin_rows(u_rows)} if known else {},
                           models={REMOTE: RemoteOpinion()} if known else {},
                           labeled_X=labeled_X if labeled_ids else None)
    params = dataclasses.replace(options.selection_params(), near_duplicate_threshold=spec.duplicate_cosine)
    ranked = strategies.rank_pool(pool, params, rng) if len(rows) else None
    head = rows[ranked.order] if ranked is not None else np.zeros(0, dtype=np.int64)
    tail = rest[ranking.order_by(u[rest], rng=rng)] if rest.size else np.zeros(0, dtype=np.int64)
    source = np.zeros(n, dtype=np.int8)
    if ranked is not None:
        source[rows] = ranked.source
    return np.concatenate([head, tail]), source, spec, int(rest.size)
