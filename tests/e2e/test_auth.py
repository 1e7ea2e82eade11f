"""Authentication end to end: a backend behind basic auth (webhooks included),
and a worker that talks to Label Studio with a personal access token (JWT)."""

from __future__ import annotations

import httpx
import pytest

from harness.stack import Stack, choice, make_project, synced, wait_for

pytestmark = pytest.mark.e2e

AUTH = ("labelstudio", "s3cret-pass")




def test_basic_auth_backend_with_webhooks(ls, tmp_path):
    stack = Stack(ls, tmp_path, extra_env={"BASIC_AUTH_USER": AUTH[0], "BASIC_AUTH_PASS": AUTH[1],
                                           "AL_WEBHOOK_TOKEN": "hook-t0ken",
                                           "AL_RECONCILE_INTERVAL": "0"}).start()  # webhooks only
    try:
        assert httpx.post(stack.url + "/setup", json={}, timeout=5).status_code == 401
        pid, truth = make_project(ls, "basic auth e2e", 60, seed=5)
        ls.connect_ml_backend(pid, stack.url, title="active learning", basic_auth=AUTH)
        wait_for(lambda: synced(ls, stack, pid, 0, auth=AUTH), 90, what="the cold-start version")
        # The auto-created webhook has no auth header: add the token to its URL, as the README says.
        with ls.client() as c:
            (hook,) = [h for h in c.get("/api/webhooks/", params={"project": pid}).json() if h["url"].endswith("/webhook")]
            c.patch(f"/api/webhooks/{hook['id']}/", json={"url": hook["url"] + "?token=hook-t0ken"}).raise_for_status()
        task = ls.next_task(pid)
        ls.annotate(task["id"], choice(truth[task["id"]][1]))
        # Recorded through the webhook: the periodic reconcile is off here.
        status = wait_for(lambda: (s := stack.status(pid, AUTH))["annotations"] == 1 and s, 15,
                          what="the webhook to be accepted")
        assert status["annotations"] == 1
        wait_for(lambda: synced(ls, stack, pid, 1, auth=AUTH), 60, what="a version trained on it")
    finally:
        stack.stop()
        stack.cleanup_redis()


def test_worker_with_a_personal_access_token(ls, tmp_path):
    stack = Stack(ls, tmp_path, api_key=ls.pat).start()
    try:
        pid, truth = make_project(ls, "pat e2e", 60, seed=6)
        ls.connect_ml_backend(pid, stack.url, title="active learning")
        wait_for(lambda: synced(ls, stack, pid, 0), 90, what="the cold-start version pushed with a PAT")
        task = ls.next_task(pid)
        ls.annotate(task["id"], choice(truth[task["id"]][1]))
        wait_for(lambda: synced(ls, stack, pid, 1), 60, what="a version trained and pushed with a PAT")
        assert "Bearer" not in stack.log("worker") and ls.pat not in stack.log("worker")
    finally:
        stack.stop()
        stack.cleanup_redis()
