"""Build a project with the real backend and worker, then screenshot its dashboard (docs/img/dashboard.png).

Usage: .venv/bin/python scripts/dashboard_screenshot.py [--redis redis://127.0.0.1:6379/10] [--out docs/img/dashboard.png]

1,500 real movie reviews; an annotator takes the head of the queue 25 tasks
at a time for 24 rounds, as Label Studio's ``/next`` serves it, and gives
the true label, except for about 2 % slips; a second annotator disagrees on
a few tasks.  The worker (refresh, prune, evaluate) runs after each round.
The page is then served by uvicorn on loopback and captured by Debian's
headless Chromium.  The Redis database given is flushed before and after.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import uvicorn
from fastapi.testclient import TestClient

from backend.state.queueing import job_queue

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.service.app import create_app  # noqa: E402
from backend.settings import get_settings  # noqa: E402
from backend.simulation.datasets import load_dataset  # noqa: E402
from backend.state.store import ProjectStore, connect  # noqa: E402
from harness.jobs import run_burst  # noqa: E402
from harness.payloads import annotation_event, setup_body, tasks_created  # noqa: E402

SCHEMA = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
          '<Choice value="fresh"/><Choice value="rotten"/></Choices></View>')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    ap.add_argument("--out", default=str(REPO / "docs" / "img" / "dashboard.png"))
    ap.add_argument("--tasks", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=24)
    ap.add_argument("--per-round", type=int, default=25)
    ap.add_argument("--features", default="ngrams", help="the project's features option (e.g. auto)")
    args = ap.parse_args()

    import os

    os.environ.update(REDIS_URL=args.redis, AL_KEY_PREFIX="shot", AL_QUEUE="shot-queue", AL_MODEL_POLL_INTERVAL="0")
    for var in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
        os.environ.pop(var, None)
    get_settings.cache_clear()
    settings = get_settings()
    r = connect(args.redis)
    r.flushdb()
    ds = load_dataset("rotten-tomatoes")
    rng = np.random.default_rng(7)
    idx = rng.permutation(len(ds.texts))[: args.tasks]
    truth = {i + 1: (ds.texts[j], ds.labels[j]) for i, j in enumerate(idx)}
    # The page links tasks into a Label Studio; the worker itself runs without one (nothing to push).
    app = create_app(settings.model_copy(update={"label_studio_url": "http://localhost:8080"}), r)
    store = ProjectStore(r, "shot", 1)
    queues = [job_queue("shot-queue", r), job_queue("shot-queue-low", r)]

    def work() -> None:
        run_burst(queues, r)

    with TestClient(app) as client:
        body = setup_body(1, schema=SCHEMA)
        body["extra_params"] = {"plateau_versions": 6, "target_accuracy": 0.8, "features": args.features}
        client.post("/setup", json=body).raise_for_status()
        client.post("/webhook", json=tasks_created([(t, x) for t, (x, _) in truth.items()]))
        work()
        done: set[int] = set()
        ann = 0
        for k in range(args.rounds):
            ranking = store.ranking(store.current_version())
            for tid in sorted((t for t in ranking if t not in done), key=ranking.get)[: args.per_round]:
                ann += 1
                label = truth[tid][1]
                if rng.random() < 0.02:  # an annotator's slip
                    label = "rotten" if label == "fresh" else "fresh"
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
                client.post("/webhook", json=annotation_event(ann, tid, truth[tid][0], label, updated_at=stamp))
                if rng.random() < 0.02:  # a second annotator who sees it differently
                    other = "rotten" if label == "fresh" else "fresh"
                    client.post("/webhook", json=annotation_event(100_000 + ann, tid, truth[tid][0], other,
                                                                  updated_at=stamp))
                done.add(tid)
            time.sleep(1.05)  # versions carry their publication time to the second: publish after the labels
            work()
            s = client.get("/status/1").json()["progress"]
            print(f"round {k + 1}: {s['labeled_tasks']} labels, accuracy {s['accuracy']:.3f} "
                  f"({s['accuracy_source']}), kappa {s['kappa']}, {s['recommendation']['action']}, "
                  f"evaluate stages {s['timings_s']}", flush=True)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server.config.port = port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--hide-scrollbars", f"--screenshot={args.out}",
                        "--window-size=1300,1900", f"http://127.0.0.1:{port}/dashboard/1"], check=True,
                       capture_output=True)
    server.should_exit = True
    thread.join(10)
    r.flushdb()
    print("wrote", args.out)


if __name__ == "__main__":
    main()
