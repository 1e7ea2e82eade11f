"""Periodic work, run by every worker process but carried out by one per tick.

Lost webhooks are found by a reconcile every ``AL_RECONCILE_INTERVAL``
seconds, and a push that failed (Label Studio down or answering 500) is
retried, both through the normal coalesced ``refresh_project`` job.  A Redis
key with a TTL makes one worker do each tick, however many run.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from backend import project_options
from backend.labelstudio.client import resolve_credentials
from backend.settings import Settings
from backend.state.queueing import (
    PENDING_TTL,
    claim_scheduler_tick,
    job_queue,
    pending_key,
    request_low,
    request_refresh,
    request_sync,
)
from backend.state.store import ProjectStore, migrate, project_ids
from worker.refresh import training_overdue

log = logging.getLogger(__name__)

TICK_SECONDS = 5.0
ERROR_BACKOFF = 60.0  # seconds before a project whose refresh failed is caught up again


def has_label_studio(store: ProjectStore, settings: Settings) -> bool:
    creds = resolve_credentials(settings, store.config())
    return bool(creds and creds.key)


def behind(store: ProjectStore) -> bool:
    """Labels or pool changed since the current version, and nothing is queued or running for it."""
    if not store.exists() or store.r.exists(pending_key(store.prefix, store.pid)) or store.is_locked():
        return False
    current = store.current_version()
    meta = store.version_meta(current) if current else None
    return meta is None or meta.get("epochs") != list(store.epochs())


ORPHAN_AFTER = 30.0  # seconds a pending flag may stand without its job before it is cleared


def clear_orphaned_pending(store: ProjectStore, queue_name: str) -> bool:
    """Clear a ``refresh_pending`` flag whose job is gone; returns whether it did.

    The flag lets one event of a burst enqueue a job, and the job clears it
    when it starts.  A job lost at that moment (Redis restarted while the job
    started, the queue emptied by hand) leaves the flag standing for its TTL
    (10 min), and every event meanwhile is coalesced into a job that does
    not exist: the loop stalls.  A flag older than ``ORPHAN_AFTER`` with no
    refresh of the project queued or running is cleared.
    """
    key = pending_key(store.prefix, store.pid)
    ttl = store.r.ttl(key)
    if ttl is None or ttl < 0 or PENDING_TTL - ttl < ORPHAN_AFTER:
        return False
    q = job_queue(queue_name, store.r)
    marker = f"refresh-{store.pid}-"
    if any(j.startswith(marker) for j in q.get_job_ids()) or any(
            j.startswith(marker) for j in q.started_job_registry.get_job_ids()):
        return False
    store.r.delete(key)
    log.warning("project %s: a refresh was pending without a job (lost); cleared", store.pid)
    return True


def tick(r: redis.Redis, settings: Settings, now: float | None = None) -> list[tuple[int, str]]:
    """Enqueue what is due; returns ``(project, reason)`` pairs (empty if another worker had this tick)."""
    now = time.time() if now is None else now
    prefix = settings.key_prefix
    if not claim_scheduler_tick(r, prefix, TICK_SECONDS * 0.9):
        return []
    due = []
    for pid in project_ids(r, prefix):
        try:
            reason = _due(ProjectStore(r, prefix, pid), settings, now)
        except redis.RedisError:
            raise
        except Exception:  # noqa: BLE001 - one broken project must not stop the others' schedule
            log.exception("scheduler: project %s skipped this tick", pid)
            continue
        if reason:
            due.append((pid, reason))
    return due


def _due(store: ProjectStore, settings: Settings, now: float) -> str | None:
    """Enqueue the one thing due for a project, if any; returns what it was."""
    r, prefix, queue, pid = store.r, store.prefix, settings.queue_name, store.pid
    clear_orphaned_pending(store, queue)
    status = store.status()
    if behind(store) and now - (status.get("last_error_at") or 0) >= ERROR_BACKOFF:
        # Changes no published version has seen, and no job on it: a job
        # was lost (worker killed, Redis restarted). Catch up.
        return "catch up" if request_refresh(r, prefix, queue, pid, "catch up") else None
    current = store.current_version()
    options = project_options.resolve(settings, store.config().get("extra_params"))
    if current and training_overdue(store.version_meta(current), options.train_interval, now):
        return "train interval" if request_refresh(r, prefix, queue, pid, "train interval") else None
    if not has_label_studio(store, settings):
        return None
    interval = settings.reconcile_interval
    last_try = max(status.get("last_sync_at") or 0, status.get("last_sync_failed_at") or 0)
    if interval and now - last_try >= interval:
        # Its own low-priority job, not a refresh's first step: reading every
        # labeled task took 20 s at 5,000 labels, and labels saved meanwhile
        # waited for it.  It requests a refresh if it found anything.
        return "sync" if request_low(r, prefix, queue, pid, "reconcile") else None
    if current and store.ls_version() != current and now >= (status.get("push_retry_at") or 0):
        return "push" if request_refresh(r, prefix, queue, pid, "push retry") else None
    return None


def start_full_sync(r: redis.Redis, settings: Settings) -> list[int]:
    """On worker start: migrate old state, then reconcile every project fully (webhooks may have been lost)."""
    migrated = migrate(r, settings.key_prefix)
    if migrated:
        log.info("migrated the state of %d project(s) to the current layout", len(migrated))
    started = []
    for pid in project_ids(r, settings.key_prefix):
        store = ProjectStore(r, settings.key_prefix, pid)
        if has_label_studio(store, settings):
            request_sync(r, settings.key_prefix, settings.queue_name, pid, full=True, reason="worker start")
            started.append(pid)
        elif behind(store):
            request_refresh(r, settings.key_prefix, settings.queue_name, pid, "worker start: catch up")
    return started


def run_in_background(r: redis.Redis, settings: Settings, stop: threading.Event) -> threading.Thread:
    """A daemon thread that ticks until ``stop`` is set."""

    def loop() -> None:
        while not stop.wait(TICK_SECONDS):
            try:
                for pid, reason in tick(r, settings):
                    log.info("project %s: scheduled %s", pid, reason)
            except redis.RedisError as exc:  # Redis restarting: try again next tick
                log.warning("scheduler: Redis error %s", type(exc).__name__)

    thread = threading.Thread(target=loop, name="al-scheduler", daemon=True)
    thread.start()
    return thread
