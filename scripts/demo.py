"""`make demo`: Label Studio with a demo project that orders itself as you annotate.

Starts (or reuses) everything on this machine: Redis (made sure of by make),
Label Studio 1.23.2 with an admin user (installed from PyPI into .cache/ the
first time, data kept in run/label-studio/), the backend and a worker. Creates
a project with 2,000 real movie-review snippets, connects the backend, waits
for the first queue, prints where to log in and what to try. Ctrl-C stops
everything it started; a second run reuses the data and the project.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.simulation.datasets import load_dataset  # noqa: E402
from harness.label_studio import FAST_IMPORT_FLAG, LabelStudio  # noqa: E402

TITLE = "Active learning demo: movie reviews"
CONFIG = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text" choice="single">'
          '<Choice value="fresh"/><Choice value="rotten"/></Choices></View>')
LS_PORT = int(os.environ.get("DEMO_LS_PORT", "8080"))
BACKEND_PORT = int(os.environ.get("PORT", "9090"))
RUN = REPO / "run"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}; logs are in {RUN}")
        time.sleep(0.5)
    return value


def spawn(name: str, args: list[str], env: dict) -> subprocess.Popen:
    log = open(RUN / f"{name}.log", "ab")
    return subprocess.Popen([str(REPO / ".venv" / "bin" / "al-backend"), *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=REPO)


def demo_project(ls: LabelStudio, backend_url: str) -> int:
    with ls.client() as c:
        existing = [p for p in c.get("/api/projects/", params={"page_size": 100}).json()["results"]
                    if p["title"] == TITLE]
    if existing:
        return existing[0]["id"]
    ds = load_dataset("rotten-tomatoes")
    pid = ls.create_project(TITLE, CONFIG)["id"]
    ls.import_tasks(pid, [{"text": t} for t in ds.texts[:2000]])
    ls.connect_ml_backend(pid, backend_url, title="active learning")
    return pid


def main() -> None:
    RUN.mkdir(exist_ok=True)
    print("demo: starting Label Studio (the first run installs it: about 2 minutes)…", flush=True)
    ls = LabelStudio(port=LS_PORT, data_dir=RUN / "label-studio" / "data", log_level="WARNING",
                     env={FAST_IMPORT_FLAG: "true"}).start()
    backend_url = f"http://127.0.0.1:{BACKEND_PORT}"
    env = {**os.environ, "LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.token,
           "AL_KEY_PREFIX": os.environ.get("AL_KEY_PREFIX", "demo"), "AL_HEAD_SIZE": "100", "AL_KEEP_VERSIONS": "1"}
    procs = [spawn("backend", ["serve", "--host", "127.0.0.1", "--port", str(BACKEND_PORT)], env),
             spawn("worker", ["worker"], env)]

    def stop(*_: object) -> None:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)
        ls.stop()
        print("\ndemo: stopped Label Studio, the backend and the worker")
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    wait_for(lambda: _up(backend_url), 60, "the backend")
    pid = demo_project(ls, backend_url)
    print("demo: waiting for the first queue (cold start) to reach Label Studio…", flush=True)
    wait_for(lambda: ls.project(pid)["model_version"].startswith("v"), 180, "the first queue")
    print(f"""
  Label Studio:   {ls.url}/projects/{pid}/data     login {ls.username} / {ls.password}
  The backend:    {backend_url}  (status: {backend_url}/status/{pid})

  What to try: open the project and press "Label All Tasks". The queue starts
  with typical reviews from every cluster (cold start); after each answer
  the worker retrains and the next tasks are the ones the model is least
  sure about. Watch {backend_url}/status/{pid} (version, labels, accuracy).

  Logs: {RUN}/backend.log, {RUN}/worker.log.   Ctrl-C stops everything.
""", flush=True)
    while all(p.poll() is None for p in procs):
        time.sleep(1)
    print("demo: a process exited; see the logs in run/")
    stop()


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
