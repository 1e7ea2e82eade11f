"""Why the backend refused a project, kept in Redis for the dashboard and ``/status``.

Label Studio 1.23 shows none of the backend's error text: a refused
``/setup`` appears as "422 Client Error ... check the ML backend server
console logs", and a refused ``/predict`` only in Label Studio's own log.  So
every refusal is logged at WARNING by the serving process and kept here, per
project, where the dashboard lists it.  A successful ``/setup`` clears it.
"""

from __future__ import annotations

import logging
import time

import redis

from backend.state.store import ProjectStore, refused_project_ids

log = logging.getLogger(__name__)

MAX_REASON = 2000  # a 1 MB config may produce a long message; keep the page readable


def record(store: ProjectStore, route: str, reason: str) -> None:
    """Log a refusal at WARNING and keep it; a Redis failure here never hides the refusal itself."""
    log.warning("project %s: %s refused: %s", store.pid, route, reason)
    entry = {"route": route, "reason": reason[:MAX_REASON], "at": time.time()}
    try:
        store.set_refusal(entry)
    except redis.RedisError as exc:
        log.warning("project %s: could not keep the refusal in Redis (%s)", store.pid, type(exc).__name__)


def clear(store: ProjectStore) -> None:
    """The project was accepted again (``/setup`` succeeded)."""
    store.clear_refusal()


def get(store: ProjectStore) -> dict | None:
    """The project's last refusal, or ``None``."""
    return store.refusal()


def refused_projects(r: redis.Redis, prefix: str) -> dict[int, dict]:
    """Every project with a refusal, by id (those Label Studio could not connect included)."""
    out = {}
    for pid in refused_project_ids(r, prefix):
        entry = get(ProjectStore(r, prefix, pid))
        if entry:
            out[pid] = entry
    return out
