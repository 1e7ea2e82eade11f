"""One identity per project against real Label Studio 1.23.2 instances: a Label Studio
reinstalled at the same address, whose new project has the same id, inherits nothing."""

from __future__ import annotations

import httpx
import pytest

from harness.label_studio import LabelStudio
from harness.stack import Stack, choice, make_project, synced, wait_for
from tests.e2e.faults import FaultProxy

pytestmark = pytest.mark.e2e


def test_recreated_project_inherits_nothing(tmp_path):
    old_ls = LabelStudio().start()
    proxy = FaultProxy(old_ls.url)  # the address the backend knows Label Studio by
    stack = Stack(old_ls, tmp_path, ls_url=proxy.url).start()
    try:
        pid, truth = make_project(old_ls, "before the reinstall", 40, seed=1)
        old_ls.connect_ml_backend(pid, stack.url, title="active learning")
        wait_for(lambda: synced(old_ls, stack, pid, 0), 90, what="the cold-start version")
        for _ in range(2):
            task = old_ls.next_task(pid)
            old_ls.annotate(task["id"], choice(truth[task["id"]][1]))
        old = wait_for(lambda: synced(old_ls, stack, pid, 2), 90, what="a version trained on 2 labels")
        old_ls.stop()
        with LabelStudio() as new_ls:  # reinstalled: an empty database behind the same address
            proxy.target = new_ls.url
            new_pid, _ = make_project(new_ls, "after the reinstall", 30, seed=2)
            assert new_pid == pid  # the same id, another project
            new_ls.connect_ml_backend(new_pid, stack.url, title="active learning")
            status = wait_for(lambda: synced(new_ls, stack, pid, 0), 90, what="the new project's cold start")
            assert status["tasks"] == 30 and status["annotations"] == 0
            assert status["current"]["kind"] == "cold-start" and status["current"]["ranked"] == 30
            names = httpx.get(f"{stack.url}/versions", params={"project": pid}, timeout=10).json()["versions"]
            assert old["current_version"] not in names and status["current_version"] in names
    finally:
        stack.stop()
        stack.cleanup_redis()
        proxy.close()
        old_ls.stop()
