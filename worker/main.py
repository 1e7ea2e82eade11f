"""``al-backend worker``: real RQ workers on the project's queues (two processes), plus the scheduler."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time

import redis
from rq import SimpleWorker, Worker
from threadpoolctl import threadpool_limits

# Import the heavy modules before RQ forks a work horse per job.
import worker.jobs  # noqa: F401
from backend.learning import featurizers
from backend.learning.spans import tokenize
from backend.selection.ranking import random_projection
from backend.settings import Settings, get_settings
from backend.state.queueing import JOB_SERIALIZER, job_queue, low_queue, topup_queue
from backend.state.store import connect
from worker.schedule import run_in_background, start_full_sync

log = logging.getLogger(__name__)

#: How long the command-channel thread of a worker blocks on Redis before it looks whether it was asked to stop (s).
COMMAND_POLL_S = 1.0


class _PromptCommandChannel:
    """RQ's command channel (stop a job, shut down), with a thread that notices a stop within ``COMMAND_POLL_S``.

    RQ reads the channel in redis-py's ``PubSubWorkerThread`` with
    ``sleep_time=60`` and stops it (``BaseWorker.unsubscribe``) by sending
    UNSUBSCRIBE, then ``thread.stop()``: that clears the thread's running
    flag and, in redis-py 8, joins it without a timeout.  When the thread
    reads Redis's reply to the UNSUBSCRIBE before the flag is cleared (a
    race it wins now and then on a busy machine), it loops once more, finds
    no subscription left and waits the whole ``sleep_time`` for one
    (``PubSub.get_message``): the worker then took 60 s to stop after its
    last job, and ``al-backend worker`` with it, since it waits for its
    low-priority process (see rq/rq#1613).  Commands still arrive at once (a
    message wakes the thread); only a stop is noticed at the next poll.
    """

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=COMMAND_POLL_S, daemon=True, exception_handler=self._pubsub_exception_handler)


class ResidentWorker(_PromptCommandChannel, SimpleWorker):
    """Runs its jobs in this process (RQ's ``SimpleWorker``) and stops within a second of being asked."""


class ForkingWorker(_PromptCommandChannel, Worker):
    """Forks a work horse per job (RQ's ``Worker``) and stops within a second of its job in hand."""


def run(settings: Settings | None = None, *, burst: bool = False) -> bool:
    """Process jobs until stopped (or until the queues are empty with ``burst``).

    Two processes: this one takes head top-ups, then refreshes; a forked
    child takes top-ups, then the low-priority jobs (evaluate, prune,
    reconcile), at a lower CPU priority still.  RQ never preempts a job,
    so with one process a label arriving while a cross-validation or a
    prune runs waited for it (4-17 s at a 100k pool); now refreshes never
    wait behind them.  ``burst`` (tests, benchmarks) drains every queue in
    this process.

    This process runs its jobs itself (RQ's ``SimpleWorker``) instead of
    forking a work horse per job, so what a refresh loaded stays for the
    next one: the pool's features (``worker/pool_features.py``).
    """
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
    for featurizer in (featurizers.get(name) for name in featurizers.FEATURIZERS):
        if featurizer.unavailable() or featurizer.costly:
            # Not installed: projects cannot choose it.  Costly (the image network, ~300 MB): loaded by the
            # first image project's refresh instead, so a text-only worker neither pays for it nor forks it.
            continue
        featurizer.warm_up()  # tables and weights, loaded once here and inherited by every job's fork
        if featurizer.sparse:
            random_projection(featurizer.n_features)  # likewise
    tokenize("")  # the span tagger's tokeniser builds its Unicode tables once (~0.2 s), inherited likewise
    name = settings.queue_name
    if burst:
        return _work(settings, [topup_queue(name), name, low_queue(name)], burst=True, resident=True)
    low = multiprocessing.get_context("fork").Process(
        target=_low_priority_process, args=(settings, [topup_queue(name), low_queue(name)]),
        name="al-worker-low", daemon=True)
    low.start()
    r = connect(settings.redis_url)
    stop = threading.Event()
    synced = start_full_sync(r, settings)
    log.info("worker on queues %s (low-priority process %s on %s); full sync requested for %d project(s)",
             [topup_queue(name), name], low.pid, [topup_queue(name), low_queue(name)], len(synced))
    run_in_background(r, settings, stop)
    try:
        return _work(settings, [topup_queue(name), name], burst=False, resident=True)
    finally:
        stop.set()
        if low.is_alive():
            low.terminate()
            low.join(15)


def _low_priority_process(settings: Settings, queue_names: list[str]) -> None:
    """The child's loop; it stops with the parent (SIGTERM from ``run``, or the parent gone)."""
    parent = os.getppid()

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os.kill(os.getpid(), signal.SIGTERM)  # RQ finishes the job in hand, then stops

    threading.Thread(target=orphaned, name="al-orphan-watch", daemon=True).start()
    if settings.low_priority_nice:
        # Cross-validation and pruning only use what the refreshes leave: at
        # the same niceness, a 5-fold cross-validation took a core 62 % of
        # the time while labels waited for their retraining.
        os.nice(settings.low_priority_nice)
    _work(settings, queue_names, burst=False)


def _work(settings: Settings, queue_names: list[str], *, burst: bool, resident: bool = False) -> bool:
    """Run RQ on ``queue_names``; ``resident``: jobs run in this process (no fork), keeping what they cache."""
    r = connect(settings.redis_url)
    queues = [job_queue(q, r) for q in queue_names]
    worker_class = ResidentWorker if resident else ForkingWorker
    while True:
        try:
            worked = worker_class(queues, connection=r, serializer=JOB_SERIALIZER).work(
                burst=burst, with_scheduler=False)
        except redis.RedisError as exc:
            if burst:
                raise
            log.warning("worker stopped on a Redis error (%s)", type(exc).__name__)
        if burst or _redis_answers(r):
            return worked if burst else True  # a requested stop (SIGTERM/SIGINT), not Redis
        # RQ gives up when Redis goes away mid-job; wait for it and start over.
        _wait_for_redis(r)
        log.info("Redis is back; restarting the worker")


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
