"""Record how a project is going, once per trained model version (low priority).

Runs in the ``evaluate_project`` job, after the cross-validation, on the
version that is current.  It keeps, under ``<project>:progress:*`` in Redis:

* ``pending``   -- per unlabeled task, the predictions of the versions whose
  random control share put it at the head of their queue (made before
  anyone labeled it);
* ``outcomes``  -- such a prediction next to the label, for tasks that were
  a control of the version serving when they were labeled: unbiased
  accuracy samples (``backend/progress/estimators.py``); these labeled control tasks
  also give the held-out accuracy and the random-selection curve
  (``random_curve``, cached);
* ``stop_set`` / ``stop_last`` -- a fixed seeded sample of the pool and the
  last model's predictions on it, for kappa between successive models;
* ``summary``   -- everything the dashboard, ``/status`` and ``/metrics``
  show, rebuilt from the above and the versions' metadata.

Each version's own figures also go into its metadata (``progress``), which
is kept forever, so the history survives the pruning of old versions' data.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
import orjson
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, cross_val_predict, learning_curve

from backend import project_options
from backend.labelstudio.label_config import LabelConfig
from backend.labelstudio.tasktypes import ChoicesControl
from backend.learning import featurizers
from backend.learning.labeled_set import _answer, build_labeled_set
from backend.learning.model import ChoicesClassifier, compact_columns
from backend.learning.versions import load_version, task_utility
from backend.progress import estimators
from backend.settings import Settings
from backend.state.store import ProjectStore
from worker.pool_features import control_features

log = logging.getLogger(__name__)

STOP_SET_SIZE = 500
MIN_RECENT_OUTCOMES = 30  # pool the newest versions' control outcomes until there are this many
MIN_RANDOM_LABELS = 40  # labeled control tasks needed before fitting the random-selection curve
MIN_HEADLINE_HOLDOUT = 20  # labeled control tasks before the held-out accuracy is the headline figure
MIN_HOLDOUT = 10  # labeled control tasks before the held-out estimate goes on the curve
SUSPICIOUS_PROBA = 0.1  # out-of-fold probability of the given label below which a label is listed
REVIEW_LIMIT = 50
PLATEAU_SMOOTHING = 3  # versions averaged before the plateau rule compares scores
PENDING_VERSIONS = 8  # predictions kept per unlabeled control task (the newest versions that had it)


def _key(store: ProjectStore, what: str) -> str:
    return store.key(f"progress:{what}")


def _single_controls(config: LabelConfig, models: dict) -> list[ChoicesControl]:
    return [c for c in config.controls if not c.multiple and c.name in models]


def _predict(store, spec, control, models, ids, settings) -> dict[int, str]:
    """The model's label for each readable task of ``ids``."""
    got, X, _ = control_features(store, spec, control, ids, settings.max_text_chars)
    if not got:
        return {}
    return dict(zip(got, (str(v) for v in models[control.name].predict(X))))


# -- control-share outcomes -------------------------------------------------------

def _label_times(annotations: list[dict]) -> dict[int, float]:
    """When each task was first labeled (its earliest kept annotation's ``updated_at``)."""
    out: dict[int, float] = {}
    for ann in annotations:
        t = _parse_time(ann.get("updated_at"))
        if t is not None and not ann.get("was_cancelled") and isinstance(ann.get("task"), int):
            out[ann["task"]] = min(t, out.get(ann["task"], t))
    return out


def _serving_timeline(store: ProjectStore) -> list[tuple[float, str]]:
    """``(since, version)`` of the versions annotators were served, oldest first.

    With Label Studio, the versions pushed to it (from when their push
    began); without, the versions as published in Redis.
    """
    pushed = store.r.zrange(store.key("push_order"), 0, -1, withscores=True)
    if pushed:
        return [(float(ts), name.decode()) for name, ts in pushed]
    out = []
    for info in store.versions():
        t = info.meta.get("published_at") or _parse_time(info.meta.get("created_at"))
        if t is not None:
            out.append((t, info.name))
    return sorted(out)


def _serving_at(timeline: list[tuple[float, str]], t: float) -> str | None:
    name = None
    for since, version in timeline:
        if since > t:
            break
        name = version
    return name


