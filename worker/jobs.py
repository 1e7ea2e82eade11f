"""RQ job functions.  Plain module-level functions taking ids, never arrays.

The backend enqueues them by dotted name (``worker.jobs.refresh_project``)
without importing this package.  One ``refresh_project`` run is the whole
loop for a project: sync with Label Studio when asked, train and rank, push
the head of the ranking.  At most one runs per project at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from redis.exceptions import LockError, RedisError

from backend import project_options
from backend.labelstudio.client import LabelStudioError
from backend.settings import Settings, get_settings
from backend.state.queueing import low_pending_key, pending_key, request_low, request_refresh, topup_pending_key
from backend.state.store import ProjectStore, connect
from worker import shards
from worker.outcomes import record_before_drop
from worker.progress import record as record_progress
from worker.push import IncompletePushError, prune, push_current, top_up
from worker.refresh import build_version
from worker.sync import client_for, confirm_deletions, reconcile

log = logging.getLogger(__name__)

LOCK_WAIT = 5  # seconds to wait for a concurrent refresh before handing over


@contextmanager
def project_lock(store: ProjectStore, ttl: float) -> Iterator[bool]:
    """The project's lock, kept alive while the job runs.

    A short TTL renewed every ``ttl / 3`` seconds: a worker killed with
    SIGKILL holds the lock for at most ``ttl`` seconds, not for the length of
    the longest job.
    """
    lock = store.lock(timeout=ttl, blocking_timeout=LOCK_WAIT)
    if not lock.acquire():
        yield False
        return
    done = threading.Event()

    def renew() -> None:
        while not done.wait(ttl / 3):
            try:
                lock.extend(ttl, replace_ttl=True)
            except (LockError, RedisError):
                return

    threading.Thread(target=renew, name="al-lock", daemon=True).start()
    try:
        yield True
    finally:
        done.set()
        try:
            lock.release()
        except (LockError, RedisError):  # expired or Redis gone: nothing to release
            pass


def refresh_project(project_id: int, prefix: str | None = None) -> dict:
    """Sync (if requested), retrain and re-rank, then push; one run per project at a time."""
    settings = get_settings()
    prefix = prefix or settings.key_prefix
    r = connect(settings.redis_url)
    store = ProjectStore(r, prefix, project_id)
    # Events from now on schedule another run: none is lost while this one works.
    r.delete(pending_key(prefix, project_id))
    with project_lock(store, settings.lock_ttl) as locked:
        if not locked:
            request_refresh(r, prefix, settings.queue_name, project_id, "after concurrent refresh")
            return {"published": False, "reason": "another refresh is running; one more is queued"}
        try:
            return _refresh(store, settings)
        except Exception as exc:
            store.set_status(last_error=f"{type(exc).__name__}: {exc}", last_error_at=time.time())
            log.exception("project %s: refresh failed; the previous version keeps serving", project_id)
            raise


def _refresh(store: ProjectStore, settings) -> dict:
    r = store.r
    sync, force = store.take_requests()
    client = client_for(store, settings)
    summary: dict = {}
    errors: list[str] = []
    store.set_status(last_refresh_started=time.time(), stage="sync" if sync else "train")
    if sync and client is not None:
        try:
            summary["sync"] = reconcile(store, client, full=sync == "full")
        except LabelStudioError as exc:
            # Train on what the webhooks brought; the next run syncs again.
            store.request_sync(full=sync == "full")
            errors.append(f"sync: {exc}")
            summary["sync"] = {"error": str(exc)}
    if client is not None:
        try:
            summary["deletions"] = confirm_deletions(store, client)
        except LabelStudioError as exc:
            errors.append(f"confirming deletions: {exc}")
    else:  # nobody to ask: the webhook is all there is
        store.forget_unconfirmed_deletions()
    store.set_status(stage="train")
    summary["version"] = build_version(store, settings, force=force)
    if summary["version"].get("remote_error"):  # the last version keeps serving; /status shows it under "remote"
        errors.append(f"remote model: {summary['version']['remote_error']}")
    if summary["version"].get("published"):
        request_low(r, store.prefix, settings.queue_name, store.pid, "prune")
        if summary["version"].get("trained_in") == summary["version"].get("version"):
            request_low(r, store.prefix, settings.queue_name, store.pid, "evaluate")
    if client is not None and store.exists():
        store.set_status(stage="push")
        options = project_options.resolve(settings, store.config().get("extra_params"))
        try:
            summary["push"] = push_current(store, client, options, settings.max_text_chars)
        except (LabelStudioError, IncompletePushError) as exc:
            errors.append(f"push: {exc}")
            summary["push"] = {"error": str(exc)}
            store.set_status(push_retry_at=time.time() + settings.push_retry_delay)
    store.set_status(
        stage="idle",
        stage_progress=None,
        last_refresh_finished=time.time(),
        last_summary=summary,
        last_error="; ".join(errors) or None,
        **({"last_error_at": time.time()} if errors else {}),
    )
    return summary


def _low_priority_job(project_id: int, prefix: str | None, kind: str) -> tuple[Settings, ProjectStore]:
    """A low-priority job's settings and store; clears its pending flag so the next request enqueues again."""
    settings = get_settings()
    prefix = prefix or settings.key_prefix
    r = connect(settings.redis_url)
    r.delete(low_pending_key(prefix, project_id, kind))
    return settings, ProjectStore(r, prefix, project_id)


