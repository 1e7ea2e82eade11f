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
import time

from backend.labelstudio.client import LabelStudioClient, LabelStudioError
from backend.labelstudio.label_config import LabelConfig
from backend.labelstudio.tasktypes import result_items, task_type_of
from backend.project_options import ProjectOptions
from backend.state import head
from backend.state.remote import RemotePredictions
from backend.state.store import ProjectStore
from backend.state.versions import load_version
from worker.pool_features import model_rows

log = logging.getLogger(__name__)

CHUNK = 1000
UNCERTAINTY_SAMPLING = "Uncertainty sampling"


class IncompletePushError(RuntimeError):
    """Label Studio holds a different number of predictions than were sent."""


# The ranking this process published last, per project, in score order: the
# push that follows in the same job takes its head from here instead of
# reading back and sorting every task's score (0.3-0.5 s at 100,000 tasks).
_PUBLISHED: dict[str, tuple[str, float, list[int], dict[int, float]]] = {}


def remember_ranking(store: ProjectStore, name: str, published_at: float, scores: dict[int, float]) -> None:
    """Keep the ranking ``build_version`` just published (``published_at`` tells two same-named versions apart)."""
    _PUBLISHED[store.base] = (name, published_at, sorted(scores, key=scores.__getitem__), scores)


def _ranking(store: ProjectStore, name: str) -> tuple[list[int], dict[int, float]]:
    """Task ids in score order, and their scores: from this process's copy when it is that very version."""
    kept = _PUBLISHED.get(store.base)
    if kept and kept[0] == name and kept[1] == (store.version_meta(name) or {}).get("published_at"):
        return kept[2], kept[3]
    ranking = store.ranking(name)
    return sorted(ranking, key=ranking.__getitem__), ranking


def head_predictions(store: ProjectStore, name: str, size: int, max_chars: int,
                     exclude: set[int] = frozenset(), min_confidence: float = 0.0) -> list[dict]:
    """The ``size`` best-ranked tasks that are still unlabeled (and not in ``exclude``), as predictions."""
    version = load_version(store, name)
    if version is None:
        return []
    order, ranking = _ranking(store, name)
    skip = {a["task"] for a in store.annotations() if not a.get("was_cancelled")} | set(exclude)
    order = [tid for tid in order if tid not in skip]
    head: list[int] = []
    while len(head) < size and order:  # tasks deleted since the ranking are not in the pool any more
        batch, order = order[:size - len(head) + 16], order[size - len(head) + 16:]
        head.extend(t for t, present in zip(batch, store.has_tasks(batch)) if present)
    head = head[:size]
    if version.meta.get("kind") == "remote":  # the remote model's own result is the pre-annotation
        results = RemotePredictions(store).results(head)
        return [{"task": tid, "result": results[tid], "score": ranking[tid], "model_version": name} for tid in head]
    results: dict[int, list[dict]] = {tid: [] for tid in head}
    config = LabelConfig.from_dict(store.config()["parsed"])
    for control in config.controls:
        model = version.models.get(control.name)
        if model is None:
            continue
        ids, X, _ = model_rows(store, version.spec, control, head, max_chars)
        if not ids:
            continue
        task_type = task_type_of(control)
        items = task_type.results(control, model, task_type.output(model, X), min_confidence)
        for tid, row in zip(ids, items):
            results[tid].extend(result_items(row))
    return [{"task": tid, "result": results[tid], "score": ranking[tid], "model_version": name} for tid in head]


def _import(store: ProjectStore, client: LabelStudioClient, predictions: list[dict]) -> tuple[list[int], set[int]]:
    """Import in chunks; returns the tasks sent and the ghosts found.

    Label Studio 1.23.2 refuses a whole batch (400) when one task is not in
    the project, and its default message names that task only inside a
    ``repr`` of the item (``... contains invalid "task" field: corresponding
    task ID couldn't be retrieved ...``; the fast-import flag says ``task ID
    <n> not found``, one task per answer).  So on such a 400 the worker asks
    Label Studio which of the chunk's tasks it holds, drops the others from
    the pool (ghosts: deleted while their webhook was lost) and resends the
    chunk at once.
    """
    sent: list[int] = []
    ghosts: set[int] = set()
    for start in range(0, len(predictions), CHUNK):
        chunk = predictions[start:start + CHUNK]
        try:
            client.import_predictions(store.pid, chunk)
        except LabelStudioError as exc:
            if exc.status != 400 or ('"task"' not in exc.body and "task ID" not in exc.body):
                raise
            ids = [p["task"] for p in chunk]
            missing = set(ids) - client.existing_task_ids(store.pid, ids)
            if not missing:
                raise
            store.delete_tasks(missing)
            ghosts |= missing
            log.warning("project %s: %d task(s) of the head are gone from Label Studio (a lost TASKS_DELETED?); "
                        "dropped from the pool and pushed again", store.pid, len(missing))
            chunk = [p for p in chunk if p["task"] not in missing]
            if chunk:
                client.import_predictions(store.pid, chunk)
        sent.extend(p["task"] for p in chunk)
    return sent, ghosts