def _settle_outcomes(store: ProjectStore, labeled, controls: list[ChoicesControl], annotations: list[dict]) -> int:
    """Labeled tasks with pending predictions: an outcome when the task was a control of the version serving then.

    A task in an older version's control share may later be picked by the
    strategy of a newer one (it is uncertain, say); labeled then, it is not
    a random sample, so only the prediction of the version that served it
    counts.  Decided once that version was recorded (or its data is gone).
    """
    pending = {int(k): orjson.loads(v) for k, v in store.r.hgetall(_key(store, "pending")).items()}
    labeled_now = [t for t in pending if t in labeled.labeled_tasks]
    if not labeled_now:
        return 0
    times = _label_times(annotations)
    timeline = _serving_timeline(store)
    recorded = {n.decode() for n in store.r.smembers(_key(store, "pending_versions"))}
    outcomes, decided = {}, []
    for tid in labeled_now:
        serving = _serving_at(timeline, times[tid]) if tid in times else None
        entry = pending[tid].get(serving) if serving else None
        if entry is not None:
            truth = {c.name: str(labeled.answers[c.name][tid]) for c in controls if tid in labeled.answers[c.name]}
            outcomes[tid] = orjson.dumps({**entry, "served_by": serving, "truth": truth})
            decided.append(tid)
        elif serving is None or serving in recorded or not store.r.exists(store.key(f"control:{serving}")):
            decided.append(tid)  # not a control task of the serving version, or that cannot be known any more
    pipe = store.r.pipeline()
    if outcomes:
        pipe.hset(_key(store, "outcomes"), mapping=outcomes)
    if decided:
        pipe.hdel(_key(store, "pending"), *decided)
    pipe.execute()
    return len(outcomes)


def _record_pending(store, name, meta, spec, controls, models, head_size, settings) -> int:
    """A version's predictions for the random control tasks at the head of its queue.

    Only the head reaches annotators through Label Studio's ``/next``; the
    control tasks there were drawn uniformly from the pool, so whichever of
    them get labeled while this version serves are a random sample.  Kept
    per task and version (``_settle_outcomes`` picks the serving one); the
    prediction is attributed to the training that produced the model
    (``trained_in``).
    """
    control_ids = store.control_tasks(name)
    if not control_ids or not controls:
        return 0
    # score = position / ranked tasks, so the head is the scores below head_size / ranked (no full read)
    ids = sorted(control_ids)
    limit = head_size / max(1, meta.get("ranked") or len(ids))
    ids = [t for t, score in zip(ids, store.ranking_scores(name, ids)) if score is not None and score < limit]
    if not ids:
        return 0
    settled = store.r.hmget(_key(store, "outcomes"), ids)
    ids = [t for t, raw in zip(ids, settled) if raw is None]
    preds = {c.name: _predict(store, spec, c, models, ids, settings) for c in controls}
    current = dict(zip(ids, store.r.hmget(_key(store, "pending"), ids))) if ids else {}
    entry = {"v": meta.get("trained_in", name), "labels": meta.get("labeled_tasks", 0)}
    rows = {}
    for tid in ids:
        pred = {c: p[tid] for c, p in preds.items() if tid in p}
        if pred:
            versions = orjson.loads(current[tid]) if current.get(tid) else {}
            versions[name] = {**entry, "pred": pred}
            versions = dict(list(versions.items())[-PENDING_VERSIONS:])
            rows[tid] = orjson.dumps(versions)
    if rows:
        store.r.hset(_key(store, "pending"), mapping=rows)
    return len(rows)


def record_before_drop(store: ProjectStore, settings: Settings, name: str) -> bool:
    """Record a version's control predictions before the prune job frees its model (once per version).

    Trainings can follow each other faster than the low-priority evaluate
    job runs; annotators may have been served a version that is pruned
    before any evaluation saw it.  Cheap: the head's control tasks only.
    """
    done_key = _key(store, "pending_versions")
    if store.r.sismember(done_key, name) or not store.r.exists(store.key(f"control:{name}")):
        return False
    version = load_version(store, name)
    if version is not None and version.models and version.meta.get("kind") == "model":
        config = LabelConfig.from_dict(store.config()["parsed"])
        options = project_options.resolve(settings, store.config().get("extra_params"))
        _record_pending(store, name, version.meta, version.spec, _single_controls(config, version.models),
                        version.models, options.head_size, settings)
    store.r.sadd(done_key, name)
    return True


