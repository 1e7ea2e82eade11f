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

import orjson
import redis

from backend.state.store import ProjectStore

log = logging.getLogger(__name__)

KEY = "refusal"  # per project: {"route", "reason", "at"}
MAX_REASON = 2000  # a 1 MB config may produce a long message; keep the page readable


def _index(prefix: str) -> str:
    return f"{prefix}:refused"  # ids of projects with a refusal, including never set-up ones


def record(store: ProjectStore, route: str, reason: str) -> None:
    """Log a refusal at WARNING and keep it; a Redis failure here never hides the refusal itself."""
    log.warning("project %s: %s refused: %s", store.pid, route, reason)
    entry = {"route": route, "reason": reason[:MAX_REASON], "at": time.time()}
    try:
        pipe = store.r.pipeline()
        pipe.set(store.key(KEY), orjson.dumps(entry))
        pipe.sadd(_index(store.prefix), store.pid)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("project %s: could not keep the refusal in Redis (%s)", store.pid, type(exc).__name__)


def clear(store: ProjectStore) -> None:
    """The project was accepted again (``/setup`` succeeded)."""
    pipe = store.r.pipeline()
    pipe.delete(store.key(KEY))
    pipe.srem(_index(store.prefix), store.pid)
    pipe.execute()


def get(store: ProjectStore) -> dict | None:
    """The project's last refusal, or ``None``."""
    raw = store.r.get(store.key(KEY))
    return orjson.loads(raw) if raw else None


def refused_projects(r: redis.Redis, prefix: str) -> dict[int, dict]:
    """Every project with a refusal, by id (those Label Studio could not connect included)."""
    ids = sorted(int(x) for x in r.smembers(_index(prefix)))
    out = {}
    for pid in ids:
        entry = get(ProjectStore(r, prefix, pid))
        if entry:
            out[pid] = entry
    return out
