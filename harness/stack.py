"""The backend and its worker as real processes beside a real Label Studio, on loopback.

Shared by the end-to-end tests, the demo and the benchmarks, so it lives outside ``tests/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from backend.simulation.datasets import load_dataset
from backend.state.store import connect
from harness.label_studio import LabelStudio, free_port

E2E_REDIS_URL = os.environ.get("AL_E2E_REDIS_URL", "redis://127.0.0.1:6379/13")
# Label Studio's database in the end-to-end tests: PostgreSQL, as production runs it (a fresh
# database per run, see harness/label_studio.py); AL_E2E_DB=sqlite for its default SQLite.
E2E_DB = os.environ.get("AL_E2E_DB", "postgresql")
REPO = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.5, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Stack:
    """``al-backend serve`` and ``al-backend worker`` as real processes, restartable."""

    def __init__(self, ls: LabelStudio, tmp: Path, *, api_key: str | None = None, extra_env: dict | None = None,
                 ls_url: str | None = None, redis_url: str = E2E_REDIS_URL):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AL_", "BASIC_AUTH", "LABEL_STUDIO"))}
        self.env.update(
            REDIS_URL=redis_url,
            AL_KEY_PREFIX=f"e2e-{uuid.uuid4().hex[:8]}",
            AL_QUEUE=f"e2e-{uuid.uuid4().hex[:8]}",
            LABEL_STUDIO_URL=ls_url or ls.url,
            LABEL_STUDIO_API_KEY=api_key or ls.token,
            AL_HEAD_SIZE="60",
            AL_RECONCILE_INTERVAL="20",
            AL_WORKER_NICE="0",
            AL_PUSH_RETRY_DELAY="1",
            AL_LOCK_TTL="6",
            PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"),
        )
        self.env.update(extra_env or {})
        self.procs: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )

    def start(self) -> "Stack":
        self._spawn("backend", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1")
        self._spawn("worker", "worker")

        def up() -> bool:
            try:
                return httpx.get(self.url + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, 0.2, "the backend to answer /health")
        return self

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything it forked (an RQ worker forks a work horse per job)."""
        import psutil

        proc = psutil.Process(self.procs.pop(name).pid)
        for p in proc.children(recursive=True) + [proc]:
            p.kill()
        psutil.wait_procs([proc], timeout=10)

    def restart(self, name: str) -> None:
        if name == "worker":
            self._spawn("worker", "worker")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def status(self, pid: int, auth=None) -> dict:
        return httpx.get(f"{self.url}/status/{pid}", timeout=10, auth=auth).json()

    def cleanup_redis(self) -> None:
        r = connect(self.env["REDIS_URL"])
        for pattern in (f"{self.env['AL_KEY_PREFIX']}:*", f"*{self.env['AL_QUEUE']}*"):
            keys = list(r.scan_iter(pattern))
            if keys:
                r.delete(*keys)


CONFIG = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
          '<Choice value="fresh"/><Choice value="rotten"/></Choices></View>')


def choice(label: str) -> list[dict]:
    """An annotation result for ``CONFIG``."""
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def make_project(ls: LabelStudio, title: str, n_tasks: int, seed: int) -> tuple[int, dict[int, tuple[str, str]]]:
    """A Label Studio project with ``n_tasks`` real movie-review snippets; returns its id and the truth."""
    ds = load_dataset("rotten-tomatoes")
    idx = np.random.default_rng(seed).permutation(len(ds.texts))[:n_tasks]
    pid = ls.create_project(title, CONFIG)["id"]
    ids = ls.import_tasks(pid, [{"text": ds.texts[i]} for i in idx])
    return pid, {tid: (ds.texts[i], ds.labels[i]) for tid, i in zip(ids, idx)}


def synced(ls: LabelStudio, stack: "Stack", pid: int, n_labeled: int, auth=None):
    """The backend has trained on ``n_labeled`` labels and Label Studio points at that version."""
    status = stack.status(pid, auth=auth)
    current = status.get("current") or {}
    if current.get("labeled_tasks") != n_labeled:
        return False
    return ls.project(pid)["model_version"] == status["current_version"] and status