def _record_served_versions(store, current, config, head_size, settings) -> None:
    """Pending predictions of every version annotators may be served, once each.

    Several versions can be published between two evaluations (the
    evaluate job is coalesced); the one Label Studio points at and the
    others still pushed keep their data until pruned, so their control
    tasks are recorded too.
    """
    keep = set(store.pushed_versions()) | {current, store.ls_version()}
    done_key = _key(store, "pending_versions")
    for info in store.versions():
        if info.name not in keep or info.meta.get("kind") != "model" or store.r.sismember(done_key, info.name):
            continue
        version = load_version(store, info.name)
        if version is None or not version.models:
            continue
        controls = _single_controls(config, version.models)
        _record_pending(store, info.name, info.meta, version.spec, controls, version.models, head_size, settings)
        store.r.sadd(done_key, info.name)


def _outcomes(store: ProjectStore) -> dict[int, dict]:
    return {int(k): orjson.loads(v) for k, v in store.r.hgetall(_key(store, "outcomes")).items()}


# -- cross-validation, suspicious labels ------------------------------------------

def _cross_validate(X, y: list[str], C: float) -> tuple[dict, np.ndarray | None, np.ndarray | None]:
    """Out-of-fold probabilities: accuracy (mean and std over folds), macro-F1, and each label's probability.

    One ``cross_val_predict`` gives all three: a task's probability comes
    from a model that never saw it, so a very unlikely given label is worth
    a second look (Northcutt et al., "Confident Learning", JAIR 2021,
    https://arxiv.org/abs/1911.00068, use out-of-fold probabilities the same way).
    """
    y_arr = np.asarray(y, dtype=str)
    classes, counts = np.unique(y_arr, return_counts=True)
    folds = int(min(5, counts.min())) if counts.size else 0
    if classes.size < 2 or folds < 2:
        return {"n": len(y), "reason": "needs two labels with two examples each"}, None, None
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    Xc, _ = compact_columns(X)
    proba = cross_val_predict(LogisticRegression(C=C, max_iter=1000), Xc, y_arr, cv=cv, method="predict_proba")
    pred = classes[proba.argmax(axis=1)]
    fold_acc = [float(np.mean(pred[test] == y_arr[test])) for _, test in cv.split(Xc, y_arr)]
    given = proba[np.arange(len(y_arr)), np.searchsorted(classes, y_arr)]
    return {
        "n": len(y),
        "accuracy": float(np.mean(pred == y_arr)),
        "accuracy_std": float(np.std(fold_acc)),
        "folds": folds,
        "macro_f1": estimators.macro_f1(y_arr, pred),
    }, given, pred


def _control_cv(X, y: list[str], is_control: np.ndarray, C: float, folds: int = 5) -> dict:
    """Accuracy on the labeled random (control) tasks, each predicted by a model trained without it.

    Folds split the control tasks only; each fold's model trains on every
    other label (the strategy's and the other folds' controls).  The test
    tasks are a uniform sample of the pool, so the estimate is unbiased for
    a model trained on slightly fewer labels than the current one, and it
    uses every labeled control task at once: far less noisy than the few
    control outcomes a single version collects.
    """
    y_arr = np.asarray(y, dtype=str)
    ctl = np.flatnonzero(is_control)
    if ctl.size < folds:
        return {"n": int(ctl.size), "reason": f"{ctl.size} labeled control tasks; needs {folds}"}
    Xc, _ = compact_columns(X)
    pred = np.empty(ctl.size, dtype=object)
    for train_c, test_c in KFold(n_splits=folds, shuffle=True, random_state=0).split(ctl):
        train = np.ones(len(y_arr), dtype=bool)
        train[ctl[test_c]] = False
        if np.unique(y_arr[train]).size < 2:
            return {"n": int(ctl.size), "reason": "the training folds hold a single label"}
        model = LogisticRegression(C=C, max_iter=1000).fit(Xc[train], y_arr[train])
        pred[test_c] = model.predict(Xc[ctl[test_c]])
    correct = int(np.sum(pred == y_arr[ctl]))
    acc, lo, hi = estimators.accuracy_interval(correct, int(ctl.size))
    return {"n": int(ctl.size), "correct": correct, "accuracy": acc, "low": lo, "high": hi,
            "macro_f1": estimators.macro_f1(y_arr[ctl], list(pred))}


