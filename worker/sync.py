"""Bring the labeled set and the pool in Redis up to what Label Studio holds.

Webhooks can be lost (Label Studio only logs failed deliveries), so the
worker reconciles from Label Studio's API: fully on worker start, on
connection and on *Start Training*, and the labeled set alone on a schedule.  Label Studio is the truth for every task it lists: annotations it
no longer has are deleted here, and a full sync drops tasks it no longer has.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from backend.labelstudio.client import LabelStudioClient, resolve_credentials
from backend.labelstudio.schemas import AnnotationIn, compact_annotation
from backend.settings import Settings
from backend.state import head
from backend.state.store import CHANGED, NEW, ProjectStore

log = logging.getLogger(__name__)

CLOCK_MARGIN = timedelta(minutes=2)  # annotations changed this recently may be newer here than in the read


def client_for(store: ProjectStore, settings: Settings) -> LabelStudioClient | None:
    """Label Studio's client, or ``None`` without a usable URL and key (see ``resolve_credentials``)."""
    creds = resolve_credentials(settings, store.config())
    if creds is None or not creds.key:
        return None
    return LabelStudioClient(creds.url, creds.key, timeout=30.0)


CONFIRM_ONE_BY_ONE = 50  # more unconfirmed deletions than this: one incremental reconcile settles them all


def confirm_deletions(store: ProjectStore, client: LabelStudioClient) -> dict:
    """Ask Label Studio about annotations a deletion webhook named; restore those it still holds.

    A deletion only removes what Label Studio no longer has: a forged or
    stale ``ANNOTATIONS_DELETED`` is undone here, before the next training.
    A few ids are checked one by one (one small call each); a bulk deletion
    is settled by one incremental reconcile.
    """
    ids = store.take_unconfirmed_deletions(CONFIRM_ONE_BY_ONE + 1)
    if not ids:
        return {}
    if len(ids) > CONFIRM_ONE_BY_ONE:
        rest = store.take_unconfirmed_deletions(10**7)
        try:
            counts = reconcile(store, client, full=False, deleted=set(ids) | set(rest))
        except Exception:
            store.return_unconfirmed_deletions([*ids, *rest])
            raise
        return {"checked": len(ids) + len(rest), "restored": counts["annotations_written"]}
    restored = 0
    for i, ann_id in enumerate(ids):
        try:
            raw = client.annotation(ann_id)
        except Exception:
            store.return_unconfirmed_deletions(ids[i:])
            raise
        if raw is None or raw.get("project") != store.pid:  # another project's id proves nothing here
            store.delete_annotations([ann_id])  # a late create webhook may have brought it back
            continue
        ann = AnnotationIn.model_validate(raw)
        task_id = ann.task if isinstance(ann.task, int) else (ann.task or {}).get("id")
        if store.upsert_annotation(compact_annotation(ann, task_id)) in (NEW, CHANGED):
            restored += 1
    if restored:
        log.warning("project %s: %d annotation(s) named in a deletion webhook are still in Label Studio; restored",
                    store.pid, restored)
    return {"checked": len(ids), "restored": restored}


def _iso(t: datetime) -> str:
    """Label Studio's own timestamp format, so stored times compare as strings."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


TASK_BATCH = 1000


def reconcile(store: ProjectStore, client: LabelStudioClient, *, full: bool, deleted: set[int] = frozenset()) -> dict:
    """Apply Label Studio's annotations (and, when ``full``, its task list) to the store.

    Incremental: every labeled task through the export API, which costs in
    proportion to the labels, not the pool.  Full: every task, page by page,
    which also finds tasks added or deleted while webhooks were lost.
    Annotations Label Studio no longer has are deleted here, except those
    changed in the last ``CLOCK_MARGIN`` (a webhook may be ahead of the read)
    unless a deletion webhook named them (``deleted``).  Every annotation
    Label Studio lists is stored, whatever was deleted here before.
    """
    t0 = time.monotonic()
    now = datetime.now(timezone.utc)
    started, settled = _iso(now), _iso(now - CLOCK_MARGIN)
    # Snapshots taken before reading Label Studio: only what existed then can be
    # "missing" from its answer; anything a webhook adds meanwhile is kept.
    known_tasks = set(store.task_ids()) if full else set()
    held_here = {a["id"] for a in store.annotations() if (a.get("updated_at") or "") < settled or a["id"] in deleted}
    seen_tasks: set[int] = set()
    in_ls: set[int] = set()
    counts = {"tasks": 0, "annotations_written": 0, "annotations_removed": 0, "tasks_removed": 0}
    tasks = client.iter_tasks(store.pid) if full else client.labeled_tasks(store.pid)
    found: list[int] = []
    batch: list[tuple[int, dict]] = []
    for task in tasks:
        tid = task["id"]
        seen_tasks.add(tid)
        batch.append((tid, task.get("data") or {}))
        counts["tasks"] += 1
        if len(batch) >= TASK_BATCH:  # one round trip per batch; the status shows how far it got
            store.add_tasks(batch)
            batch = []
            store.set_status(stage_progress=f"sync: {counts['tasks']} tasks read")
        for raw in task.get("annotations") or []:
            ann = AnnotationIn.model_validate(raw)
            in_ls.add(ann.id)
            outcome = store.upsert_annotation(compact_annotation(ann, tid))
            if outcome in (NEW, CHANGED):
                counts["annotations_written"] += 1
            if outcome == NEW:
                found.append(tid)
    store.add_tasks(batch)
    head.note_labeled(store, found, timed=False)  # labels whose webhook was lost leave the head too
    gone = held_here - in_ls
    if gone:
        counts["annotations_removed"] = store.delete_annotations(gone)
    if full:
        stale = known_tasks - seen_tasks
        if stale:
            counts["tasks_removed"] = store.delete_tasks(stale)
    store.set_status(last_sync=started, last_sync_at=now.timestamp(), last_sync_full=full,
                     last_sync_counts=counts, last_sync_s=round(time.monotonic() - t0, 3))
    log.info("project %s: %s sync: %s", store.pid, "full" if full else "incremental", counts)
    return counts
