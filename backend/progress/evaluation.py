"""How a project is going, computed from what the worker recorded: pure functions, no I/O.

The evaluate job (``worker/progress.py``) reads Redis, calls these and
writes the results back; the estimators and stopping rules they rely on are
in ``backend/progress/estimators.py``.  Every model fitted here is a
``sklearn.base.clone`` of the project's own estimator, so the figures are
those of the model that serves.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, learning_curve
from sklearn.model_selection import cross_validate as sk_cross_validate

from backend.labelstudio.label_config import LabelConfig
from backend.labelstudio.tasktypes import task_type_of
from backend.learning.labeled_set import _answer
from backend.progress import estimators

MIN_RECENT_OUTCOMES = 30  # pool the newest versions' control outcomes until there are this many
MIN_RANDOM_LABELS = 40  # labeled control tasks needed before fitting the random-selection curve
MIN_HEADLINE_HOLDOUT = 20  # labeled control tasks before the held-out accuracy is the headline figure
MIN_HOLDOUT = 10  # labeled control tasks before the held-out estimate goes on the curve
SUSPICIOUS_PROBA = 0.1  # out-of-fold probability of the given label below which a label is listed
REVIEW_LIMIT = 50
PLATEAU_SMOOTHING = 3  # versions averaged before the plateau rule compares scores


# -- when tasks were labeled, and by which version they were served ----------------------

def parse_time(value) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def label_times(annotations: list[dict]) -> dict[int, float]:
    """When each task was first labeled (its earliest kept annotation's ``updated_at``)."""
    out: dict[int, float] = {}
    for ann in annotations:
        t = parse_time(ann.get("updated_at"))
        if t is not None and not ann.get("was_cancelled") and isinstance(ann.get("task"), int):
            out[ann["task"]] = min(t, out.get(ann["task"], t))
    return out


def serving_at(timeline: list[tuple[float, str]], t: float) -> str | None:
    """The version serving at time ``t``: the last of ``(since, version)`` (oldest first) that began by then."""
    name = None
    for since, version in timeline:
        if since > t:
            break
        name = version
    return name


# -- cross-validation, suspicious labels -------------------------------------------------

def cross_validate(estimator: BaseEstimator, X, y: list[str]) -> tuple[dict, np.ndarray | None, np.ndarray | None]:
    """Out-of-fold probabilities: accuracy (mean and std over folds), macro-F1, and each label's probability.

    One stratified k-fold run of a clone of the project's own estimator
    gives all three: a task's probability comes from a model that never saw
    it, so a very unlikely given label is worth a second look (Northcutt et
    al., "Confident Learning", JAIR 2021, https://arxiv.org/abs/1911.00068,
    use out-of-fold probabilities the same way).  ``fold_accuracy`` is the
    mean of the folds' accuracies, what ``cross_val_score`` reports.
    """
    y_arr = np.asarray(y, dtype=str)
    classes, counts = np.unique(y_arr, return_counts=True)
    folds = int(min(5, counts.min())) if counts.size else 0
    if classes.size < 2 or folds < 2:
        return {"n": len(y), "reason": "needs two labels with two examples each"}, None, None
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    run = sk_cross_validate(clone(estimator), X, y_arr, cv=cv, return_estimator=True, return_indices=True)
    proba = np.zeros((len(y_arr), classes.size))
    for model, test in zip(run["estimator"], run["indices"]["test"]):
        # every training fold holds every label (stratified, folds <= the rarest label's count)
        proba[np.ix_(test, np.searchsorted(classes, model.classes_))] = model.predict_proba(X[test])
    pred = classes[proba.argmax(axis=1)]
    given = proba[np.arange(len(y_arr)), np.searchsorted(classes, y_arr)]
    return {
        "n": len(y),
        "accuracy": float(np.mean(pred == y_arr)),
        "accuracy_std": float(np.std(run["test_score"])),
        "fold_accuracy": float(np.mean(run["test_score"])),
        "folds": folds,
        "macro_f1": estimators.macro_f1(y_arr, pred),
    }, given, pred


def random_pick_holdout(estimator: BaseEstimator, X, y: list[str], is_random_pick: np.ndarray, folds: int = 5) -> dict:
    """Accuracy on the labeled random (control) tasks, each predicted by a model trained without it.

    Folds split the control tasks only; each fold's model trains on every
    other label (the strategy's and the other folds' controls).  The test
    tasks are a uniform sample of the pool, so the estimate is unbiased for
    a model trained on slightly fewer labels than the current one, and it
    uses every labeled control task at once: far less noisy than the few
    control outcomes a single version collects.
    """
    y_arr = np.asarray(y, dtype=str)
    ctl = np.flatnonzero(is_random_pick)
    if ctl.size < folds:
        return {"n": int(ctl.size), "reason": f"{ctl.size} labeled control tasks; needs {folds}"}
    pred = np.empty(ctl.size, dtype=object)
    for _, test_c in KFold(n_splits=folds, shuffle=True, random_state=0).split(ctl):
        train = np.ones(len(y_arr), dtype=bool)
        train[ctl[test_c]] = False
        if np.unique(y_arr[train]).size < 2:
            return {"n": int(ctl.size), "reason": "the training folds hold a single label"}
        model = clone(estimator).fit(X[train], y_arr[train])
        pred[test_c] = model.predict(X[ctl[test_c]])
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


def disagreements(annotations: list[dict], config: LabelConfig) -> list[dict]:
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
            counts = Counter(task_type_of(control).answer_key(a) for a in given)
            if len(counts) > 1:
                out.append({"task": tid, "control": control.name, "reason": "annotators disagree",
                            "answers": dict(counts)})
    return sorted(out, key=lambda d: d["task"])[:REVIEW_LIMIT]


# -- random-selection curve ----------------------------------------------------------------

def random_curve(estimator: BaseEstimator, X, y: np.ndarray) -> dict:
    """Learning curve of a model trained on random tasks only: the labeled control tasks ``X``, ``y``.

    They are a uniform sample of the pool, so training a clone of the
    project's estimator on growing subsets of them and testing on the rest
    (``sklearn.model_selection.learning_curve``, repeated random splits) is
    what random selection would have achieved.
    """
    if len(y) < MIN_RANDOM_LABELS or np.unique(y).size < 2:
        return {"n": len(y), "points": [], "fit": None,
                "reason": f"{len(y)} labeled random (control) tasks; the curve needs {MIN_RANDOM_LABELS}"}
    cv = ShuffleSplit(n_splits=6, test_size=0.25, random_state=0)
    with warnings.catch_warnings():  # a small training split with one label fails: scored NaN, skipped below
        warnings.simplefilter("ignore", FitFailedWarning)
        sizes, _, test = learning_curve(
            clone(estimator), X, y, train_sizes=np.linspace(0.2, 1.0, 5), cv=cv, error_score=np.nan,
        )
    points = []
    for n, scores in zip(sizes, test):
        s = scores[np.isfinite(scores)]
        if s.size:
            points.append({"n": int(n), "accuracy": float(s.mean()), "sem": float(s.std() / np.sqrt(s.size))})
    rises = estimators.curve_rises([(p["n"], p["accuracy"], p["sem"]) for p in points])
    fit = estimators.fit_learning_curve([p["n"] for p in points], [p["accuracy"] for p in points],
                                        [p["sem"] for p in points]) if rises else None
    return {"n": len(y), "points": points, "fit": None if fit is None else asdict(fit),
            "reason": None if rises else "the random-selection curve is still flat within its noise"}


# -- throughput, learning curve, headline figures ------------------------------------------

def throughput(annotations: list[dict], now: float | None = None) -> dict:
    """Annotations in the last hour and per hour over the last 24 hours (by ``updated_at``)."""
    now = time.time() if now is None else now
    ages = [now - t for t in (parse_time(a.get("updated_at")) for a in annotations) if t is not None]
    last_hour = sum(1 for a in ages if 0 <= a < 3600)
    last_day = sum(1 for a in ages if 0 <= a < 86400)
    return {"last_hour": last_hour, "per_hour_24h": round(last_day / 24, 2)}


def curve_points(versions, outcomes, control: str) -> list[dict]:
    """One learning-curve point per trained version: labels used, control-share accuracy, CV, held out.

    Choices' accuracy, a number's error (``mae``, ``skill``) or named
    entities' F1, whichever the control's recorded figures hold.
    """
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
        numbers = "mae" in cv or "mae" in hold  # a number to predict: its figures are errors
        spans = "f1" in cv or "f1" in hold  # named entities: entity-level F1 (``progress/entities.py``)
        if numbers:
            pairs = []  # a predicted number is never exactly the label: no "accuracy" of the control outcomes
        correct = sum(t == p for t, p in pairs)
        acc, lo, hi = estimators.accuracy_interval(correct, len(pairs))
        held = hold.get("n", 0) >= MIN_HOLDOUT
        held_accuracy = held and not numbers and not spans
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
            "holdout_accuracy": hold.get("accuracy") if held else None,
            "holdout_low": hold.get("low") if held_accuracy else None,
            "holdout_high": hold.get("high") if held_accuracy else None,
            "holdout_n": hold.get("n", 0),
            "kappa": prog.get("kappa"),
            "cv_mae": cv.get("mae"),
            "cv_skill": cv.get("skill"),
            "holdout_mae": hold.get("mae") if held else None,
            "holdout_skill": hold.get("skill") if held else None,
            "holdout_mae_low": hold.get("low") if held and numbers else None,
            "holdout_mae_high": hold.get("high") if held and numbers else None,
            "cv_entity_f1": cv.get("f1"),
            "holdout_entity_f1": hold.get("f1") if held else None,
            "holdout_entity_f1_low": hold.get("low") if held and spans else None,
            "holdout_entity_f1_high": hold.get("high") if held and spans else None,
        })
    return points


def recent_control(points: list[dict]) -> dict | None:
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


def nan_to_none(obj):
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    return obj