def suspicious_labels(given: np.ndarray, y: list[str], pred: np.ndarray) -> list[int]:
    """Positions of labels to review, least likely first.

    A label is suspicious when the out-of-fold model predicts another label
    and gives the given one less probability than tasks of that label
    usually get: below a third of the mean out-of-fold probability of its own
    label (a per-label threshold, as in confident learning, so a cautious
    model with few labels still flags its clearest contradictions), or
    below ``SUSPICIOUS_PROBA`` outright.
    """
    y_arr = np.asarray(y, dtype=str)
    own_mean = {label: float(given[y_arr == label].mean()) for label in np.unique(y_arr)}
    threshold = np.array([max(SUSPICIOUS_PROBA, own_mean[label] / 3) for label in y_arr])
    hit = (given < threshold) & (np.asarray(pred, dtype=str) != y_arr)
    return [int(i) for i in np.argsort(given, kind="stable") if hit[i]]


def _disagreements(annotations: list[dict], config: LabelConfig) -> list[dict]:
    """Tasks where annotators gave different answers, per control."""
    by_task: dict[int, list[dict]] = defaultdict(list)
    for ann in annotations:
        if not ann.get("was_cancelled") and isinstance(ann.get("task"), int):
            by_task[ann["task"]].append(ann)
    out = []
    for tid, anns in by_task.items():
        if len(anns) < 2:
            continue
        for control in config.controls:
            given = [a for a in (_answer(x, control) for x in anns) if a is not None]
            counts = Counter(",".join(sorted(a)) if isinstance(a, frozenset) else a for a in given)
            if len(counts) > 1:
                out.append({"task": tid, "control": control.name, "reason": "annotators disagree",
                            "answers": dict(counts)})
    return sorted(out, key=lambda d: d["task"])[:REVIEW_LIMIT]


# -- random-selection curve ---------------------------------------------------------

def _random_curve(store, spec, control, outcomes, settings) -> dict:
    """Learning curve of a model trained on random tasks only: the labeled control tasks.

    They are a uniform sample of the pool, so training on growing subsets
    of them and testing on the rest (``sklearn.model_selection.learning_curve``,
    repeated random splits) is what random selection would have achieved.
    Kept in Redis and recomputed only when the labeled control tasks change
    (they grow by the control share of the labels, so most versions reuse it).
    """
    truth = {t: o["truth"][control.name] for t, o in outcomes.items() if control.name in o.get("truth", {})}
    fingerprint = hashlib.sha1(orjson.dumps(sorted(truth.items()))).hexdigest()[:16]
    cached = store.r.get(_key(store, "random_curve"))
    if cached:
        cached = orjson.loads(cached)
        if cached.get("fingerprint") == fingerprint and cached.get("control") == control.name:
            return cached["curve"]
    ids, X, _ = control_features(store, spec, control, sorted(truth), settings.max_text_chars)
    y = np.asarray([truth[t] for t in ids], dtype=str)
    if len(ids) < MIN_RANDOM_LABELS or np.unique(y).size < 2:
        return {"n": len(ids), "points": [], "fit": None,
                "reason": f"{len(ids)} labeled random (control) tasks; the curve needs {MIN_RANDOM_LABELS}"}
    Xc, _ = compact_columns(X)
    cv = ShuffleSplit(n_splits=6, test_size=0.25, random_state=0)
    with warnings.catch_warnings():  # a small training split with one label fails: scored NaN, skipped below
        warnings.simplefilter("ignore", FitFailedWarning)
        sizes, _, test = learning_curve(
            LogisticRegression(C=ChoicesClassifier().C, max_iter=1000), Xc, y,
            train_sizes=np.linspace(0.2, 1.0, 5), cv=cv, error_score=np.nan,
        )
    points = []
    for n, scores in zip(sizes, test):
        s = scores[np.isfinite(scores)]
        if s.size:
            points.append({"n": int(n), "accuracy": float(s.mean()), "sem": float(s.std() / np.sqrt(s.size))})
    rises = estimators.curve_rises([(p["n"], p["accuracy"], p["sem"]) for p in points])
    fit = estimators.fit_learning_curve([p["n"] for p in points], [p["accuracy"] for p in points],
                                      [p["sem"] for p in points]) if rises else None
    curve = {"n": len(ids), "points": points, "fit": None if fit is None else asdict(fit),
             "reason": None if rises else "the random-selection curve is still flat within its noise"}
    store.r.set(_key(store, "random_curve"), orjson.dumps(
        {"fingerprint": fingerprint, "control": control.name, "curve": curve}))
    return curve


