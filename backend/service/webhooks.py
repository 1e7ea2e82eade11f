"""Record Label Studio webhook events in Redis and wake the worker.

Label Studio sends some events synchronously while an annotator saves, with a
1 s timeout, so this does only cheap Redis writes and at most one enqueue:
no training, no calls to Label Studio.  Events can be lost, repeated or
reordered; the writes are idempotent and order-safe (see ``store``), and the
worker reconciles with Label Studio's API for what never arrived.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from backend.labelstudio import schemas
from backend.labelstudio.label_config import UnsupportedConfigError, parse_label_config
from backend.metrics import WEBHOOKS
from backend.service import refusals
from backend.state import head
from backend.state.store import CHANGED, NEW, STALE, UNCHANGED, ProjectStore, epoch_of

log = logging.getLogger(__name__)

EVENT_MODELS: dict[str, type[BaseModel]] = {
    "ANNOTATION_CREATED": schemas.AnnotationEvent,
    "ANNOTATION_UPDATED": schemas.AnnotationEvent,
    "ANNOTATIONS_CREATED": schemas.AnnotationsCreatedEvent,
    "ANNOTATIONS_DELETED": schemas.AnnotationsDeletedEvent,
    "TASKS_CREATED": schemas.TasksCreatedEvent,
    "TASKS_DELETED": schemas.TasksDeletedEvent,
    "START_TRAINING": schemas.ProjectEvent,
    "PROJECT_UPDATED": schemas.ProjectEvent,
}


class MalformedEventError(ValueError):
    """A known event without the fields Label Studio always sends."""


def parse_event(body: Any) -> tuple[str, BaseModel | None]:
    """Validate a webhook body; unknown actions come back with ``None``."""
    if not isinstance(body, dict) or not isinstance(body.get("action"), str):
        raise MalformedEventError('a webhook body is a JSON object with a string "action"')
    action = body["action"]
    model = EVENT_MODELS.get(action)
    if model is None:
        return action, None
    try:
        return action, model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise MalformedEventError(f"{action}: {problems}") from None


def handle_event(
    action: str,
    event: BaseModel,
    store: ProjectStore,
    refresh: Callable[[str], bool],
    topup: Callable[[], bool] | None = None,
) -> str:
    """Apply one event to the project's state; returns a short description.

    Every event names its project with ``created_at``: an event of a
    recreated project first wipes the old one's state (``ProjectStore.claim``).
    """
    WEBHOOKS.labels(action).inc()
    if store.claim(epoch_of(event.project.created_at)):
        log.warning("project %s: Label Studio's project was recreated (new creation time); old state wiped",
                    store.pid)
    if isinstance(event, schemas.AnnotationEvent):
        task_id = event.annotation.task if isinstance(event.annotation.task, int) else None
        if task_id is None and event.task is not None:
            task_id = event.task.id
        if event.task is not None and event.task.id is not None:
            store.add_tasks([(event.task.id, event.task.data)])
        outcome = store.upsert_annotation(schemas.compact_annotation(event.annotation, task_id))
        if outcome == NEW and task_id is not None and head.note_labeled(store, [task_id]) and topup:
            topup()
        if outcome == STALE:
            return f"annotation {event.annotation.id} ignored (older than the one held)"
        if outcome == UNCHANGED:
            return f"annotation {event.annotation.id} unchanged"
        refresh("annotation")
        return f"annotation {event.annotation.id} recorded"
    if isinstance(event, schemas.AnnotationsCreatedEvent):
        tasks = [(t.id, t.data) for t in event.task if t.id is not None]
        store.add_tasks(tasks)
        changed, new_tasks = 0, []
        for a in event.annotation:
            task_id = a.task if isinstance(a.task, int) else (a.task or {}).get("id")
            outcome = store.upsert_annotation(schemas.compact_annotation(a, task_id))
            changed += outcome in (NEW, CHANGED)
            if outcome == NEW and task_id is not None:
                new_tasks.append(task_id)
        if head.note_labeled(store, new_tasks) and topup:
            topup()
        if changed:
            refresh("annotations created")
        return f"{len(event.annotation)} annotation(s) received ({changed} new or changed)"
    if isinstance(event, schemas.AnnotationsDeletedEvent):
        # Removed now; the worker asks Label Studio about each and restores what it still holds.
        n = store.delete_annotations((a.id for a in event.annotations), unconfirmed=True)
        if event.annotations:
            refresh("annotations deleted")
        return f"{len(event.annotations)} annotation(s) deleted ({n} were known)"
    if isinstance(event, schemas.TasksCreatedEvent):
        new = store.add_tasks((t.id, t.data) for t in event.tasks if t.id is not None)
        if new:
            refresh("tasks created")
        return f"{new} task(s) added to the pool"
    if isinstance(event, schemas.TasksDeletedEvent):
        n = store.delete_tasks(t.id for t in event.tasks)
        if n:
            refresh("tasks deleted")
        return f"{n} task(s) removed from the pool"
    if action == "START_TRAINING":
        # Retrain now, after a full reconcile with Label Studio (lost webhooks).
        store.request_training()
        store.request_sync(full=True)
        refresh("start training")
        return "training requested"
    if action == "PROJECT_UPDATED":
        return _project_updated(event, store, refresh)
    return "ignored"


def _project_updated(event: schemas.ProjectEvent, store: ProjectStore, refresh: Callable[[str], bool]) -> str:
    xml = event.project.label_config
    if not xml:
        return "no label config in the event"
    cfg = store.config()
    try:
        # A project whose model is another backend keeps any config (that backend predicts it): as at /setup.
        parsed = parse_label_config(xml, remote=bool((cfg.get("parsed") or {}).get("remote")))
    except UnsupportedConfigError as exc:
        store.set_status(last_error=f"label config changed to one this backend cannot serve: {exc}")
        refusals.record(store, "label config change (PROJECT_UPDATED)", f"unsupported label config: {exc}")
        return f"label config not supported: {exc}"
    if (refusals.get(store) or {}).get("reason", "").startswith("unsupported label config"):
        refusals.clear(store)  # the config Label Studio has now is served again
    if cfg.get("config_hash") == parsed.config_hash:
        return "label config unchanged"
    store.save_config({"schema": xml, "config_hash": parsed.config_hash, "parsed": parsed.to_dict()})
    refresh("label config changed")
    return "label config changed"
