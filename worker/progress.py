"""Record how a project is going, once per trained model version (the ``evaluate_project`` job).

Runs on the version that is current, at low priority.  It settles the
control-share outcomes (``worker/outcomes.py``), cross-validates the
version's models once, fits the random-selection curve, measures the
agreement of successive models on a fixed stop set, describes the queue's
head, and stores the summary the dashboard, ``/status`` and ``/metrics``
show.  The computations are in ``backend/progress/evaluation.py``; the Redis
structures are ``backend/state/progress.py``'s.

Each version's own figures also go into its metadata (``progress``), which
is kept forever, so the history survives the pruning of old versions' data.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict

import numpy as np
import orjson

from backend import project_options
from backend.labelstudio.label_config import LabelConfig
from backend.labelstudio.tasktypes import task_type_of
from backend.learning import featurizers
from backend.learning.labeled_set import build_labeled_set
from backend.progress import entities, estimators, evaluation, regression
from backend.progress.summary import ProgressSummary
from backend.selection import strategies
from backend.settings import Settings
from backend.state.progress import ProgressStore
from backend.state.store import ProjectStore
from backend.state.versions import load_version
from worker.feature_choice import reconsider
from worker.outcomes import (measured_controls, number_controls, predict, record_served_versions, settle_outcomes,
                             single_controls)
from worker.pool_features import control_features, model_rows

log = logging.getLogger(__name__)

STOP_SET_SIZE = 500


def _random_curve(store, spec, control, estimator, outcomes, settings) -> dict:
    """The random-selection curve (``evaluation.random_curve``) of the labeled control tasks.

    Kept in Redis and recomputed only when the labeled control tasks change
    (they grow by the control share of the labels, so most versions reuse it).
    """
    truth = {t: o["truth"][control.name] for t, o in outcomes.items() if control.name in o.get("truth", {})}
    # the representation too: a project on ``features: auto`` may switch
    fingerprint = hashlib.sha1(orjson.dumps([spec.key, sorted(truth.items())])).hexdigest()[:16]
    cached = ProgressStore(store).random_curve()
    if cached and cached.get("fingerprint") == fingerprint and cached.get("control") == control.name:
        return cached["curve"]
    ids, X, _ = control_features(store, spec, control, sorted(truth), settings.max_text_chars)
    y = np.asarray([truth[t] for t in ids], dtype=str)
    curve = evaluation.random_curve(estimator, X, y)
    if len(ids) >= evaluation.MIN_RANDOM_LABELS and np.unique(y).size >= 2:  # too few: not worth keeping
        ProgressStore(store).set_random_curve({"fingerprint": fingerprint, "control": control.name, "curve": curve})
    return curve


# -- stop set and kappa ---------------------------------------------------------------

def _stop_set(store: ProjectStore, pool_ids: list[int], seed: int = 0) -> list[int]:
    """A fixed sample of the pool, drawn once (seeded) and kept: the stop set of [1]_ in backend/progress/estimators.py."""
    progress = ProgressStore(store)
    kept = progress.stop_set()
    if kept is not None:
        return kept
    rng = np.random.default_rng(seed)
    ids = sorted(int(t) for t in rng.choice(pool_ids, size=min(STOP_SET_SIZE, len(pool_ids)), replace=False)) \
        if pool_ids else []
    return progress.claim_stop_set(ids)


def _stop_predictions(store, spec, control, models, ids, settings) -> dict[int, str]:
    """The model's answer per task, as text; for ``<Labels>`` a text's whole tagging (agreeing if every tag does)."""
    if task_type_of(control).model_input != "text":
        return predict(store, spec, control, models, ids, settings)
    got, texts, _ = model_rows(store, spec, control, ids, settings.max_text_chars)
    return {t: " ".join(x.tagging.tags) for t, x in zip(got, models[control.name].tag(texts))} if got else {}


def _stop_kappa(store, name, spec, control, models, stop_ids, settings) -> float | None:
    """Kappa between this model's and the previous model's predictions on the stop set."""
    preds = _stop_predictions(store, spec, control, models, stop_ids, settings)
    last = ProgressStore(store).swap_stop_predictions(
        {"version": name, "control": control.name, "preds": {str(t): p for t, p in preds.items()}})
    if not last or last.get("version") == name or last.get("control") != control.name:
        return None
    common = [t for t in preds if str(t) in last["preds"]]
    if not common:
        return None
    return estimators.kappa([last["preds"][str(t)] for t in common], [preds[t] for t in common])


# -- the queue's head -------------------------------------------------------------------

def _queue_head(store, name, spec, config, loaded, head_size, settings, labeled_tasks: set[int]) -> dict:
    """What the head of the current queue is made of: random controls, uncertain tasks, diverse ones.

    The head as pushed to Label Studio: the first ``head_size`` tasks of the
    ranking that are still unlabeled (``worker/push.py``).
    """
    ranked = store.ranking(name)
    head = [t for t in sorted(ranked, key=ranked.get) if t not in labeled_tasks][:head_size]
    controls = store.random_pick_tasks(name) & set(head)
    strategy_ids = [t for t in head if t not in controls]
    uncertain = 0
    geo = config.controls[0]
    if strategy_ids and loaded.models and loaded.quantiles.size:
        ids, X, _ = model_rows(store, spec, geo, strategy_ids, settings.max_text_chars)
        task_type = task_type_of(geo)
        probas = {c: task_type.probabilities(m, X) for c, m in loaded.models.items() if c == geo.name}
        if probas:
            utility = strategies.mean_uncertainty(loaded.models, probas, len(ids))
            top_quarter = loaded.quantiles[int(0.75 * (loaded.quantiles.size - 1))]
            uncertain = int(np.sum(utility >= top_quarter))
    return {"head": len(head), "control": len(controls), "uncertain": uncertain,
            "diverse": len(strategy_ids) - uncertain}


# -- assembling ------------------------------------------------------------------------------

def record(store: ProjectStore, settings: Settings, *, now: float | None = None) -> ProgressSummary | None:
    """Compute and store the current version's progress figures and the project's summary.

    Returns the summary (``None`` when the current version has no model yet).
    """
    name = store.current_version()
    meta = store.version_meta(name) if name else None
    if not meta or meta.get("kind") != "model":
        return None
    loaded = load_version(store, name)
    if loaded is None:
        return None
    config = LabelConfig.from_dict(store.config()["parsed"])
    options = project_options.resolve(settings, store.config().get("extra_params"))
    annotations = store.annotations()
    labeled = build_labeled_set(annotations, config)
    all_ids = store.task_ids()
    spec = featurizers.from_dict(meta["feature_spec"])
    controls = single_controls(config, loaded.models)
    numbers = number_controls(config, loaded.models)
    spans = [c for c in config.controls if c.task_type == "labels" and c.name in loaded.models]

    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now_ = time.perf_counter()
        timings[stage] = round(now_ - clock, 3)
        clock = now_

    record_served_versions(store, name, config, options.head_size, settings)
    settle_outcomes(store, labeled, measured_controls(config, loaded.models), annotations)
    lap("outcomes")

    outcomes = ProgressStore(store).outcomes()
    cv_by_control, holdout_by_control, review = {}, {}, []
    trained = dict(meta.get("controls", {}))
    for control in controls:
        answers = labeled.answers[control.name]
        ids, X, _ = control_features(store, spec, control, sorted(answers), settings.max_text_chars)
        y = [str(answers[t]) for t in ids]
        estimator = loaded.models[control.name]
        cv_by_control[control.name], given, pred = evaluation.cross_validate(estimator, X, y)
        # The version's own record of its cross-validated accuracy (the worker's logs and benches read it).
        trained[control.name] = {**trained.get(control.name, {}), "cv_labels": len(ids),
                                 "cv_accuracy": cv_by_control[control.name].pop("fold_accuracy", None)}
        is_random_pick = np.fromiter((t in outcomes for t in ids), dtype=bool, count=len(ids))
        holdout_by_control[control.name] = evaluation.random_pick_holdout(estimator, X, y, is_random_pick)
        if given is not None:
            for i in evaluation.suspicious_labels(given, y, pred)[:evaluation.REVIEW_LIMIT]:
                review.append({"task": ids[i], "control": control.name, "label": y[i], "predicted": str(pred[i]),
                               "proba_of_label": round(float(given[i]), 4),
                               "reason": "a model trained without it finds the label unlikely"})
    for control in numbers:
        answers = labeled.answers[control.name]
        ids, X, _ = control_features(store, spec, control, sorted(answers), settings.max_text_chars)
        y = [answers[t] for t in ids]
        estimator = loaded.models[control.name]
        cv_by_control[control.name], _ = regression.cross_validate(estimator, X, y)
        trained[control.name] = {**trained.get(control.name, {}), "cv_labels": len(ids),
                                 "cv_mae": cv_by_control[control.name].get("mae")}
        is_random_pick = np.fromiter((t in outcomes for t in ids), dtype=bool, count=len(ids))
        holdout_by_control[control.name] = regression.random_pick_holdout(estimator, X, y, is_random_pick)
    entity_f1 = {}
    for control in spans:
        answers = labeled.answers[control.name]
        ids, texts, _ = model_rows(store, spec, control, sorted(answers), settings.max_text_chars)
        y = [answers[t] for t in ids]
        entity_f1[control.name] = entities.cross_validate(loaded.models[control.name], texts, y)
        cv_by_control[control.name] = entity_f1[control.name]
        is_random_pick = np.fromiter((t in outcomes for t in ids), dtype=bool, count=len(ids))
        holdout_by_control[control.name] = entities.random_pick_holdout(loaded.models[control.name], texts, y,
                                                                        is_random_pick)
        trained[control.name] = {**trained.get(control.name, {}), "cv_labels": entity_f1[control.name]["n"],
                                 "cv_entity_f1": entity_f1[control.name]["f1"]}
    review += evaluation.disagreements(annotations, config)
    lap("cross_validation")
    # The headline control: the first single choice; without one, the first number to predict (its error);
    # without one, the first <Labels> (its entity F1).
    primary = next(iter(controls + numbers + spans), None)
    measures = "error" if primary in numbers else "entity_f1" if primary in spans else "accuracy"
    choice = reconsider(store, settings, options, primary, labeled.answers[primary.name],
                        loaded.models[primary.name]) if primary and measures == "accuracy" else None
    lap("feature_choice")

    pool_ids = sorted(t for t in all_ids if t not in labeled.labeled_tasks)
    stop_ids = _stop_set(store, pool_ids)
    k = _stop_kappa(store, name, spec, primary, loaded.models, stop_ids, settings) if primary else None
    lap("kappa")
    store.update_version_meta(name, controls=trained, progress=evaluation.nan_to_none({
        "cv": cv_by_control, "control_holdout": holdout_by_control, "kappa": k, "stop_set": len(stop_ids),
        "feature_choice": choice.to_dict() if choice else None, "recorded_at": time.time()}))

    points = evaluation.curve_points(store.versions(), outcomes, primary.name) if primary else []
    recent = evaluation.recent_control(points)
    latest_cv = cv_by_control.get(primary.name, {}) if primary else {}
    holdout = holdout_by_control.get(primary.name, {}) if primary else {}
    if holdout.get("accuracy") is not None and holdout["n"] >= evaluation.MIN_HEADLINE_HOLDOUT:
        accuracy, f1, accuracy_source = holdout["accuracy"], holdout["macro_f1"], "control share (held out)"
    else:
        accuracy, f1, accuracy_source = latest_cv.get("accuracy"), latest_cv.get("macro_f1"), "cross-validation"
    random_curve = _random_curve(store, spec, primary, loaded.models[primary.name], outcomes, settings) \
        if primary and measures == "accuracy" else {"points": []}
    lap("random_curve")
    fit = random_curve.get("fit")
    savings = estimators.labels_saved(
        estimators.CurveFit(**fit) if fit else None, meta.get("labeled_tasks", 0),
        accuracy if accuracy is not None else float("nan"),
        measured_up_to=max((p["n"] for p in random_curve.get("points", [])), default=None))
    if savings["random_labels"] is None and random_curve.get("reason"):
        savings["reason"] = random_curve["reason"]
    # A number's error (summary fields error, cv_error, holdout_error) or named entities' F1 (entity, ...):
    # held out once enough control tasks are labeled, else cross-validated.
    headline = {}
    if measures != "accuracy":
        field, value, what = (("error", "mae", "numbers to predict") if measures == "error"
                              else ("entity", "f1", "named entities"))
        held_out = holdout.get(value) is not None and holdout["n"] >= evaluation.MIN_HEADLINE_HOLDOUT
        best, accuracy_source = (holdout, "control share (held out)") if held_out else (latest_cv, "cross-validation")
        headline = {field: best, f"cv_{field}": latest_cv, f"holdout_{field}": holdout}
        latest_cv, holdout = {}, {}
        savings = {"reason": f"labels saved are measured for choices (accuracy), not yet for {what}"}
    # The plateau rule reads the unbiased held-out score; without a control share, cross-validation.
    # For a number to predict the score is its skill (1 - MAE / MAE of the mean): higher is better; for named
    # entities, their F1.
    kind = {"error": "skill", "entity_f1": "entity_f1"}.get(measures, "accuracy")
    series = f"holdout_{kind}" if meta.get("control_share") else f"cv_{kind}"
    rec = estimators.recommend(
        options.stop_rules(), labels=len(labeled.labeled_tasks), accuracy=accuracy, macro_f1_score=f1,
        scores=estimators.trailing_mean([p[series] if p[series] is not None else float("nan") for p in points],
                                      evaluation.PLATEAU_SMOOTHING),
        kappas=[p["kappa"] for p in points if p["kappa"] is not None],
        mae=headline.get("error", {}).get("mae"), entity_f1=headline.get("entity", {}).get("f1"),
    )
    queue = _queue_head(store, name, spec, config, loaded, options.head_size, settings, labeled.labeled_tasks)
    lap("queue")
    label_distribution = {c.name: task_type_of(c).distribution(labeled.answers[c.name].values())
                          for c in config.controls}
    summary = ProgressSummary.model_validate(evaluation.nan_to_none({
        "version": name,
        "updated_at": time.time() if now is None else now,
        "labeled_tasks": len(labeled.labeled_tasks),
        "annotations": len(annotations),
        "pool": len(pool_ids),
        "control": primary.name if primary else None,
        "strategy": meta.get("strategy"),
        "features": spec.name,
        "feature_choice": choice.to_dict() if choice else None,
        "control_share": meta.get("control_share"),
        "measures": measures,
        "accuracy": accuracy,
        "accuracy_source": accuracy_source,
        "macro_f1": f1,
        **headline,
        "recent_control": recent,
        "control_holdout": holdout,
        "cv": latest_cv,
        "curve": points,
        "random_curve": random_curve,
        "savings": savings,
        "kappa": k,
        "stop_set": len(stop_ids),
        "recommendation": rec.to_dict(),
        "rules": asdict(options.stop_rules()),
        "review": review,
        "queue": queue,
        "label_distribution": label_distribution,
        "entities": entity_f1,
        "throughput": evaluation.throughput(annotations, now),
        "control_outcomes": len(outcomes),
        "pending_controls": ProgressStore(store).pending_count(),
        "timings_s": timings,
    }))
    ProgressStore(store).set_summary(summary)
    store.update_version_meta(name, progress={**(store.version_meta(name) or {}).get("progress", {}),
                                              "recommendation": rec.action, "accuracy": summary.accuracy,
                                              "accuracy_source": accuracy_source, "savings": savings})
    log.info("project %s: %s — %s (%s)", store.pid, name, rec.action, rec.reason)
    return summary