# -- stop set and kappa ---------------------------------------------------------------

def _stop_set(store: ProjectStore, pool_ids: list[int], seed: int = 0) -> list[int]:
    """A fixed sample of the pool, drawn once (seeded) and kept: the stop set of [1]_ in backend/progress/estimators.py."""
    raw = store.r.get(_key(store, "stop_set"))
    if raw:
        return orjson.loads(raw)
    rng = np.random.default_rng(seed)
    ids = sorted(int(t) for t in rng.choice(pool_ids, size=min(STOP_SET_SIZE, len(pool_ids)), replace=False)) \
        if pool_ids else []
    if ids:
        store.r.set(_key(store, "stop_set"), orjson.dumps(ids), nx=True)
    return orjson.loads(store.r.get(_key(store, "stop_set")) or b"[]")


def _stop_kappa(store, name, spec, control, models, stop_ids, settings) -> float | None:
    """Kappa between this model's and the previous model's predictions on the stop set."""
    preds = _predict(store, spec, control, models, stop_ids, settings)
    raw = store.r.get(_key(store, "stop_last"))
    last = orjson.loads(raw) if raw else None
    store.r.set(_key(store, "stop_last"), orjson.dumps(
        {"version": name, "control": control.name, "preds": {str(t): p for t, p in preds.items()}}))
    if not last or last.get("version") == name or last.get("control") != control.name:
        return None
    common = [t for t in preds if str(t) in last["preds"]]
    if not common:
        return None
    return estimators.kappa([last["preds"][str(t)] for t in common], [preds[t] for t in common])


# -- queue and throughput ---------------------------------------------------------------

def _queue_head(store, name, spec, config, loaded, head_size, settings, labeled_tasks: set[int]) -> dict:
    """What the head of the current queue is made of: random controls, uncertain tasks, diverse ones.

    The head as pushed to Label Studio: the first ``head_size`` tasks of the
    ranking that are still unlabeled (``worker/push.py``).
    """
    ranked = store.ranking(name)
    head = [t for t in sorted(ranked, key=ranked.get) if t not in labeled_tasks][:head_size]
    controls = store.control_tasks(name) & set(head)
    strategy_ids = [t for t in head if t not in controls]
    uncertain = 0
    geo = config.controls[0]
    if strategy_ids and loaded.models and loaded.quantiles.size:
        ids, X, _ = control_features(store, spec, geo, strategy_ids, settings.max_text_chars)
        probas = {c: m.predict_proba(X) for c, m in loaded.models.items() if c == geo.name}
        if probas:
            utility = task_utility(loaded.models, probas, X, loaded.centroid)
            top_quarter = loaded.quantiles[int(0.75 * (loaded.quantiles.size - 1))]
            uncertain = int(np.sum(utility >= top_quarter))
    return {"head": len(head), "control": len(controls), "uncertain": uncertain,
            "diverse": len(strategy_ids) - uncertain}


def _parse_time(value) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def throughput(annotations: list[dict], now: float | None = None) -> dict:
    """Annotations in the last hour and per hour over the last 24 hours (by ``updated_at``)."""
    now = time.time() if now is None else now
    ages = [now - t for t in (_parse_time(a.get("updated_at")) for a in annotations) if t is not None]
    last_hour = sum(1 for a in ages if 0 <= a < 3600)
    last_day = sum(1 for a in ages if 0 <= a < 86400)
    return {"last_hour": last_hour, "per_hour_24h": round(last_day / 24, 2)}


