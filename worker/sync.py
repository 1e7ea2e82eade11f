"""Bring the labeled set and the pool in Redis up to what Label Studio holds.

Webhooks can be lost (Label Studio only logs failed deliveries), so the
worker reconciles from Label Studio's API: fully on worker start and on
*Start Training*, incrementally (tasks updated since the last sync) on a
schedule.  Label Studio is the truth for every task it lists: annotations it
no longer has are deleted here, and a full sync drops tasks it no longer has.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from backend.config import Settings
from backend.ls_client import LabelStudioClient
from backend.store import CHANGED, NEW, ProjectStore
from backend.schemas import AnnotationIn
from backend.webhooks import compact_annotation

log = logging.getLogger(__name__)

CLOCK_MARGIN = timedelta(minutes=2)  # re-read a little before the last sync: clocks and commits drift


def client_for(store: ProjectStore, settings: Settings) -> LabelStudioClient | None:
    """Label Studio credentials: the environment first, else what ``/setup`` sent."""
    url, key = settings.label_studio_url, settings.label_studio_api_key.get_secret_value()
    if not url or not key:
        cfg = store.config()
        url, key = url or cfg.get("hostname") or "", key or cfg.get("access_token") or ""
    if not url or not key:
        return None
    return LabelStudioClient(url, key, timeout=30.0)


def _iso(t: datetime) -> str:
    """Label Studio's own timestamp format, so stored times compare as strings."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reconcile(store: ProjectStore, client: LabelStudioClient, *, full: bool) -> dict:
    """Apply Label Studio's tasks and annotations to the store; returns counts."""
    t0 = time.monotonic()
    status = store.status()
    since = None
    if not full and status.get("synced_until"):
        since = _iso(datetime.fromisoformat(status["synced_until"]) - CLOCK_MARGIN)
    now = datetime.now(timezone.utc)
    started, settled = _iso(now), _iso(now - CLOCK_MARGIN)
    # Snapshots taken before reading Label Studio: only what existed then can be
    # "missing" from its answer; anything a webhook adds meanwhile is kept.
    known_tasks = set(store.tasks()) if full else set()
    by_task: dict[int, set[int]] = {}
    for ann in store.annotations():
        if isinstance(ann.get("task"), int) and (ann.get("updated_at") or "") < settled:
            by_task.setdefault(ann["task"], set()).add(ann["id"])
    seen_tasks: set[int] = set()
    counts = {"tasks": 0, "annotations_written": 0, "annotations_removed": 0, "tasks_removed": 0}
    for task in client.iter_tasks(store.pid, updated_after=since):
        tid = task["id"]
        seen_tasks.add(tid)
        store.add_tasks([(tid, task.get("data") or {})])
        counts["tasks"] += 1
        held = set()
        for raw in task.get("annotations") or []:
            ann = AnnotationIn.model_validate(raw)
            held.add(ann.id)
            if store.upsert_annotation(compact_annotation(ann, tid)) in (NEW, CHANGED):
                counts["annotations_written"] += 1
        gone = by_task.get(tid, set()) - held
        if gone:
            counts["annotations_removed"] += store.delete_annotations(gone)
    if full:
        stale = known_tasks - seen_tasks
        if stale:
            counts["tasks_removed"] = store.delete_tasks(stale)
            orphans = [a for t in stale for a in by_task.get(t, ())]
            store.delete_annotations(orphans)
    store.set_status(synced_until=started, last_sync=started, last_sync_at=now.timestamp(), last_sync_full=full,
                     last_sync_counts=counts, last_sync_s=round(time.monotonic() - t0, 3))
    log.info("project %s: %s sync: %s", store.pid, "full" if full else "incremental", counts)
    return counts
