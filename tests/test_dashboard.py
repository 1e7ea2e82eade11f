"""Progress recording by the real worker, /status, /metrics and the dashboard, in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn

from backend.app import create_app
from backend.datasets import load_dataset
from tests.conftest import annotation_event, setup_body, tasks_created

N_TASKS, ROUNDS, PER_ROUND = 300, 5, 16
OPTIONS = {"head_size": 40, "control_share": 0.25, "plateau_versions": 3}


def annotate_rounds(client, store, worker, rounds: int = ROUNDS, per_round: int = PER_ROUND, pid: int = 1,
                    seed: int = 3) -> dict[int, tuple[str, str]]:
    """A project of real movie reviews, annotated round by round from the head of the queue, as
    Label Studio's ``/next`` serves it; the worker (refresh, prune, evaluate) runs after each round."""
    ds = load_dataset("rotten-tomatoes")
    idx = np.random.default_rng(seed).permutation(len(ds.texts))[:N_TASKS]
    truth = {i + 1: (ds.texts[j], ds.labels[j]) for i, j in enumerate(idx)}
    schema = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
              '<Choice value="fresh"/><Choice value="rotten"/></Choices></View>')
    body = setup_body(pid, schema=schema)
    body["extra_params"] = OPTIONS
    assert client.post("/setup", json=body).status_code == 200
    client.post("/webhook", json=tasks_created([(t, text) for t, (text, _) in truth.items()], pid=pid))
    worker()
    done: set[int] = set()
    ann = 0
    for _ in range(rounds):
        ranking = store.ranking(store.current_version())
        for tid in sorted((t for t in ranking if t not in done), key=ranking.get)[:per_round]:
            ann += 1
            client.post("/webhook", json=annotation_event(ann, tid, truth[tid][0], truth[tid][1], pid=pid))
            done.add(tid)
        worker()
    return truth


def test_worker_records_progress_per_version(client, store, worker):
    annotate_rounds(client, store, worker)
    status = client.get("/status/1").json()
    prog = status["progress"]
    assert prog["labeled_tasks"] == ROUNDS * PER_ROUND
    assert len(prog["curve"]) == ROUNDS
    assert [p["labels"] for p in prog["curve"]] == [PER_ROUND * (i + 1) for i in range(ROUNDS)]
    print(prog)
    html = client.get("/dashboard/1").text
    open("/tmp/al10/page.html", "w").write(html)