# -- assembling ------------------------------------------------------------------------------

def _curve(versions, outcomes, control: str) -> list[dict]:
    """One learning-curve point per trained version: labels used, control-share accuracy, CV."""
    by_version: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for o in outcomes.values():
        if control in o.get("pred", {}) and control in o.get("truth", {}):
            by_version[o["v"]].append((o["truth"][control], o["pred"][control]))
    points = []
    for info in versions:
        meta = info.meta
        if meta.get("kind") != "model" or meta.get("trained_in") != info.name:
            continue
        prog = meta.get("progress") or {}
        cv = (prog.get("cv") or {}).get(control) or {}
        hold = (prog.get("control_holdout") or {}).get(control) or {}
        pairs = by_version.get(info.name, [])
        correct = sum(t == p for t, p in pairs)
        acc, lo, hi = estimators.accuracy_interval(correct, len(pairs))
        points.append({
            "version": info.name,
            "labels": meta.get("labeled_tasks", 0),
            "control_n": len(pairs),
            "control_accuracy": None if not pairs else acc,
            "control_low": None if not pairs else lo,
            "control_high": None if not pairs else hi,
            "control_macro_f1": estimators.macro_f1(*zip(*pairs)) if pairs else None,
            "cv_accuracy": cv.get("accuracy"),
            "cv_accuracy_std": cv.get("accuracy_std"),
            "cv_macro_f1": cv.get("macro_f1"),
            "holdout_accuracy": hold.get("accuracy") if hold.get("n", 0) >= MIN_HOLDOUT else None,
            "holdout_low": hold.get("low") if hold.get("n", 0) >= MIN_HOLDOUT else None,
            "holdout_high": hold.get("high") if hold.get("n", 0) >= MIN_HOLDOUT else None,
            "holdout_n": hold.get("n", 0),
            "kappa": prog.get("kappa"),
        })
    return points


def _recent_control(points: list[dict]) -> dict | None:
    """Control-share accuracy of the newest versions, pooled back until ``MIN_RECENT_OUTCOMES`` samples."""
    n = correct = 0
    labels = []
    for p in reversed(points):
        if p["control_n"]:
            n += p["control_n"]
            correct += round(p["control_accuracy"] * p["control_n"])
            labels.append(p["labels"])
        if n >= MIN_RECENT_OUTCOMES:
            break
    if not n:
        return None
    acc, lo, hi = estimators.accuracy_interval(correct, n)
    return {"accuracy": acc, "low": lo, "high": hi, "n": n, "labels_from": min(labels), "labels_to": max(labels)}


