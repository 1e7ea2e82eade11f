"""Build a new model version for a project: train, rank the pool, publish.

Called by the ``refresh_project`` job under the project's lock.  It reads only
Redis (the pool and the labeled set the webhooks recorded), computes hashed
features once per task (cached), trains one model per ``<Choices>``, ranks
every unlabeled task and publishes model + ranking in one atomic flip.  A
failure before the flip leaves the previous version serving.
"""

from __future__ import annotations

import hashlib
import logging
import time

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.linear_model import LogisticRegression

from backend import project_options, ranking, selection
from backend.config import Settings
from backend.features import FeatureSpec, TextFeaturizer, decode_rows, encode_row
from backend.label_config import ChoicesControl, LabelConfig
from backend.model import ChoicesClassifier, NotEnoughLabelsError, compact_columns
from backend.store import ProjectStore
from backend.task_data import TaskDataError, control_text
from backend.versions import load_version, pack_version, task_utility
from worker.labeled_set import build_labeled_set

log = logging.getLogger(__name__)


def _fingerprint(items) -> str:
    h = hashlib.sha1()
    for item in items:
        h.update(repr(item).encode())
    return h.hexdigest()[:16]


FEATURE_CHUNK = 50_000  # tasks read from the feature cache per Redis round trip


def control_features(
    store: ProjectStore,
    spec: FeatureSpec,
    control: ChoicesControl,
    task_ids: list[int],
    max_chars: int,
) -> tuple[list[int], sp.csr_matrix, dict[int, str]]:
    """Features of ``task_ids`` for one control, from the cache where possible.

    Returns the ids that have features, their rows, and a skip reason for the
    others.  Only the tasks missing from the cache are read and featurised
    (and written back).  Work goes in chunks so a million-task pool never
    holds more than one chunk of raw bytes beside the matrix.
    """
    cache_key = f"{spec.key}:{control.name}"
    featurizer = None
    ids: list[int] = []
    parts: list[sp.csr_matrix] = []
    skipped: dict[int, str] = {}
    for start in range(0, len(task_ids), FEATURE_CHUNK):
        chunk = task_ids[start:start + FEATURE_CHUNK]
        cached = store.cached_features(cache_key, chunk)
        missing = [tid for tid, raw in zip(chunk, cached) if raw is None]
        fresh: dict[int, bytes] = {}
        if missing:
            tasks = store.tasks_by_id(missing)
            todo, texts = [], []
            for tid in missing:
                try:
                    texts.append(control_text(tasks.get(tid), control, max_chars=max_chars))
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


def _cv_accuracy(X: sp.csr_matrix, y: list, C: float) -> float | None:
    """5-fold (or fewer) cross-validated accuracy, when every class has two examples."""
    _, counts = np.unique(np.asarray(y, dtype=str), return_counts=True)
    folds = int(min(5, counts.min()))
    if len(counts) < 2 or folds < 2:
        return None
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    Xc, _ = compact_columns(X)
    return float(cross_val_score(LogisticRegression(C=C, max_iter=1000), Xc, np.asarray(y, dtype=str), cv=cv).mean())


def _current_models(store: ProjectStore, current: str, meta: dict) -> tuple[dict[str, ChoicesClassifier], dict]:
    """The serving version's models, reused when only the pool changed."""
    version = load_version(store, current)
    return (version.models if version else {}), meta.get("controls", {})


