"""``al-backend worker``: a real RQ worker on the project's queue."""

from __future__ import annotations

import logging
import os

from rq import Queue, Worker

from backend.config import Settings, get_settings
from backend.store import connect

# Import the heavy modules before RQ forks a work horse per job.
import worker.jobs  # noqa: F401


def run(settings: Settings | None = None, *, burst: bool = False) -> bool:
    """Process jobs until stopped (or until the queue is empty with ``burst``)."""
    settings = settings or get_settings()
    if settings.worker_nice:
        # Training is background work: on a shared machine the serving
        # processes (webhooks answered while an annotator saves) come first.
        os.nice(settings.worker_nice)
    r = connect(settings.redis_url)
    queue = Queue(settings.queue_name, connection=r)
    logging.getLogger(__name__).info("worker listening on queue %s", settings.queue_name)
    return Worker([queue], connection=r).work(burst=burst, with_scheduler=False)