def _nan_to_none(obj):
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def record(store: ProjectStore, settings: Settings, *, now: float | None = None) -> dict:
    """Compute and store the current version's progress figures and the project's summary.

    Returns the summary (``{}`` when the current version has no model yet).
    """
    name = store.current_version()
    meta = store.version_meta(name) if name else None
    if not meta or meta.get("kind") != "model":
        return {}
    loaded = load_version(store, name)
    if loaded is None:
        return {}
    config = LabelConfig.from_dict(store.config()["parsed"])
    options = project_options.resolve(settings, store.config().get("extra_params"))
    annotations = store.annotations()
    labeled = build_labeled_set(annotations, config)
    all_ids = store.task_ids()
    spec = featurizers.from_dict(meta["feature_spec"])
    controls = _single_controls(config, loaded.models)

    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now_ = time.perf_counter()
        timings[stage] = round(now_ - clock, 3)
        clock = now_

    _record_served_versions(store, name, config, options.head_size, settings)
    _settle_outcomes(store, labeled, controls, annotations)
    lap("outcomes")

    outcomes = _outcomes(store)
    cv_by_control, holdout_by_control, review = {}, {}, []
    for control in controls:
        answers = labeled.answers[control.name]
        ids, X, _ = control_features(store, spec, control, sorted(answers), settings.max_text_chars)
        y = [str(answers[t]) for t in ids]
        cv_by_control[control.name], given, pred = _cross_validate(X, y, ChoicesClassifier().C)
        is_control = np.fromiter((t in outcomes for t in ids), dtype=bool, count=len(ids))
        holdout_by_control[control.name] = _control_cv(X, y, is_control, ChoicesClassifier().C)
        if given is not None:
            for i in suspicious_labels(given, y, pred)[:REVIEW_LIMIT]:
                review.append({"task": ids[i], "control": control.name, "label": y[i], "predicted": str(pred[i]),
                               "proba_of_label": round(float(given[i]), 4),
                               "reason": "a model trained without it finds the label unlikely"})
    review += _disagreements(annotations, config)
    lap("cross_validation")

    primary = controls[0] if controls else None
    pool_ids = sorted(t for t in all_ids if t not in labeled.labeled_tasks)
    stop_ids = _stop_set(store, pool_ids)
    k = _stop_kappa(store, name, spec, primary, loaded.models, stop_ids, settings) if primary else None
    lap("kappa")
    store.update_version_meta(name, progress=_nan_to_none({
        "cv": cv_by_control, "control_holdout": holdout_by_control, "kappa": k, "stop_set": len(stop_ids),
        "recorded_at": time.time()}))

    points = _curve(store.versions(), outcomes, primary.name) if primary else []
    recent = _recent_control(points)
    latest_cv = cv_by_control.get(primary.name, {}) if primary else {}
    holdout = holdout_by_control.get(primary.name, {}) if primary else {}
    if holdout.get("accuracy") is not None and holdout["n"] >= MIN_HEADLINE_HOLDOUT:
        accuracy, f1, accuracy_source = holdout["accuracy"], holdout["macro_f1"], "control share (held out)"
    else:
        accuracy, f1, accuracy_source = latest_cv.get("accuracy"), latest_cv.get("macro_f1"), "cross-validation"
    random_curve = _random_curve(store, spec, primary, outcomes, settings) if primary else {"points": []}
    lap("random_curve")
    fit = random_curve.get("fit")
    savings = estimators.labels_saved(
        estimators.CurveFit(**fit) if fit else None, meta.get("labeled_tasks", 0),
        accuracy if accuracy is not None else float("nan"),
        measured_up_to=max((p["n"] for p in random_curve.get("points", [])), default=None))
    if savings["random_labels"] is None and random_curve.get("reason"):
        savings["reason"] = random_curve["reason"]
    # The plateau rule reads the unbiased held-out score; without a control share, cross-validation.
    series = "holdout_accuracy" if meta.get("control_share") else "cv_accuracy"
    rec = estimators.recommend(
        options.stop_rules(), labels=len(labeled.labeled_tasks), accuracy=accuracy, macro_f1_score=f1,
        scores=estimators.trailing_mean([p[series] if p[series] is not None else float("nan") for p in points],
                                      PLATEAU_SMOOTHING),
        kappas=[p["kappa"] for p in points if p["kappa"] is not None],
    )
    queue = _queue_head(store, name, spec, config, loaded, options.head_size, settings, labeled.labeled_tasks)
    lap("queue")
    label_distribution = {c.name: dict(Counter(
        ",".join(sorted(a)) if isinstance(a, frozenset) else str(a) for a in labeled.answers[c.name].values()))
        for c in config.controls}
    out = _nan_to_none({
        "version": name,
        "updated_at": time.time() if now is None else now,
        "labeled_tasks": len(labeled.labeled_tasks),
        "annotations": len(annotations),
        "pool": len(pool_ids),
        "control": primary.name if primary else None,
        "strategy": meta.get("strategy"),
        "control_share": meta.get("control_share"),
        "accuracy": accuracy,
        "accuracy_source": accuracy_source,
        "macro_f1": f1,
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
        "throughput": throughput(annotations, now),
        "control_outcomes": len(outcomes),
        "pending_controls": store.r.hlen(_key(store, "pending")),
        "timings_s": timings,
    })
    store.r.set(store.key(estimators.SUMMARY_KEY), orjson.dumps(out))
    store.update_version_meta(name, progress={**(store.version_meta(name) or {}).get("progress", {}),
                                              "recommendation": rec.action, "accuracy": out["accuracy"],
                                              "accuracy_source": accuracy_source, "savings": savings})
    log.info("project %s: %s — %s (%s)", store.pid, name, rec.action, rec.reason)
    return out
