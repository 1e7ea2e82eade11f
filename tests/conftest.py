"""Shared fixtures: a real Redis database of the tests' own, the app, a worker.

Like RQ's own suite, tests talk to a real Redis (``AL_TEST_REDIS_URL``,
default database 14 on 127.0.0.1:6379), flushed before and after each test.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from rq import SimpleWorker

from backend.queueing import JOB_SERIALIZER, job_queue

from backend.app import create_app
from backend.config import Settings, get_settings
from backend.store import ProjectStore, connect

TEST_REDIS_URL = os.environ.get("AL_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
PAYLOADS = Path(__file__).parent / "fixtures" / "label-studio-payloads"
PREFIX = "t"
QUEUE = "t-queue"


def payload(name: str) -> dict:
    """A fresh copy of a body a real Label Studio 1.23.2 sent."""
    return orjson.loads((PAYLOADS / f"{name}.json").read_bytes())


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
    SimpleWorker([topup, q, low], connection=redis_conn, serializer=JOB_SERIALIZER).work(burst=True)
    return q.finished_job_registry.count + q.failed_job_registry.count - before


@pytest.fixture
def worker(redis_conn, settings):
    return lambda: run_worker(redis_conn)


LABEL_CONFIG = payload("setup")["schema"]


def setup_body(pid: int = 1, schema: str | None = None) -> dict:
    """The captured /setup body, without a reachable Label Studio (the worker then neither syncs nor pushes)."""
    body = payload("setup")
    body["project"] = f"{pid}.1795483663"
    body["hostname"] = ""
    if schema is not None:
        body["schema"] = schema
    return body


def annotation_event(
    ann_id: int,
    task_id: int,
    text: str,
    label: str | list[str],
    *,
    pid: int = 1,
    action: str = "ANNOTATION_CREATED",
    updated_at: str = "2026-11-24T01:29:11.440555Z",
    from_name: str = "sentiment",
    cancelled: bool = False,
) -> dict:
    """An annotation webhook shaped exactly like the captured one."""
    body = copy.deepcopy(_ANN)
    body["action"] = action
    a = body["annotation"]
    a["id"], a["task"], a["project"], a["updated_at"] = ann_id, task_id, pid, updated_at
    a["was_cancelled"] = cancelled
    choices = label if isinstance(label, list) else [label]
    a["result"] = [] if cancelled else [
        {"from_name": from_name, "to_name": "text", "type": "choices", "value": {"choices": choices}}
    ]
    body["task"]["id"], body["task"]["data"] = task_id, {"text": text}
    body["project"]["id"] = pid
    return body


def predict_body(tasks: list[tuple[int, str]], pid: int = 1, label_config: str | None = None) -> dict:
    body = payload("predict")
    template = body["tasks"][0]
    body["tasks"] = [{**copy.deepcopy(template), "id": tid, "data": {"text": text}} for tid, text in tasks]
    body["project"] = f"{pid}.1795483663"
    if label_config is not None:
        body["label_config"] = label_config
    return body


def tasks_created(tasks: list[tuple[int, str]], pid: int = 1) -> dict:
    body = payload("webhook_tasks_created")
    template = body["tasks"][0]
    body["tasks"] = [{**copy.deepcopy(template), "id": tid, "data": {"text": text}} for tid, text in tasks]
    body["project"]["id"] = pid
    return body


_ANN = payload("webhook_annotation_created")
