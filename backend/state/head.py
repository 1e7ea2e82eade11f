"""The pushed head of the queue: how much of it is left, and how big it must be.

Label Studio's uncertainty sampling serves only tasks with a prediction of
``project.model_version``; once annotators have labeled every task of the
pushed head, ``/next`` falls back to random tasks, silently.  So the backend
tracks, per pushed version, which tasks it pushed (``head:<v>``) and which
of them are still unlabeled (``head_left:<v>``).  Every new annotation
leaves the head (one pipeline, from the webhook or a sync); one on a task
outside the head of the version Label Studio serves is counted as *served
outside the head* (the head ran dry, or an annotator opened a task from the
Data Manager).  When fewer than the version's threshold are left, the
webhook asks for a top-up: the worker pushes the next slice of the same
ranking (``worker/push.py``), without waiting for the next training.

The head's size follows the measured labeling rate: enough tasks for the
annotators until a refresh lands, twice over, and never below the
configured ``head_size``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from backend.state.store import ProjectStore

LABEL_TIMES_KEPT = 200  # recent annotation times, for the labeling rate
SAFETY = 2.0  # head = rate x refresh time x SAFETY
MAX_FACTOR = 10  # a head is at most this many times the configured size


@dataclass(frozen=True)
class HeadPlan:
    size: int  # tasks to push with a version
    threshold: int  # top up when fewer unlabeled head tasks than this are left


def plan_head(base: int, rate_per_s: float, refresh_s: float) -> HeadPlan:
    """The head size and top-up threshold for a labeling rate and a refresh duration.

    While a refresh runs (``refresh_s``), annotators use ``rate_per_s x refresh_s``
    tasks; the head holds ``SAFETY`` times that, at least ``base`` (the
    configured ``head_size``) and at most ``MAX_FACTOR x base``.  A top-up is
    due when less than one refresh's worth (or a quarter of the head) is
    left, so the top-up lands before the head runs dry.
    """
    need = max(rate_per_s, 0.0) * max(refresh_s, 0.0)
    size = int(min(max(base, math.ceil(need * SAFETY)), base * MAX_FACTOR))
    threshold = int(min(size - 1, max(math.ceil(need * 1.5), size // 4, 1)))
    return HeadPlan(size=size, threshold=max(threshold, 1))


def labeling_rate(store: ProjectStore, window_s: float = 600.0, now: float | None = None) -> float:
    """Annotations per second over the recent ``window_s`` seconds (0 if fewer than two)."""
    now = time.time() if now is None else now
    times = [float(t) for t in store.r.lrange(store.key("label_times"), 0, -1)]
    recent = [t for t in times if now - t <= window_s]
    if len(recent) < 2:
        return 0.0
    span = max(now - min(recent), 1.0)
    return len(recent) / span


def start(store: ProjectStore, name: str, tasks: list[int], plan: HeadPlan) -> None:
    """Record the head pushed for ``name`` and the plan it was sized by."""
    pipe = store.r.pipeline()
    if tasks:
        pipe.sadd(store.key(f"head:{name}"), *tasks)
        pipe.sadd(store.key(f"head_left:{name}"), *tasks)
    pipe.hset(store.key(f"head_meta:{name}"), mapping={"size": plan.size, "threshold": plan.threshold})
    pipe.execute()


def extend(store: ProjectStore, name: str, tasks: list[int]) -> None:
    """Tasks a top-up added to ``name``'s head."""
    if not tasks:
        return
    pipe = store.r.pipeline()
    pipe.sadd(store.key(f"head:{name}"), *tasks)
    pipe.sadd(store.key(f"head_left:{name}"), *tasks)
    pipe.hincrby(store.key(f"head_meta:{name}"), "topped_up", len(tasks))
    pipe.hset(store.key(f"head_meta:{name}"), "last_topup_at", time.time())
    pipe.execute()


def pushed(store: ProjectStore, name: str) -> set[int]:
    return {int(t) for t in store.r.smembers(store.key(f"head:{name}"))}


def note_labeled(store: ProjectStore, task_ids: list[int], now: float | None = None, *, timed: bool = True) -> bool:
    """New annotations on ``task_ids``: they leave the served head; returns whether a top-up is due.

    ``timed``: they were made now (a webhook), so they count for the labeling
    rate; a sync finds annotations of the past and passes ``False``.
    """
    if not task_ids:
        return False
    now = time.time() if now is None else now
    pipe = store.r.pipeline()
    pipe.get(store.key("ls_version"))
    if timed:
        pipe.lpush(store.key("label_times"), *([repr(now)] * len(task_ids)))
        pipe.ltrim(store.key("label_times"), 0, LABEL_TIMES_KEPT - 1)
    raw = pipe.execute()[0]
    if raw is None:
        return False
    name = raw.decode()
    pipe = store.r.pipeline()
    for t in task_ids:
        pipe.srem(store.key(f"head_left:{name}"), t)
        pipe.sismember(store.key(f"head:{name}"), t)
    pipe.scard(store.key(f"head_left:{name}"))
    pipe.hget(store.key(f"head_meta:{name}"), "threshold")
    *pairs, left, threshold = pipe.execute()
    if threshold is None:  # pushed before heads were tracked: nothing to tell yet
        return False
    outside = sum(1 for i in range(0, len(pairs), 2) if not pairs[i + 1])
    if outside:
        pipe = store.r.pipeline()
        pipe.hincrby(store.key(f"head_meta:{name}"), "labeled_outside", outside)
        pipe.hset(store.key(f"head_meta:{name}"), "last_outside_at", now)
        pipe.execute()
    if left == 0:
        store.r.hsetnx(store.key(f"head_meta:{name}"), "ran_dry_at", now)
    return int(left) < int(threshold)


def remaining(store: ProjectStore, name: str) -> tuple[dict[bytes, bytes], int]:
    """A head's plan (``size``, ``threshold``, ...) and how many of its tasks are still unlabeled."""
    pipe = store.r.pipeline()
    pipe.hgetall(store.key(f"head_meta:{name}"))
    pipe.scard(store.key(f"head_left:{name}"))
    meta, left = pipe.execute()
    return meta, int(left)


def info(store: ProjectStore) -> dict | None:
    """How much of the served head is left, for ``/status`` and the dashboard."""
    name = store.ls_version()
    if name is None:
        return None
    pipe = store.r.pipeline()
    pipe.scard(store.key(f"head:{name}"))
    pipe.scard(store.key(f"head_left:{name}"))
    pipe.hgetall(store.key(f"head_meta:{name}"))
    pushed_n, left, meta = pipe.execute()
    meta = {k.decode(): float(v) if b"." in v else int(v) for k, v in meta.items()}
    return {"version": name, "pushed": pushed_n, "left": left, "labeling_rate_per_min": round(
        labeling_rate(store) * 60, 2), **meta, "served_outside_head": meta.get("labeled_outside", 0) > 0}
