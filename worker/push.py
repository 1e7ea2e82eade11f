"""Make Label Studio's queue follow the current ranking.

Label Studio's uncertainty sampling serves, among unsolved tasks that have a
prediction of ``project.model_version``, the lowest ``score`` first.  So the
head of the ranking (``head_size`` tasks) is imported as predictions of the
current version, and only once they are all there does the project's
``model_version`` move to it, so the project never points at an incomplete
head.  A push that died half-way is completed, not deleted: its version is
the backend's current one, and Label Studio may already have stored
``/predict`` answers of it that an annotator has open.  Older versions are
pruned later by a low-priority job, and only once no annotator can still
submit against them (``prune``).
"""

from __future__ import annotations

import logging
import re
import time

import numpy as np

from backend.label_config import LabelConfig
from backend.ls_client import LabelStudioClient, LabelStudioError
from backend.project_options import ProjectOptions
from backend.store import ProjectStore
from backend.versions import choices_result, load_version
from worker.pool_features import control_features

log = logging.getLogger(__name__)

CHUNK = 1000
UNCERTAINTY_SAMPLING = "Uncertainty sampling"
_MISSING_TASK = re.compile(r"task ID (\d+)")


class IncompletePushError(RuntimeError):
    """Label Studio holds a different number of predictions than were sent."""


def head_predictions(store: ProjectStore, name: str, size: int, max_chars: int) -> list[dict]:
    """The ``size`` best-ranked tasks that are still unlabeled, as Label Studio predictions."""
    version = load_version(store, name)
    if version is None:
        return []
    ranking = store.ranking(name)
    labeled = {a["task"] for a in store.annotations() if not a.get("was_cancelled")}
    head = [tid for tid, _ in sorted(ranking.items(), key=lambda kv: kv[1]) if tid not in labeled][:size]
    results: dict[int, list[dict]] = {tid: [] for tid in head}
    config = LabelConfig.from_dict(store.config()["parsed"])
    for control in config.controls:
        model = version.models.get(control.name)
        if model is None:
            continue
        ids, X, _ = control_features(store, version.spec, control, head, max_chars)
        if not ids:
            continue
        proba = model.predict_proba(X)
        allowed = np.isin(model.classes_, control.labels)
        for tid, row in zip(ids, proba):
            item = choices_result(control, model.classes_, row, allowed)
            if item is not None:
                results[tid].append(item)
    return [{"task": tid, "result": results[tid], "score": ranking[tid], "model_version": name} for tid in head]


def _import(store: ProjectStore, client: LabelStudioClient, predictions: list[dict]) -> int:
    """Import in chunks; tasks Label Studio no longer has leave the pool and the chunk is resent."""
    sent = 0
    for start in range(0, len(predictions), CHUNK):
        chunk = predictions[start:start + CHUNK]
        for _ in range(5):
            try:
                client.import_predictions(store.pid, chunk)
                sent += len(chunk)
                break
            except LabelStudioError as exc:
                missing = {int(m) for m in _MISSING_TASK.findall(exc.body)} if exc.status == 400 else set()
                if not missing:
                    raise
                store.delete_tasks(missing)
                log.info("project %s: %d task(s) gone from Label Studio; dropped from the pool", store.pid, len(missing))
                chunk = [p for p in chunk if p["task"] not in missing]
    return sent


def _not_yet_held(client: LabelStudioClient, name: str, predictions: list[dict]) -> list[dict]:
    """The predictions whose task holds none of ``name`` yet: what a half-done push left to do.

    One call per head task, only when retrying a push that died: slower than
    deleting the version and starting over, but that deletion could take
    away a prediction an annotator is looking at.
    """
    return [p for p in predictions if name not in client.prediction_versions(p["task"])]


def push_current(store: ProjectStore, client: LabelStudioClient, options: ProjectOptions, max_chars: int) -> dict:
    """Push the current version's head and point the project at it (idempotent)."""
    name = store.current_version()
    if name is None:
        return {"pushed": False, "reason": "no version yet"}
    state = store.push_state(name)
    if state.get("state") == "complete" and store.ls_version() == name:
        return {"pushed": False, "reason": "already pushed", "version": name}
    t0 = time.monotonic()
    retry = state.get("state") in ("started", "failed")
    store.set_push_state(name, {"state": "started", "started_at": time.time()})
    predictions = head_predictions(store, name, options.head_size, max_chars)
    before = client.model_versions(store.pid).get(name, 0)
    if retry and before:
        predictions = _not_yet_held(client, name, predictions)
    t_import = time.monotonic()
    sent = _import(store, client, predictions)
    t_verify = time.monotonic()
    held = client.model_versions(store.pid).get(name, 0)
    if held < before + sent:
        store.set_push_state(name, {"state": "failed", "sent": sent, "held": held})
        raise IncompletePushError(f"Label Studio holds {held} predictions of {name}, {before} + {sent} "
                                  "were expected; retrying later")
    fields: dict = {"model_version": name}
    if options.set_sampling:
        fields["sampling"] = UNCERTAINTY_SAMPLING
    t_point = time.monotonic()
    client.update_project(store.pid, **fields)
    duration = round(time.monotonic() - t0, 3)
    timings = {"predictions_s": round(t_import - t0, 3), "import_s": round(t_verify - t_import, 3),
               "verify_s": round(t_point - t_verify, 3), "point_s": round(time.monotonic() - t_point, 3)}
    store.set_push_state(name, {"state": "complete", "count": sent, "duration_s": duration, "at": time.time(),
                                "timings": timings})
    store.set_ls_version(name)
    log.info("project %s: pushed %s (%d predictions) in %.2fs", store.pid, name, sent, duration)
    return {"pushed": True, "version": name, "count": sent, "duration_s": duration, "timings": timings}


def prunable(store: ProjectStore, keep: int, hold_s: float, now: float | None = None) -> list[str]:
    """The pushed versions ``prune`` may delete, oldest first.

    A version is protected while it is current (the backend's or Label
    Studio's pointer) and for ``hold_s`` seconds after it stopped being
    current: Label Studio's UI submits the id of the prediction it showed
    (``parent_prediction``) and refuses the annotation if it is gone, and a
    task stays locked to its annotator for ``TASK_LOCK_TTL``.  ``keep`` then
    counts only older versions: the newest ``keep`` of them stay too.
    """
    now = time.time() if now is None else now
    pushed = store.pushed_versions()  # oldest first
    live = {store.current_version(), store.ls_version()}
    until = store.current_until()
    for name, successor in zip(pushed, pushed[1:]):
        # Pushed before the stamps existed: Label Studio's pointer left it when its successor's push completed.
        if name not in until and store.push_state(successor).get("at"):
            until[name] = store.push_state(successor)["at"]
    older = [n for n in pushed if n not in live and n in until and until[n] < now - hold_s]
    return older[:-keep] if keep else older


def prune(store: ProjectStore, client: LabelStudioClient, keep: int, hold_s: float) -> list[str]:
    """Delete this backend's versions no annotator can still submit against (see ``prunable``)."""
    deleted = []
    for name in prunable(store, keep, hold_s):
        client.delete_model_version(store.pid, name)
        store.forget_push(name)
        deleted.append(name)
    if deleted:
        log.info("project %s: pruned %d old version(s) from Label Studio", store.pid, len(deleted))
    return deleted