def _train(
    store: ProjectStore,
    spec: FeatureSpec,
    config: LabelConfig,
    labeled,
    settings: Settings,
) -> tuple[dict[str, ChoicesClassifier], dict]:
    """One model per control on its labeled tasks; controls without two answers stay untrained."""
    models: dict[str, ChoicesClassifier] = {}
    per_control: dict[str, dict] = {}
    for control in config.controls:
        answers = labeled.answers[control.name]
        info: dict = {"labeled": len(answers)}
        ids, X, skipped = control_features(store, spec, control, sorted(answers), settings.max_text_chars)
        y = [sorted(answers[t]) if control.multiple else answers[t] for t in ids]
        info["unreadable"] = len(skipped)
        try:
            model = ChoicesClassifier(multiple=control.multiple).fit(X, y)
            models[control.name] = model
            info["label_counts"] = {
                str(k): int(v) for k, v in zip(*np.unique([str(v) for v in y], return_counts=True))
            }
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
    """Labels changed since the last training, and ``interval`` seconds passed since it (0: never)."""
    if not meta or not interval or meta.get("kind") != "model":
        return False
    if meta.get("epochs", [0])[0] <= meta.get("trained_labels_epoch", 0):
        return False
    now = time.time() if now is None else now
    return now - meta.get("trained_at_ts", now) >= interval


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
    config = LabelConfig.from_dict(cfg_fields["parsed"])
    same_config = bool(current_meta) and current_meta.get("config_hash") == config.config_hash
    options = project_options.resolve(settings, cfg_fields.get("extra_params"))
    force = force or training_overdue(current_meta, options.train_interval)
    if not force and same_config and current_meta.get("epochs") == epochs:
        return {"published": False, "reason": "nothing changed", "version": current}
    spec = FeatureSpec()
    rng = np.random.default_rng(seed)
    task_ids = store.task_ids()
    labeled = build_labeled_set(store.annotations(), config)

    labels_fp = _fingerprint(sorted((c, t, str(a)) for c, d in labeled.answers.items() for t, a in d.items()))
    pool_ids = sorted(set(task_ids) - labeled.labeled_tasks)
    pool_fp = hashlib.sha1(np.asarray(pool_ids, dtype=np.int64).tobytes()).hexdigest()[:16]
    same_models_possible = same_config and FeatureSpec.from_dict(current_meta["feature_spec"]) == spec
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
        models, per_control = _train(store, spec, config, labeled, settings)

    # Rank the unlabeled pool on the first control's text (the task's geometry).
    geo_control = config.controls[0]
    ids, X_geo, unreadable = control_features(store, spec, geo_control, pool_ids, settings.max_text_chars)
    probas = {}
    for control in config.controls:
        if control.name not in models:
            continue
        if control is geo_control:
            probas[control.name] = models[control.name].predict_proba(X_geo)
        else:
            c_ids, X_c, _ = control_features(store, spec, control, ids, settings.max_text_chars)
            proba = np.full((len(ids), len(models[control.name].classes_)), 0.5)
            pos = {t: i for i, t in enumerate(ids)}
            proba[[pos[t] for t in c_ids]] = models[control.name].predict_proba(X_c)
            probas[control.name] = proba
    centroid = np.asarray(X_geo.mean(axis=0)).ravel().astype(np.float32) if ids else None
    live_utility = task_utility(models, probas, X_geo, centroid)
    pool = selection.Pool(X=X_geo, probas=probas, models=models, **_labeled_geometry(
        store, spec, geo_control, labeled, settings, models))
    ranked = selection.rank_pool(pool, options.selection_params(), rng)
    scores = dict(zip(ids, ranked.scores().tolist()))
    control_ids = [ids[i] for i in np.flatnonzero(ranked.source == selection.CONTROL)]

    name = store.next_version_name()
    meta = {
        "version": name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kind": "model" if models else "cold-start",
        "controls": per_control,
        "labeled_tasks": len(labeled.labeled_tasks),
        "annotations_used": labeled.annotations_used,
        "ties": labeled.ties,
        "pool": len(pool_ids),
        "ranked": len(scores),
        "unreadable_tasks": len(unreadable),
        "clusters": ranked.n_clusters,
        "strategy": options.strategy,
        "control_share": options.control_share,
        "control_tasks": len(control_ids),
        "feature_spec": spec.to_dict(),
        "config_hash": config.config_hash,
        "labels_fingerprint": labels_fp,
        "pool_fingerprint": pool_fp,
        "epochs": epochs,
        # The version whose training produced the models (re-ranks reuse them).
        "trained_in": current_meta.get("trained_in", current) if reused else name,
        "trained_labels_epoch": current_meta.get("trained_labels_epoch", 0) if reused else epochs[0],
        "trained_at_ts": current_meta.get("trained_at_ts", time.time()) if reused else time.time(),
    }
    quantiles = ranking.utility_quantiles(live_utility)
    meta["duration_s"] = round(time.monotonic() - t0, 3)
    store.publish_version(name, meta, pack_version(models, quantiles, centroid), scores, control=control_ids)
    log.info("project %s: published %s (%s, %d labeled, %d ranked) in %.2fs",
             store.pid, name, meta["kind"], meta["labeled_tasks"], len(scores), meta["duration_s"])
    return {"published": True, **meta}


def evaluate(store: ProjectStore, settings: Settings) -> dict:
    """Cross-validate the current version's single-choice models on the labels they were trained on."""
    name = store.current_version()
    meta = store.version_meta(name) if name else None
    if not meta or meta.get("kind") != "model":
        return {}
    config = LabelConfig.from_dict(store.config()["parsed"])
    labeled = build_labeled_set(store.annotations(), config)
    spec = FeatureSpec.from_dict(meta["feature_spec"])
    controls = dict(meta.get("controls", {}))
    for control in config.controls:
        if control.multiple or control.name not in controls:
            continue
        answers = labeled.answers[control.name]
        ids, X, _ = control_features(store, spec, control, sorted(answers), settings.max_text_chars)
        controls[control.name] = {
            **controls[control.name],
            "cv_accuracy": _cv_accuracy(X, [answers[t] for t in ids], ChoicesClassifier().C),
            "cv_labels": len(ids),
        }
    store.update_version_meta(name, controls=controls)
    return controls
