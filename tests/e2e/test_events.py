"""Label Studio is the truth, against a real Label Studio 1.23.2: ghost tasks in the
pool, /predict of unknown tasks, and bulk events from the Data Manager."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import CONFIG, choice, make_project, synced, wait_for

pytestmark = pytest.mark.e2e

N_TASKS = 120


@pytest.fixture(scope="module")
def project(ls, stack):
    pid, truth = make_project(ls, "events e2e", N_TASKS, seed=5)
    ls.connect_ml_backend(pid, stack.url, title="active learning")
    wait_for(lambda: synced(ls, stack, pid, 0), 90, what="the cold-start version in Label Studio")
    return pid, truth


def _set_webhooks(ls, pid: int, active: bool) -> None:
    """Turn the project's webhooks off (events are then lost, as when the backend is unreachable) or on."""
    with ls.client() as c:
        hooks = c.get("/api/webhooks/", params={"project": pid}).json()
        assert hooks, "connecting a backend creates a webhook"
        for hook in hooks:
            c.patch(f"/api/webhooks/{hook['id']}/", json={"is_active": active}).raise_for_status()


def _head(ls, pid: int) -> list[int]:
    """The tasks that have a prediction of the project's model version, best (lowest score) first."""
    version = ls.project(pid)["model_version"]
    with ls.client() as c:
        body = c.get("/api/tasks/", params={"project": pid, "page_size": 1000, "fields": "all"}).json()
    scored = [(p["score"], t["id"]) for t in body["tasks"] for p in t.get("predictions") or []
              if p.get("model_version") == version]
    return [tid for _, tid in sorted(scored)]


def test_predict_of_unknown_tasks_does_not_grow_the_pool(ls, stack, project):
    pid, _ = project
    before = stack.status(pid)["tasks"]
    body = {"tasks": [{"id": 10**6 + i, "data": {"text": f"never imported {i}"}} for i in range(300)],
            "project": f"{pid}.0", "label_config": CONFIG}
    results = httpx.post(stack.url + "/predict", json=body, timeout=60).json()["results"]
    assert len(results) == 300 and all(0 <= r["score"] <= 1 for r in results)  # scored all the same
    assert stack.status(pid)["tasks"] == before == N_TASKS


def test_push_recovers_from_a_task_deleted_while_its_webhook_was_lost(ls, stack, project):
    pid, truth = project
    head = _head(ls, pid)
    ghost, first = head[1], head[0]
    _set_webhooks(ls, pid, False)
    with ls.client() as c:
        c.delete(f"/api/tasks/{ghost}/").raise_for_status()
    _set_webhooks(ls, pid, True)
    assert stack.status(pid)["tasks"] == N_TASKS  # the backend never heard of the deletion
    # A label: the next version's head holds the ghost, Label Studio refuses the batch (400) ...
    ls.annotate(first, choice(truth[first][1]))
    # ... and the push finds it, drops it from the pool and pushes again at once.
    status = wait_for(lambda: synced(ls, stack, pid, 1), 120, what="a push after the ghost task")
    assert status["tasks"] == N_TASKS - 1
    assert not (status["status"].get("last_error") or "")
    head = _head(ls, pid)
    assert ghost not in head and len(head) == 60
    assert "gone from Label Studio" in stack.log("worker")
