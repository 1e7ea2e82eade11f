"""Build a new model version for a project: train, rank the pool, publish.

Called by the ``refresh_project`` job under the project's lock.  It reads only
Redis (the pool and the labeled set the webhooks recorded), computes the project's
features once per task (cached), trains one model per ``<Choices>``, ranks
every unlabeled task and publishes model + ranking in one atomic flip.  A
failure before the flip leaves the previous version serving.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time

import numpy as np

from backend import project_options
from backend.labelstudio.label_config import LabelConfig
from backend.remote.sources import OTHER_MODELS
from backend.labelstudio.tasktypes import task_type_of
from backend.learning import featurizers
from backend.learning.featurizers import Featurizer
from backend.learning.labeled_set import build_labeled_set
from backend.learning.model import ChoicesClassifier, NotEnoughLabelsError
from backend.learning.versions import pack_version, task_utility
from backend.selection import ranking, strategies
from backend.settings import Settings
from backend.state.store import ProjectStore
from backend.state.versions import load_version
from worker import shards
from worker.feature_choice import features_for
from worker.pool_features import control_features, fitted_featurizer, model_rows, pool_probas
from worker.push import remember_ranking
from worker.remote import build_remote_version

log = logging.getLogger(__name__)


def _fingerprint(items) -> str:
    h = hashlib.sha1()
    for item in items:
        h.update(repr(item).encode())
    return h.hexdigest()[:16]


def _current_models(store: ProjectStore, current: str, meta: dict) -> tuple[dict[str, ChoicesClassifier], dict]:
    """The serving version's models, reused when only the pool changed."""
    version = load_version(store, current)
    return (version.models if version else {}), meta.get("controls", {})


def _train(
    store: ProjectStore,
    spec: Featurizer,
    config: LabelConfig,
    labeled,
    settings: Settings,
    init: dict[str, ChoicesClassifier],
    model_params: dict | None = None,
) -> tuple[dict[str, ChoicesClassifier], dict]:
    """One model per control on its labeled tasks; controls without two answers stay untrained.

    ``init``: the serving version's models, where each fit starts (see
    ``ChoicesClassifier.fit``): a retraining after a few new labels then
    costs a fraction of a fit from zero.  ``model_params``: the project's
    options for its models (``ProjectOptions.model_params``), set on the
    models that have them.
    """
    models: dict[str, ChoicesClassifier] = {}
    per_control: dict[str, dict] = {}
    for control in config.controls:
        answers = labeled.answers[control.name]
        info: dict = {"labeled": len(answers)}
        ids, X, skipped = model_rows(store, spec, control, sorted(answers), settings.max_text_chars)
        task_type = task_type_of(control)
        y = task_type.targets(control, [answers[t] for t in ids])
        info["unreadable"] = len(skipped)
        try:
            model = task_type.make_model(control)
            params = {k: v for k, v in (model_params or {}).items() if k in model.get_params()}
            if params:
                model.set_params(**params)
            previous = init.get(control.name)
            model = model.fit(X, y, init=previous) if type(previous) is type(model) else model.fit(X, y)
            models[control.name] = model
            # Answers the model could not train on (a span that is not in its task's text): a per-task skip.
            for row, why in getattr(model, "skipped_", {}).items():
                log.info("project %s task %s: %s not trained on: %s", store.pid, ids[row], control.name, why)
            if getattr(model, "skipped_", None):
                info["answers_skipped"] = len(model.skipped_)
            info.update(task_type.training_summary(control, y))
        except NotEnoughLabelsError as exc:
            info["not_trained"] = str(exc)
        per_control[control.name] = info
    return models, per_control


def _labeled_geometry(store, spec, control, labeled, settings, models) -> dict:
    """The labeled tasks of the geometry control, for strategies that look at what is covered."""
    answers = labeled.answers[control.name]
    if control.name not in models or not answers:
        return {}
    ids, X, _ = control_features(store, spec, control, sorted(answers), settings.max_text_chars)
    return {"labeled_X": X, "labeled_y": [answers[t] for t in ids]}


