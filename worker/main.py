"""``al-backend worker``: a real RQ worker on the project's queues, plus the scheduler."""

from __future__ import annotations

import logging
import os
import threading
import time

import redis

from rq import Worker
from threadpoolctl import threadpool_limits

# Import the heavy modules before RQ forks a work horse per job.
import worker.jobs  # noqa: F401
from backend.config import Settings, get_settings
from backend.features import FeatureSpec, warm_up
from backend.queueing import JOB_SERIALIZER, job_queue, low_queue
from backend.ranking import random_projection
from backend.store import connect
from worker.schedule import run_in_background, start_full_sync

log = logging.getLogger(__name__)


def run(settings: Settings | None = None, *, burst: bool = False) -> bool:
    """Process jobs until stopped (or until the queues are empty with ``burst``)."""
    settings = settings or get_settings()
    if settings.worker_nice:
        # Training is background work: on a shared machine the serving
        # processes (webhooks answered while an annotator saves) come first.
        os.nice(settings.worker_nice)
    if settings.worker_threads:
        # One BLAS/OpenMP thread per worker: on a machine shared with Label
        # Studio and the serving processes, threads fight for the same cores
        # (k-means 0.8 s -> 5.7 s measured under load); scale with workers.
        threadpool_limits(settings.worker_threads)
    r = connect(settings.redis_url)
    random_projection(FeatureSpec().n_features)  # built once here, inherited by every job's fork
    warm_up()  # the hasher's character tables, likewise
    queues = [job_queue(settings.queue_name, r), job_queue(low_queue(settings.queue_name), r)]
    stop = threading.Event()
    if not burst:
        synced = start_full_sync(r, settings)
        log.info("worker on queues %s; full sync requested for %d project(s)", [q.name for q in queues], len(synced))
        run_in_background(r, settings, stop)
    try:
        while True:
            try:
                worked = Worker(queues, connection=r, serializer=JOB_SERIALIZER).work(burst=burst, with_scheduler=False)
            except redis.RedisError as exc:
                if burst:
                    raise
                log.warning("worker stopped on a Redis error (%s)", type(exc).__name__)
            if burst or _redis_answers(r):
                return worked if burst else True  # a requested stop (SIGTERM/SIGINT), not Redis
            # RQ gives up when Redis goes away mid-job; wait for it and start over.
            _wait_for_redis(r)
            log.info("Redis is back; restarting the worker")
    finally:
        stop.set()


def _redis_answers(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.RedisError:
        return False


def _wait_for_redis(r: redis.Redis, max_sleep: float = 5.0) -> None:
    delay = 0.5
    while not _redis_answers(r):
        time.sleep(delay)
        delay = min(delay * 2, max_sleep)
