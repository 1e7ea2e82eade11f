"""Redis restarted under a running backend and worker: both reconnect, nothing is lost.

A private Redis with persistence (as the README asks for production) on a
free port, so the shared one is not disturbed.  An annotation made while
Redis is down (its webhook fails) is recovered by the periodic reconcile.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis

from harness.label_studio import free_port
from harness.stack import Stack, choice, make_project, synced, wait_for

pytestmark = pytest.mark.e2e


class PrivateRedis:
    def __init__(self, directory) -> None:
        self.port, self.dir = free_port(), directory
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.port),
                        "--appendonly", "yes", "--save", "", "--dir", str(self.dir),
                        "--logfile", str(self.dir / "redis.log")], check=True)
        wait_for(self._up, 10, 0.1, "Redis to start")

    def _up(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        try:
            redis.Redis(port=self.port).shutdown(nosave=False)
        except redis.ConnectionError:
            pass  # the connection closes as Redis exits
        wait_for(lambda: not self._up(), 10, 0.1, "Redis to stop")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_backend_and_worker_survive_a_redis_restart(ls, tmp_path):
    private = PrivateRedis(tmp_path)
    private.start()
    stack = Stack(ls, tmp_path, redis_url=private.url).start()
    try:
        pid, truth = make_project(ls, "redis restart e2e", 80, seed=3)
        ls.connect_ml_backend(pid, stack.url, title="active learning")
        wait_for(lambda: synced(ls, stack, pid, 0), 90, what="the cold-start version")

        private.stop()
        task = ls.next_task(pid)
        ls.annotate(task["id"], choice(truth[task["id"]][1]))  # its webhook meets a backend without Redis
        time.sleep(2)
        private.start()

        task = ls.next_task(pid)
        ls.annotate(task["id"], choice(truth[task["id"]][1]))
        status = wait_for(lambda: synced(ls, stack, pid, 2), 120, what="both annotations in a pushed version")
        assert status["current"]["ranked"] == 78
        assert all(proc.poll() is None for proc in stack.procs.values()), "a process died"
    finally:
        stack.stop()
        private.stop()
