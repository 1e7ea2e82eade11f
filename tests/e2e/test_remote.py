"""Bring your own model (issue 18) against a real Label Studio 1.23: an object-detection project whose
queue is ordered by another ML backend's boxes, re-ranked as that model's versions change, through a
slow remote and a failing one.

The user's model is ``harness/remote_backend.RemoteBackend``, a real server speaking the ML backend
protocol: one ``rectanglelabels`` box per image, scored by the task's ``data["confidence"]`` (or by
``Behaviour.confidence``, what its next model version thinks).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from backend.settings import host_port
from harness.remote_backend import Behaviour, RemoteBackend
from harness.stack import Stack, synced, wait_for

pytestmark = pytest.mark.e2e

CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
          '<Label value="car"/></RectangleLabels></View>')
N_TASKS = 40
BOX = [{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 16,
        "original_height": 16, "image_rotation": 0,
        "value": {"x": 10, "y": 10, "width": 30, "height": 30, "rotation": 0, "rectanglelabels": ["car"]}}]


def _image(i: int) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def remote():
    with RemoteBackend(Behaviour()) as server:
        yield server


@pytest.fixture(scope="module")
def remote_stack(ls, remote, tmp_path_factory):
    s = Stack(ls, tmp_path_factory.mktemp("remote-stack"), extra_env={
        "AL_REMOTE_ALLOW_HOSTS": host_port(remote.url), "AL_REMOTE_POLL_INTERVAL": "2", "AL_HEAD_SIZE": "20",
    }).start()
    yield s
    s.stop()
    s.cleanup_redis()


@pytest.fixture(scope="module")
def project(ls, remote, remote_stack):
    confidence = np.random.default_rng(3).permutation(np.linspace(0.05, 0.95, N_TASKS))
    pid = ls.create_project("remote detector e2e", CONFIG)["id"]
    ids = ls.import_tasks(pid, [{"image": _image(i), "confidence": round(float(c), 3)}
                                for i, c in enumerate(confidence)])
    ls.connect_ml_backend(pid, remote_stack.url, title="active learning", extra_params={
        "model": "remote", "remote_url": remote.url, "remote_batch": 16, "remote_timeout": 2, "control_share": 0})
    return pid, dict(zip(ids, (round(float(c), 3) for c in confidence)))


def _served(ls, pid: int, labeled: set[int]) -> list[int]:
    """The tasks Label Studio's queue holds predictions of its current version for, lowest score first."""
    version = ls.project(pid)["model_version"]
    scores = {}
    with ls.client() as c:
        body = c.get("/api/tasks/", params={"project": pid, "page_size": 1000, "fields": "all"}).json()
    for task in body["tasks"]:
        for p in task.get("predictions") or []:
            if p.get("model_version") == version and task["id"] not in labeled:
                scores[task["id"]] = p["score"]
    return sorted(scores, key=scores.get)


def test_label_studio_serves_the_remote_models_order_and_boxes(ls, remote_stack, remote, project):
    pid, confidence = project
    status = wait_for(lambda: synced(ls, remote_stack, pid, 0), 120, what="the remote-ranked version in Label Studio")
    assert status["current"]["kind"] == "remote" and status["current"]["ranked"] == N_TASKS
    assert status["remote"]["failures"] == 0
    # Label Studio's PROJECT_UPDATED (sent when the worker points the project at a version) re-reads the
    # config in the project's mode: a config with nothing this backend predicts is no refusal.
    assert status.get("refusal") is None, status.get("refusal")
    assert sorted(remote.behaviour.calls)[-1] == 16  # asked in batches of remote_batch
    by_confidence = sorted(confidence, key=confidence.get)
    assert _served(ls, pid, set())[:5] == by_confidence[:5]
    labeled: set[int] = set()
    for k in range(3):  # annotate through /next: the least confident box first, each time
        task = ls.next_task(pid)
        assert task["id"] == min(set(confidence) - labeled, key=confidence.get)
        served = ls.project(pid)["model_version"]
        (box,) = [p for p in ls.predictions(task["id"]) if p["model_version"] == served][0]["result"]
        assert box["type"] == "rectanglelabels" and box["score"] == confidence[task["id"]]
        ls.annotate(task["id"], BOX)
        labeled.add(task["id"])
        wait_for(lambda: synced(ls, remote_stack, pid, len(labeled)), 60, what=f"a version after {len(labeled)} labels")


def test_a_new_remote_model_version_reranks_the_queue(ls, remote_stack, remote, project):
    pid, confidence = project
    labeled = {t for t in confidence if ls.annotations(t)}
    # The remote's next model is sure of what the last one doubted, and doubts what it was sure of.
    remote.behaviour.confidence = {t: round(1 - c, 3) for t, c in confidence.items()}
    remote.behaviour.model_version = "detector-v2"

    def reranked():
        status = remote_stack.status(pid)
        current = status.get("current") or {}
        return ((current.get("remote") or {}).get("model_version") == "detector-v2"
                and ls.project(pid)["model_version"] == status["current_version"])

    wait_for(reranked, 60, what="a version ranked by detector-v2 in Label Studio (no label needed)")
    most_confident = max(set(confidence) - labeled, key=confidence.get)
    assert ls.next_task(pid)["id"] == most_confident


def test_a_failing_then_a_slow_remote_never_stall_the_queue(ls, remote_stack, remote, project):
    pid, confidence = project
    serving = remote_stack.status(pid)["current_version"]
    for trouble in ("fail", "delay"):
        if trouble == "fail":
            remote.behaviour.fail = True
        else:
            remote.behaviour.delay = 4.0  # over the project's remote_timeout of 2 s
        failures_before = remote_stack.status(pid)["remote"]["failures"]
        task = ls.next_task(pid)  # Label Studio keeps serving the last ranking
        assert task is not None
        ls.annotate(task["id"], BOX)
        status = wait_for(lambda: (s := remote_stack.status(pid))["remote"]["failures"] > failures_before and s,
                          60, what=f"the {trouble} remote's error in /status")
        assert ("HTTP 500" if trouble == "fail" else "took longer than 2 s") in status["remote"]["last_error"]
        assert status["remote"]["next_retry_at"] and status["current_version"] == serving
        assert ls.project(pid)["model_version"] == serving
        remote.behaviour.fail, remote.behaviour.delay = False, 0.0
        n_labeled = sum(1 for t in confidence if ls.annotations(t))
        status = wait_for(lambda: synced(ls, remote_stack, pid, n_labeled), 90,
                          what=f"recovery after the {trouble} remote")
        assert status["remote"]["failures"] == 0
        serving = status["current_version"]
