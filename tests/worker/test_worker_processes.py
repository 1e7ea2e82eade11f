"""``al-backend worker`` runs two real processes: refreshes never wait behind evaluation or pruning."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rq import Worker

from backend.state.queueing import JOB_SERIALIZER, job_queue
from tests.conftest import PREFIX, QUEUE, TEST_REDIS_URL, annotation_event, setup_body
from worker.main import ForkingWorker, ResidentWorker

REPO = Path(__file__).resolve().parents[2]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)
    return value


def test_refresh_starts_while_a_low_priority_job_runs(client, store, redis_conn, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AL_", "LABEL_STUDIO", "BASIC_AUTH"))}
    env.update(REDIS_URL=TEST_REDIS_URL, AL_KEY_PREFIX=PREFIX, AL_QUEUE=QUEUE, AL_WORKER_NICE="0")
    log = open(tmp_path / "worker.log", "wb")
    # A session of its own: if the worker does not stop in time, the test fails and kills the whole group,
    # so no process of this run keeps taking jobs from the next run's queues.
    proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], env=env, cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: len(Worker.all(connection=redis_conn)) == 2, 60, "two worker processes")
        # A slow low-priority job (as cross-validation at a 100k pool), then a label.
        slow = job_queue(QUEUE + "-low", redis_conn).enqueue("time.sleep", 30, job_timeout=60)
        _wait(lambda: slow.get_status(refresh=True) == "started", 30, "the slow job to start")
        client.post("/setup", json=setup_body())
        client.post("/webhook", json=annotation_event(1, 10, "good film", "pos"))
        t0 = time.monotonic()
        _wait(lambda: store.current_version(), 25, "a version built while the slow job runs")
        assert time.monotonic() - t0 < 25 and slow.get_status(refresh=True) == "started"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            raise
        finally:
            log.close()
    # The low-priority process stops with the parent (after the job in hand).
    _wait(lambda: not Worker.all(connection=redis_conn), 60, "both worker processes to stop")


def test_a_worker_stops_its_command_channel_at_once(redis_conn):
    """Stopping a worker stops its command-channel thread even when the thread reads the UNSUBSCRIBE reply first.

    RQ's ``unsubscribe`` sends UNSUBSCRIBE, then stops the thread; a thread
    that read the reply before that waited 60 s for a new subscription,
    and the worker's shutdown with it (``worker/main.py``).
    """
    for worker_class in (ResidentWorker, ForkingWorker):
        w = worker_class([job_queue(QUEUE, redis_conn)], connection=redis_conn, serializer=JOB_SERIALIZER)
        w.subscribe()
        w.pubsub.unsubscribe()  # what RQ sends first; the thread gets the CPU and reads the reply ...
        _wait(lambda w=w: not w.pubsub.subscribed, 10, "the command-channel thread to read the reply")
        t0 = time.monotonic()
        w.unsubscribe()  # ... before RQ asks it to stop
        assert time.monotonic() - t0 < 5, worker_class.__name__
        assert not w.pubsub_thread.is_alive()
