"""Label Studio is the truth, against a real Label Studio 1.23.2: ghost tasks in the
pool, /predict of unknown tasks, and bulk events from the Data Manager."""

from __future__ import annotations

import httpx
import pytest

from backend.state.store import connect
from harness.stack import CONFIG, choice, make_project, synced, wait_for

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
    # Several ghosts near the top: a task at a control-share position is random and may leave the next head.
    ghosts, first = head[1:9], head[0]
    _set_webhooks(ls, pid, False)
    with ls.client() as c:
        for ghost in ghosts:
            c.delete(f"/api/tasks/{ghost}/").raise_for_status()
    _set_webhooks(ls, pid, True)
    assert stack.status(pid)["tasks"] == N_TASKS  # the backend never heard of the deletions
    # A label: the next version's head holds ghosts, Label Studio refuses the batch (400) ...
    ls.annotate(first, choice(truth[first][1]))
    # ... and the push finds them, drops them from the pool and pushes again at once.
    status = wait_for(lambda: synced(ls, stack, pid, 1), 120, what="a push after the ghost tasks")
    assert N_TASKS - len(ghosts) <= status["tasks"] < N_TASKS
    assert not (status["status"].get("last_error") or "")
    head = _head(ls, pid)
    assert not set(ghosts) & set(head) and len(head) == 60
    assert "gone from Label Studio" in stack.log("worker")


def _ls_annotation_ids(ls, pid: int) -> set[int]:
    with ls.client() as c:
        body = c.get("/api/tasks/", params={"project": pid, "page_size": 1000, "fields": "all"}).json()
    return {a["id"] for t in body["tasks"] for a in t.get("annotations") or []}


def test_bulk_create_annotations_from_predictions_is_counted_within_seconds(ls, stack, project):
    pid, _ = project
    before = stack.status(pid)
    n_labeled = before["current"]["labeled_tasks"]
    chosen = _head(ls, pid)[:3]
    with ls.client() as c:
        c.post("/api/dm/actions", params={"id": "predictions_to_annotations", "project": pid},
               json={"selectedItems": {"all": False, "included": chosen},
                     "model_version": ls.project(pid)["model_version"]}).raise_for_status()
    # (Without model_version, Label Studio converts every prediction of those tasks, of every version.)
    # One ANNOTATIONS_CREATED event carries all three: recorded at once, not at the next reconcile.
    wait_for(lambda: stack.status(pid)["annotations"] == before["annotations"] + 3, 5, 0.2,
             "the bulk-created annotations in the backend")
    wait_for(lambda: synced(ls, stack, pid, n_labeled + 3), 60, what="a version trained on them in Label Studio")


def test_forged_deletion_does_not_block_future_annotations_in_label_studio(ls, stack, project):
    """Security: an ANNOTATIONS_DELETED naming held and future ids neither drops labels nor blocks new ones."""
    pid, truth = project
    # An annotation of another project: its id, named in this project's deletion, must not move here.
    other = ls.create_project("another project", CONFIG)["id"]
    (other_task,) = ls.import_tasks(other, [{"text": "another project's task"}])
    foreign = ls.annotate(other_task, choice("fresh"))["id"]
    held = _ls_annotation_ids(ls, pid)
    n_labeled = stack.status(pid)["current"]["labeled_tasks"]
    forged = {"action": "ANNOTATIONS_DELETED", "project": {"id": pid},
              "annotations": [{"id": i} for i in sorted(held) + [foreign]
                              + list(range(foreign + 1, foreign + 20))]}
    assert httpx.post(stack.url + "/webhook", json=forged, timeout=10).status_code == 200
    task = ls.next_task(pid)
    created = ls.annotate(task["id"], choice(truth[task["id"]][1]))
    assert foreign < created["id"] < foreign + 20  # an id the forged event named in advance
    status = wait_for(lambda: synced(ls, stack, pid, n_labeled + 1), 60,
                      what="a version trained on every label Label Studio holds")
    assert status["annotations"] == len(held) + 1


def test_head_is_topped_up_before_it_runs_dry_while_a_refresh_is_busy(ls, stack, project):
    """A refresh holding the project (a large pool trains for a minute): the served head still never runs out."""
    pid, truth = project
    wait_for(lambda: synced(ls, stack, pid, stack.status(pid)["current"]["labeled_tasks"]), 60,
             what="an idle loop")
    lock = f"{stack.env['AL_KEY_PREFIX']}:p:{pid}:lock"
    r = connect(stack.env["REDIS_URL"])
    # Take the project's lock as a long refresh would (once the scheduled reconcile, if any, let go).
    wait_for(lambda: r.set(lock, "held by the test", nx=True, ex=300), 60, 0.1, "the project's lock")
    # Read after taking the lock: a refresh that held it until then may have published a newer version.
    version, status = ls.project(pid)["model_version"], stack.status(pid)
    try:
        served = []
        for _ in range(70):  # more than the head of 60
            in_head = set(_head(ls, pid))
            task = ls.next_task(pid)
            served.append(task["id"] in in_head)
            ls.annotate(task["id"], choice(truth[task["id"]][1]))
        info = stack.status(pid)["head"]
        assert ls.project(pid)["model_version"] == version  # no new version reached Label Studio
        assert all(served), "Label Studio served a task outside the head"
        assert info["version"] == version and info["topped_up"] >= 10 and info["pushed"] >= 70
        assert info["left"] > 0 and not info["served_outside_head"]
    finally:
        r.delete(lock)
    wait_for(lambda: stack.status(pid)["current"]["labeled_tasks"] > status["current"]["labeled_tasks"], 120,
             what="the loop to resume")


def test_existing_task_ids_reads_every_page_when_label_studio_caps_them():
    """The ghost check must not call a real task a ghost when pages are capped (TASK_API_PAGE_SIZE_MAX)."""
    from backend.labelstudio.client import LabelStudioClient
    from harness.label_studio import LabelStudio

    with LabelStudio(env={"TASK_API_PAGE_SIZE_MAX": "2"}) as capped:
        pid = capped.create_project("capped pages", CONFIG)["id"]
        ids = capped.import_tasks(pid, [{"text": f"task {i}"} for i in range(5)])
        with capped.client() as c:  # the cap is on: a page of 6 holds 2
            page = c.get("/api/tasks/", params={"project": pid, "page_size": 6}).json()
        assert len(page["tasks"]) == 2 and page["total"] == 5
        client = LabelStudioClient(capped.url, capped.token)
        assert client.existing_task_ids(pid, ids + [10**8]) == set(ids)
