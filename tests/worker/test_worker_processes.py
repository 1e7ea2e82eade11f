"""``al-backend worker`` runs two real processes: refreshes never wait behind evaluation or pruning."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rq import Worker

from backend.state.queueing import job_queue
from tests.conftest import PREFIX, QUEUE, TEST_REDIS_URL, annotation_event, setup_body

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
    proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], env=env, cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT)
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
        proc.wait(30)
    # The low-priority process stops with the parent (after the job in hand).
    _wait(lambda: not Worker.all(connection=redis_conn), 60, "both worker processes to stop")