def import_head(store: ProjectStore, client: LabelStudioClient, name: str, size: int, max_chars: int,
                exclude: set[int] = frozenset(), min_confidence: float = 0.0) -> list[int]:
    """Import the next ``size`` tasks of ``name``'s ranking (after ``exclude``); returns the tasks sent.

    Ghost tasks found on the way are replaced by the next tasks of the
    ranking, so the head keeps its size.
    """
    done: list[int] = []
    skip = set(exclude)
    for _ in range(3):  # a ghost in the replacements too is rare; a third one waits for the next push
        predictions = head_predictions(store, name, size - len(done), max_chars, exclude=skip,
                                       min_confidence=min_confidence)
        if not predictions:
            break
        sent, ghosts = _import(store, client, predictions)
        done.extend(sent)
        skip |= set(sent) | ghosts
        if not ghosts:
            break
    return done


def _already_held(client: LabelStudioClient, name: str, predictions: list[dict]) -> set[int]:
    """The head's tasks that hold a prediction of ``name`` already: what a half-done push did.

    One call per head task, only when retrying a push that died: slower than
    deleting the version and starting over, but that deletion could take
    away a prediction an annotator is looking at.
    """
    return {p["task"] for p in predictions if name in client.prediction_versions(p["task"])}


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
    plan = sized_head(store, options.head_size)
    before = client.model_versions(store.pid).get(name, 0) if retry else 0
    # A push that died half-way is completed, never deleted: an annotator may be looking at its predictions.
    already = _already_held(client, name, head_predictions(store, name, plan.size, max_chars)) if before else set()
    t_import = time.monotonic()
    pushed = import_head(store, client, name, plan.size - len(already), max_chars, exclude=already,
                         min_confidence=options.min_confidence)
    sent = len(pushed)
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
    head.start(store, name, [*already, *pushed], plan)  # before Label Studio serves it: every label then counts
    client.update_project(store.pid, **fields)
    duration = round(time.monotonic() - t0, 3)
    timings = {"predictions_s": round(t_import - t0, 3), "import_s": round(t_verify - t_import, 3),
               "verify_s": round(t_point - t_verify, 3), "point_s": round(time.monotonic() - t_point, 3)}
    store.set_push_state(name, {"state": "complete", "count": sent, "duration_s": duration, "at": time.time(),
                                "timings": timings, "head_plan": {"size": plan.size, "threshold": plan.threshold}})
    store.set_ls_version(name)
    log.info("project %s: pushed %s (%d predictions) in %.2fs", store.pid, name, sent, duration)
    return {"pushed": True, "version": name, "count": sent, "duration_s": duration, "timings": timings}


def sized_head(store: ProjectStore, base: int) -> head.HeadPlan:
    """The head for the measured labeling rate and the last refresh's duration (``backend/state/head.py``)."""
    status = store.status()
    started, finished = status.get("last_refresh_started"), status.get("last_refresh_finished")
    refresh_s = finished - started if started and finished and finished >= started else 0.0
    return head.plan_head(base, head.labeling_rate(store), refresh_s)


def top_up(store: ProjectStore, client: LabelStudioClient, max_chars: int, min_confidence: float = 0.0) -> dict:
    """Push the next slice of the served version's ranking when its head runs low.

    The served version (the one Label Studio's project points at) keeps its
    ranking in Redis; the tasks after those already pushed, in the same
    order and with their scores (higher than the head's), bring the head back
    to its planned size.  Runs beside a refresh (no project lock): it only
    adds predictions to a version that is already complete in Label Studio.
    """
    name = store.ls_version()
    if name is None or store.push_state(name).get("state") != "complete":
        return {"topped_up": 0, "reason": "no version served"}
    meta, left = head.remaining(store, name)
    if not meta or left >= int(meta[b"threshold"]):
        return {"topped_up": 0, "left": left}
    want = int(meta[b"size"]) - left
    sent = import_head(store, client, name, want, max_chars, exclude=head.pushed(store, name),
                       min_confidence=min_confidence)
    head.extend(store, name, sent)
    log.info("project %s: head of %s topped up with %d task(s) (%d were left)", store.pid, name, len(sent), left)
    return {"topped_up": len(sent), "left": left, "version": name}


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
