"""RQ job functions.  Plain module-level functions taking ids, never arrays.

The backend enqueues them by dotted name (``worker.jobs.refresh_project``)
without importing this package.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import LockError

from backend.config import get_settings
from backend.queueing import pending_key, request_refresh
from backend.store import ProjectStore, connect
from worker.refresh import build_version

log = logging.getLogger(__name__)

LOCK_TIMEOUT = 1800  # seconds a crashed worker can hold a project's lock
LOCK_WAIT = 5  # seconds to wait for a concurrent refresh before handing over


def refresh_project(project_id: int, prefix: str | None = None) -> dict:
    """Sync, retrain and re-rank one project; at most one runs per project at a time."""
    settings = get_settings()
    prefix = prefix or settings.key_prefix
    r = connect(settings.redis_url)
    store = ProjectStore(r, prefix, project_id)
    # Events from now on schedule another run: none is lost while this one works.
    r.delete(pending_key(prefix, project_id))
    lock = r.lock(store.key("lock"), timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_WAIT)
    if not lock.acquire():
        # Another worker is on it; make sure a run follows it.
        request_refresh(r, prefix, settings.queue_name, project_id, "after concurrent refresh")
        return {"published": False, "reason": "another refresh is running; one more is queued"}
    try:
        force = bool(r.getdel(store.key("force_train")))
        store.set_status(last_refresh_started=time.time())
        summary = build_version(store, settings, force=force)
        store.set_status(last_refresh_finished=time.time(), last_error=None, last_summary=summary)
        return summary
    except Exception as exc:
        store.set_status(last_error=f"{type(exc).__name__}: {exc}", last_error_at=time.time())
        log.exception("project %s: refresh failed; the previous version keeps serving", project_id)
        raise
    finally:
        try:
            lock.release()
        except LockError:  # expired while we worked: nothing to release
            pass