def training_overdue(meta: dict | None, interval: float, now: float | None = None) -> bool:
    """Labels changed since the last training, and ``interval`` seconds passed since it (0: never).

    A version ranked by a remote model (``worker/remote.py``) is due when its remote should be asked
    again: the poll interval after a success, the back-off after a failure.
    """
    now = time.time() if now is None else now
    if meta and meta.get("kind") == "remote":
        return now >= meta.get("remote_check_after", 0)
    if not meta or not interval or meta.get("kind") != "model":
        return False
    if meta.get("epochs", [0])[0] <= meta.get("trained_labels_epoch", 0):
        return False
    return now - meta.get("trained_at_ts", now) >= interval


def _score_in_process(store, spec, config, models, pool_ids, settings):
    """Features and probabilities of the whole pool in this process (pools below the shard threshold)."""
    geo_control = config.controls[0]
    ids, X_geo, skipped = control_features(store, spec, geo_control, pool_ids, settings.max_text_chars)
    probas = pool_probas(store, spec, config, models, ids, X_geo, settings.max_text_chars)
    return ids, X_geo, probas, skipped


def build_version(store: ProjectStore, settings: Settings, *, force: bool = False, seed: int = 0) -> dict:
    """Train and rank; publish a version if anything changed (or ``force``).

    Returns a summary (also stored as the version's metadata).
    """
    t0 = time.monotonic()
    epochs = list(store.epochs())  # read before the data: a later change re-runs us
    current = store.current_version()
    current_meta = store.version_meta(current) if current else None
    cfg_fields = store.config()
    if "parsed" not in cfg_fields:
        return {"published": False, "reason": "project not set up (no /setup yet)"}
    options = project_options.resolve(settings, cfg_fields.get("extra_params"))
    if options.model in OTHER_MODELS:  # another model's predictions rank the pool (worker/remote.py)
        return build_remote_version(store, settings, options, epochs=epochs, current=current,
                                    current_meta=current_meta, force=force, seed=seed)
    config = LabelConfig.from_dict(cfg_fields["parsed"])
    same_config = (bool(current_meta) and current_meta.get("config_hash") == config.config_hash
                   and current_meta.get("kind") != "remote")
    force = force or training_overdue(current_meta, options.train_interval)
    features, feature_choice = features_for(store, options, config.kind)
    spec = fitted_featurizer(store, featurizers.get(features), config.controls[0], current_meta, settings.max_text_chars)
    # Another featurizer (chosen at /setup, or by ``features: auto``) means other rows: retrain, never reuse models across them.
    # So do other model options (class weights; versions stored before them had none).
    same_model_setup = bool(current_meta) and (
        featurizers.from_dict(current_meta["feature_spec"]).key == spec.key
        and current_meta.get("model_params", {}) == options.model_params())
    if not force and same_config and same_model_setup and current_meta.get("epochs") == epochs:
        return {"published": False, "reason": "nothing changed", "version": current}
    rng = np.random.default_rng(seed)
    task_ids = store.task_ids()
    labeled = build_labeled_set(store.annotations(), config)

    labels_fp = _fingerprint(sorted((c, t, str(a)) for c, d in labeled.answers.items() for t, a in d.items()))
    pool_ids = sorted(set(task_ids) - labeled.labeled_tasks)
    pool_fp = hashlib.sha1(np.asarray(pool_ids, dtype=np.int64).tobytes()).hexdigest()[:16]
    same_models_possible = same_config and same_model_setup
    same_labels = same_models_possible and current_meta.get("labels_fingerprint") == labels_fp
    if not force and same_labels and current_meta.get("pool_fingerprint") == pool_fp:
        store.update_version_meta(current, epochs=epochs)
        return {"published": False, "reason": "nothing changed", "version": current}

    # Retrain when the labels changed enough (``train_every``) or on request;
    # otherwise keep the models and only re-rank what is still unlabeled.
    trained_at = current_meta.get("trained_labels_epoch", -10**9) if current_meta else -10**9
    few_changes = current_meta is not None and current_meta.get("kind") == "model" and (
        epochs[0] - trained_at < options.train_every
    )
    reused = not force and same_models_possible and (same_labels or few_changes)
    if reused:
        models, per_control = _current_models(store, current, current_meta)
    else:
        previous = _current_models(store, current, current_meta)[0] if same_models_possible else {}
        models, per_control = _train(store, spec, config, labeled, settings, previous, options.model_params())

    # Rank the unlabeled pool on the first control's text (the task's geometry).
    t_rank = time.monotonic()
    extra = _labeled_geometry(store, spec, config.controls[0], labeled, settings, models)
    if len(pool_ids) >= settings.shard_threshold:
        scored = shards.score_pool(store, spec, config, models, pool_ids, max_chars=settings.max_text_chars,
                                   queue_name=settings.queue_name, rng=rng)
        ids, probas, centroid = scored.ids, scored.probas, scored.centroid
        live_utility = strategies.mean_uncertainty(models, probas, len(ids)) if models else scored.typicality
        labeled_Z = shards.project_rows(extra["labeled_X"], scored.geometry) if extra else None
        pool = strategies.Pool(X=None, Z=scored.Z, labeled_Z=labeled_Z, probas=probas, models=models, **extra)
        sharding = {"shards": scored.shards, "shards_by_helpers": scored.by_helpers}
        unreadable = scored.unreadable
    else:
        ids, X_geo, probas, skipped = _score_in_process(store, spec, config, models, pool_ids, settings)
        centroid = np.asarray(X_geo.mean(axis=0)).ravel().astype(np.float32) if ids else None
        live_utility = task_utility(models, probas, X_geo, centroid)
        pool = strategies.Pool(X=X_geo, probas=probas, models=models, **extra)
        sharding, unreadable = {}, len(skipped)
    t_order = time.monotonic()
    params = dataclasses.replace(options.selection_params(), near_duplicate_threshold=spec.duplicate_cosine)
    ranked = strategies.rank_pool(pool, params, rng)
    scores = dict(zip(ids, ranked.scores().tolist()))
    random_pick_ids = [ids[i] for i in np.flatnonzero(ranked.source == strategies.RANDOM_PICK)]
    timings = {"score_pool_s": round(t_order - t_rank, 3), "order_s": round(time.monotonic() - t_order, 3)}

    name = store.next_version_name()
    meta = {
        "version": name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "published_at": time.time(),
        "kind": "model" if models else "cold-start",
        "controls": per_control,
        "labeled_tasks": len(labeled.labeled_tasks),
        "annotations_used": labeled.annotations_used,
        "ties": labeled.ties,
        "pool": len(pool_ids),
        "ranked": len(scores),
        "unreadable_tasks": unreadable,
        "clusters": ranked.n_clusters,
        "strategy": options.strategy,
        "features_option": options.features,  # "auto": feature_choice says why feature_spec was used
        "feature_choice": feature_choice.to_dict() if feature_choice else None,
        "control_share": options.control_share,
        "control_tasks": len(random_pick_ids),
        "feature_spec": spec.to_dict(),
        "model_params": options.model_params(),
        "config_hash": config.config_hash,
        "labels_fingerprint": labels_fp,
        "pool_fingerprint": pool_fp,
        "epochs": epochs,
        "timings": timings,
        **sharding,
        # The version whose training produced the models (re-ranks reuse them).
        "trained_in": current_meta.get("trained_in", current) if reused else name,
        "trained_labels_epoch": current_meta.get("trained_labels_epoch", 0) if reused else epochs[0],
        "trained_at_ts": current_meta.get("trained_at_ts", time.time()) if reused else time.time(),
    }
    quantiles = ranking.utility_quantiles(live_utility)
    t_publish = time.monotonic()
    meta["duration_s"] = round(time.monotonic() - t0, 3)
    store.publish_version(name, meta, pack_version(models, quantiles, centroid, config.task_types()), scores, control=random_pick_ids)
    remember_ranking(store, name, meta["published_at"], scores)
    meta["timings"]["publish_s"] = round(time.monotonic() - t_publish, 3)
    store.update_version_meta(name, timings=meta["timings"])
    log.info("project %s: published %s (%s, %d labeled, %d ranked) in %.2fs",
             store.pid, name, meta["kind"], meta["labeled_tasks"], len(scores), meta["duration_s"])
    return {"published": True, **meta}

