"""Faults the loop must survive, with the real Label Studio behind a fault-injecting proxy:
Label Studio answering 500 or unreachable during a push, and the worker killed mid-push.
After each: the project points at a complete version and nothing is duplicated."""

from __future__ import annotations

import pytest

from harness.stack import Stack, choice, make_project, synced, wait_for
from tests.e2e.faults import FaultProxy

pytestmark = pytest.mark.e2e

N_TASKS, HEAD = 150, 60


@pytest.fixture(scope="module")
def proxy(ls):
    p = FaultProxy(ls.url)
    yield p
    p.close()


@pytest.fixture(scope="module")
def faulty_stack(ls, proxy, tmp_path_factory):
    s = Stack(ls, tmp_path_factory.mktemp("faults"), ls_url=proxy.url).start()
    yield s
    s.stop()
    s.cleanup_redis()


@pytest.fixture(scope="module")
def project(ls, faulty_stack):
    pid, truth = make_project(ls, "faults e2e", N_TASKS, seed=11)
    ls.connect_ml_backend(pid, faulty_stack.url, title="active learning")
    wait_for(lambda: synced(ls, faulty_stack, pid, 0), 90, what="the cold-start version")
    return pid, {tid: label for tid, (_, label) in truth.items()}, []


def annotate_next(ls, pid, truth, labeled) -> None:
    task = ls.next_task(pid)
    ls.annotate(task["id"], choice(truth[task["id"]]))
    labeled.append(task["id"])


def assert_complete_and_unique(ls, stack, pid, n_labeled) -> None:
    """Label Studio points at the backend's current version, whose head is there exactly once."""
    status = wait_for(lambda: synced(ls, stack, pid, n_labeled), 120, what="a complete push")
    with ls.client() as c:
        counts = c.get(f"/api/projects/{pid}/model-versions/").json()
    assert counts[status["current_version"]] == min(HEAD, N_TASKS - n_labeled), counts
    assert all(n <= HEAD for n in counts.values()), counts


@pytest.mark.parametrize("fault", ["http-500", "unreachable"])
def test_failed_push_keeps_the_last_complete_version(ls, faulty_stack, proxy, project, fault):
    pid, truth, labeled = project
    before = ls.project(pid)["model_version"]
    if fault == "http-500":
        proxy.fail["/import/predictions"] = 500
    else:
        proxy.down = True
    annotate_next(ls, pid, truth, labeled)
    wait_for(lambda: "push" in (faulty_stack.status(pid)["status"].get("last_error") or ""), 60,
             what="the push to fail")
    assert ls.project(pid)["model_version"] == before  # still the last complete version
    proxy.heal()
    assert_complete_and_unique(ls, faulty_stack, pid, len(labeled))


def test_worker_killed_mid_push_leaves_no_duplicates(ls, faulty_stack, proxy, project):
    pid, truth, labeled = project
    before = ls.project(pid)["model_version"]
    proxy.arrived.clear()
    proxy.delay["/import/predictions"] = 4.0  # Label Studio still imports it, after the worker is gone
    annotate_next(ls, pid, truth, labeled)
    wait_for(lambda: any("/import/predictions" in path for _, path in proxy.arrived), 60,
             what="the push to start")
    faulty_stack.kill("worker")
    proxy.heal()
    assert ls.project(pid)["model_version"] == before
    faulty_stack.restart("worker")
    assert_complete_and_unique(ls, faulty_stack, pid, len(labeled))