def prune_project(project_id: int, prefix: str | None = None) -> list[str]:
    """Low priority: delete old versions' predictions from Label Studio and their data from Redis.

    A version's metadata is kept (it is the project's history); its model,
    ranking and control set are freed once neither the backend nor Label
    Studio can still use them, so Redis stays bounded however long a
    project runs.
    """
    settings, store = _low_priority_job(project_id, prefix, "prune")
    client = client_for(store, settings)
    options = project_options.resolve(settings, store.config().get("extra_params"))
    deleted = prune(store, client, options.keep_versions, settings.prediction_hold_s) if client is not None else []
    in_use = set(store.pushed_versions()) | {store.current_version(), store.ls_version()}
    for info in store.versions():
        if info.name not in in_use:
            record_before_drop(store, settings, info.name)  # its control predictions (worker/outcomes.py)
            store.drop_version_data(info.name)
    return deleted


def evaluate_project(project_id: int, prefix: str | None = None) -> dict:
    """Low priority: cross-validated accuracy of the current models, added to the version's metadata.

    Kept off the refresh job so a new queue order reaches Label Studio
    without waiting for five extra fits.
    """
    settings, store = _low_priority_job(project_id, prefix, "evaluate")
    # cross-validation, learning curve, stopping signals, review list (worker/progress.py)
    summary = record_progress(store, settings)
    return {} if summary is None else {"version": summary.version, "accuracy": summary.accuracy}


def reconcile_project(project_id: int, prefix: str | None = None) -> dict:
    """Low priority: the scheduled incremental reconcile (``worker/sync.py``), then a refresh if it changed anything.

    It writes what Label Studio holds through the same atomic store calls
    as the webhooks, so it needs no project lock and never delays a
    refresh; what it changes bumps the epochs, and the refresh it requests
    (or the next one) trains on it.
    """
    settings, store = _low_priority_job(project_id, prefix, "reconcile")
    client = client_for(store, settings)
    if client is None or not store.exists():
        return {}
    before = store.epochs()
    try:
        counts = reconcile(store, client, full=False)
    except LabelStudioError as exc:
        store.set_status(last_sync_failed_at=time.time(), last_error=f"sync: {exc}", last_error_at=time.time())
        log.warning("project %s: scheduled reconcile failed (%s); retried after the interval", project_id, exc)
        return {"error": str(exc)}
    if store.epochs() != before:
        request_refresh(store.r, store.prefix, settings.queue_name, project_id, "reconcile found changes")
    return counts


def topup_project(project_id: int, prefix: str | None = None) -> dict:
    """Top up the head Label Studio serves (``worker/push.py``); never waits for a refresh.

    Runs on its own queue, which both worker processes take first, and
    without the project lock (a refresh of a large pool may hold it for a
    minute, which is exactly when the head runs low).  One top-up at a time.
    """
    settings = get_settings()
    prefix = prefix or settings.key_prefix
    r = connect(settings.redis_url)
    store = ProjectStore(r, prefix, project_id)
    r.delete(topup_pending_key(prefix, project_id))
    client = client_for(store, settings)
    if client is None:
        return {"topped_up": 0, "reason": "no Label Studio access"}
    lock = store.topup_lock(timeout=300)
    if not lock.acquire():
        return {"topped_up": 0, "reason": "another top-up is running"}
    try:
        options = project_options.resolve(settings, store.config().get("extra_params"))
        return top_up(store, client, settings.max_text_chars, options.min_confidence)
    finally:
        try:
            lock.release()
        except (LockError, RedisError):
            pass


def help_score_shards(project_id: int, token: str, prefix: str | None = None) -> int:
    """Score shards of a large pool that another worker's refresh is ranking (see ``worker/shards.py``).

    Enqueued by that refresh at the front of the queue; returns at once if
    the refresh already finished them all.
    """
    settings = get_settings()
    r = connect(settings.redis_url)
    return shards.work(ProjectStore(r, prefix or settings.key_prefix, project_id), token)
