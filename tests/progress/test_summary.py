"""The typed progress summary: written by the worker, validated wherever it is read (issue 14).

Redis is shared state: whatever sits under a project's summary key must
cost the page its figures at most (the summary is treated as missing and a
line is logged), never a 500 from the dashboard, ``/status`` or ``/metrics``.
"""

from __future__ import annotations

import logging

import orjson
import pytest

from backend.progress.summary import ProgressSummary
from backend.state.progress import ProgressStore
from tests.conftest import setup_body
from tests.service.test_dashboard import annotate_rounds

HOSTILE = [
    b"not json at all",
    b"[]",
    b'{"version": "v1"}',  # no updated_at
    b'{"version": 3, "updated_at": 1}',  # not a string
    b'{"version": "v1", "updated_at": 1, "accuracy": 7.5}',  # not a fraction
    b'{"version": "v1", "updated_at": 1, "curve": [{"labels": "many"}]}',
    b'{"version": "v1", "updated_at": 1, "review": [{"task": "1; DROP"}]}',
    b'{"version": "v1", "updated_at": 1, "labeled_tasks": -4}',
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_a_summary_that_does_not_validate_is_missing_not_a_500(client, store, raw, caplog):
    assert client.post("/setup", json=setup_body()).status_code == 200
    store.r.set(store.key("progress:summary"), raw)  # what a stray writer to Redis could leave there
    with caplog.at_level(logging.WARNING, logger="backend.state.progress"):
        assert ProgressStore(store).summary() is None
        page = client.get("/dashboard/1")
        status = client.get("/status/1")
        metrics = client.get("/metrics")
        index = client.get("/dashboard")
    assert (page.status_code, status.status_code, metrics.status_code, index.status_code) == (200, 200, 200, 200)
    assert 'id="empty"' in page.text and status.json()["progress"] is None
    assert 'al_project_labeled_tasks{project="1"}' not in metrics.text
    warned = [r for r in caplog.records if "does not validate" in r.getMessage()]
    assert warned and all(raw.decode()[:40] not in r.getMessage() for r in warned if len(raw) > 12)


def test_the_worker_writes_a_summary_every_reader_reads_the_same(client, store, worker):
    annotate_rounds(client, store, worker, rounds=2)
    summary = ProgressStore(store).summary()
    assert isinstance(summary, ProgressSummary) and summary.version == store.current_version()
    stored = orjson.loads(store.r.get(store.key("progress:summary")))
    assert summary.labeled_tasks == stored["labeled_tasks"] == 32
    assert client.get("/status/1").json()["progress"] == summary.model_dump(mode="json", exclude_unset=True)
    assert f'al_project_labeled_tasks{{project="1"}} {float(summary.labeled_tasks)}' in client.get("/metrics").text
    assert summary.curve and all(p.version for p in summary.curve)
    assert 0 <= summary.cv.accuracy <= 1 and summary.recommendation.action in {"keep going", "consider stopping", "stop"}
