"""Shared fixtures: a real Redis database of the tests' own, the app, a worker.

Like RQ's own suite, tests talk to a real Redis (``AL_TEST_REDIS_URL``,
default database 14 on 127.0.0.1:6379), flushed before and after each test.
"""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from backend.service.app import create_app
from backend.settings import Settings, get_settings
from backend.state.queueing import job_queue
from backend.state.store import ProjectStore, connect
from harness.jobs import run_burst
from harness.payloads import (  # noqa: F401  (re-exported for the tests)
    LABEL_CONFIG,
    PAYLOADS,
    annotation_event,
    payload,
    predict_body,
    setup_body,
    tasks_created,
)

TEST_REDIS_URL = os.environ.get("AL_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
PREFIX = "t"
QUEUE = "t-queue"


@pytest.fixture
def redis_conn():
    r = connect(TEST_REDIS_URL)
    try:
        r.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"the tests need a real Redis at {TEST_REDIS_URL}: {exc} (run `make redis`)")
    r.flushdb()
    yield r
    r.flushdb()


@pytest.fixture
def settings(monkeypatch, redis_conn) -> Settings:
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)
    monkeypatch.setenv("AL_KEY_PREFIX", PREFIX)
    monkeypatch.setenv("AL_QUEUE", QUEUE)
    monkeypatch.setenv("AL_MODEL_POLL_INTERVAL", "0")
    for var in ("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER",
                "BASIC_AUTH_PASS", "AL_WEBHOOK_TOKEN", "AL_FETCH_ALLOW_HOSTS", "AL_ALLOW_INSECURE"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def client(settings, redis_conn):
    with TestClient(create_app(settings, redis_conn)) as c:
        yield c


@pytest.fixture
def store(redis_conn) -> ProjectStore:
    return ProjectStore(redis_conn, PREFIX, 1)


def run_worker(redis_conn) -> int:
    """Run every queued job (main queue first, then the low-priority one) in this process.

    Returns how many jobs of the main queue ran.
    """
    q, low = job_queue(QUEUE, redis_conn), job_queue(QUEUE + "-low", redis_conn)
    topup = job_queue(QUEUE + "-topup", redis_conn)
    before = q.finished_job_registry.count + q.failed_job_registry.count
    run_burst([topup, q, low], redis_conn)
    return q.finished_job_registry.count + q.failed_job_registry.count - before


@pytest.fixture
def worker(redis_conn, settings):
    return lambda: run_worker(redis_conn)


def label_queue_head(client, store, worker, rounds: int, per_round: int, event_for, done: set[int] | None = None
                     ) -> set[int]:
    """Annotate round by round from the head of the current ranking, as Label Studio's ``/next`` serves it.

    ``event_for(annotation_id, task_id, updated_at)`` is the webhook body of
    one annotation; the worker (refresh, prune, evaluate) runs after each
    round.  Returns the labeled tasks (``done`` and the new ones).
    """
    from datetime import datetime, timezone

    done = set(done or ())
    ann = 0
    for _ in range(rounds):
        ranking = store.ranking(store.current_version())
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for tid in sorted((t for t in ranking if t not in done), key=ranking.get)[:per_round]:
            ann += 1
            assert client.post("/webhook", json=event_for(ann, tid, stamp)).status_code == 200
            done.add(tid)
        worker()
    return done
