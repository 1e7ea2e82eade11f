"""``al-backend worker``: a real RQ worker on the project's queues, plus the scheduler."""

from __future__ import annotations

import logging
import os
import threading

from rq import Queue, Worker

# Import the heavy modules before RQ forks a work horse per job.
import worker.jobs  # noqa: F401
from backend.config import Settings, get_settings
from backend.features import FeatureSpec
from backend.queueing import low_queue
from backend.ranking import _random_projection
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
    r = connect(settings.redis_url)
    _random_projection(FeatureSpec().n_features)  # built once here, inherited by every job's fork
    queues = [Queue(settings.queue_name, connection=r), Queue(low_queue(settings.queue_name), connection=r)]
    stop = threading.Event()
    if not burst:
        synced = start_full_sync(r, settings)
        log.info("worker on queues %s; full sync requested for %d project(s)", [q.name for q in queues], len(synced))
        run_in_background(r, settings, stop)
    try:
        return Worker(queues, connection=r).work(burst=burst, with_scheduler=False)
    finally:
        stop.set()
