"""Progress recording by the real worker, /status, /metrics and the dashboard, in a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone

import numpy as np
import orjson
import pytest
import uvicorn

from backend.service.app import create_app
from backend.simulation.datasets import load_dataset
from tests.conftest import annotation_event, label_queue_head, setup_body, tasks_created

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
    label_queue_head(client, store, worker, rounds, per_round, lambda ann, tid, stamp: annotation_event(
        ann, tid, truth[tid][0], truth[tid][1], pid=pid, updated_at=stamp))
    return truth


WORDS_POS = "great wonderful excellent loved superb moving brilliant".split()
WORDS_NEG = "awful boring terrible hated dull tedious clumsy".split()
FILLER = "the a film story acting plot cast scene music script ending".split()


def synthetic_reviews(n: int, seed: int = 0) -> dict[int, tuple[str, str]]:
    """Reviews whose sentiment words give the label away: a model gets confident fast."""
    rng = np.random.default_rng(seed)
    out = {}
    for tid in range(1, n + 1):
        label = "pos" if tid % 2 else "neg"
        words = list(rng.choice(WORDS_POS if label == "pos" else WORDS_NEG, 3)) + list(rng.choice(FILLER, 5))
        rng.shuffle(words)
        out[tid] = (" ".join(words), label)
    return out


def test_worker_records_progress_per_version(client, store, worker):
    annotate_rounds(client, store, worker)
    status = client.get("/status/1").json()
    assert {"project", "tasks", "annotations", "current_version", "current", "status", "jobs"} <= set(status)
    prog = status["progress"]
    assert prog["version"] == status["current_version"]
    assert prog["labeled_tasks"] == ROUNDS * PER_ROUND and prog["pool"] == N_TASKS - ROUNDS * PER_ROUND
    curve = prog["curve"]
    assert [p["labels"] for p in curve] == [PER_ROUND * (i + 1) for i in range(ROUNDS)]
    assert curve[0]["kappa"] is None and all(-1 <= p["kappa"] <= 1 for p in curve[1:])
    assert all(0 <= p["cv_accuracy"] <= 1 and p["cv_accuracy_std"] >= 0 for p in curve)
    # Annotators took the head of each queue, a quarter of which is random control tasks:
    # those labels settle the earlier versions' predictions (unbiased outcomes).
    outcomes = sum(p["control_n"] for p in curve)
    assert outcomes == prog["control_outcomes"] > 0
    assert all(p["control_low"] <= p["control_accuracy"] <= p["control_high"] for p in curve if p["control_n"])
    assert prog["control_holdout"]["n"] == outcomes
    assert prog["stop_set"] == N_TASKS - PER_ROUND  # drawn from the pool at the first trained version
    q = prog["queue"]
    assert q["head"] == OPTIONS["head_size"] and q["control"] + q["uncertain"] + q["diverse"] == q["head"]
    assert q["control"] >= 1
    assert sum(prog["label_distribution"]["sentiment"].values()) == prog["labeled_tasks"]
    assert prog["recommendation"]["action"] in ("keep going", "consider stopping", "stop")
    assert prog["recommendation"]["reason"]
    assert prog["rules"]["plateau_versions"] == OPTIONS["plateau_versions"]
    # Choices are the headline: accuracy, with no entity or error figures beside it.
    assert prog["measures"] == "accuracy" and prog["accuracy"] is not None and prog["entities"] == {}
    assert prog.get("entity") is None and prog.get("error") is None and all(p["cv_entity_f1"] is None for p in curve)
    page = client.get("/dashboard/1").text
    assert "accuracy on the labeled set" in page and "entity F1" not in page
    assert f"<td>{100 * prog['accuracy']:.0f}%</td>" in client.get("/dashboard").text
    # The history lives in the versions' metadata, kept after their data is pruned.
    trained = [v for v in client.get("/versions").json()["versions"]
               if (store.version_meta(v) or {}).get("progress")]
    assert len(trained) == ROUNDS
    assert store.version_meta(trained[-1])["progress"]["recommendation"] == prog["recommendation"]["action"]


def test_metrics_export_the_same_figures(client, store, worker):
    annotate_rounds(client, store, worker, rounds=2)
    prog = client.get("/status/1").json()["progress"]
    text = client.get("/metrics").text
    assert f'al_project_labeled_tasks{{project="1"}} {float(prog["labeled_tasks"])}' in text
    assert f'al_project_kappa{{project="1"}} {prog["kappa"]}' in text
    assert f'al_project_accuracy{{estimate="cross_validation",project="1"}} {prog["cv"]["accuracy"]}' in text
    level = {"keep going": 0.0, "consider stopping": 1.0, "stop": 2.0}[prog["recommendation"]["action"]]
    assert f'al_project_recommendation{{project="1"}} {level}' in text


def test_budget_from_extra_params_turns_the_recommendation_to_stop(client, store, worker):
    truth = synthetic_reviews(120)
    body = setup_body()
    body["extra_params"] = {"label_budget": 30}
    client.post("/setup", json=body)
    client.post("/webhook", json=tasks_created([(t, x) for t, (x, _) in truth.items()]))
    for i, tid in enumerate(range(1, 21)):
        client.post("/webhook", json=annotation_event(i + 1, tid, truth[tid][0], truth[tid][1]))
    worker()
    assert client.get("/status/1").json()["progress"]["recommendation"]["action"] != "stop"
    for i, tid in enumerate(range(21, 31)):
        client.post("/webhook", json=annotation_event(100 + i, tid, truth[tid][0], truth[tid][1]))
    worker()
    rec = client.get("/status/1").json()["progress"]["recommendation"]
    assert rec["action"] == "stop" and rec["reason"] == "label budget reached: 30 of 30 labels"
    assert "label budget reached" in client.get("/dashboard/1").text


def test_review_lists_wrong_labels_and_disagreements_with_links(client, store, worker):
    truth = synthetic_reviews(120)
    body = setup_body()
    body["hostname"] = "http://label-studio.example:8080"
    client.post("/setup", json=body)
    client.post("/webhook", json=tasks_created([(t, x) for t, (x, _) in truth.items()]))
    flipped = {7, 20}
    for tid in range(1, 61):
        label = truth[tid][1]
        if tid in flipped:
            label = "neg" if label == "pos" else "pos"
        client.post("/webhook", json=annotation_event(tid, tid, truth[tid][0], label))
    # a second annotator disagrees on task 33
    client.post("/webhook", json=annotation_event(1000, 33, truth[33][0], "neg"))  # task 33 is "pos"
    worker()
    review = client.get("/status/1").json()["progress"]["review"]
    suspicious = {r["task"] for r in review if "proba_of_label" in r}
    assert flipped <= suspicious and len(suspicious) <= 4
    assert [r["task"] for r in review if "answers" in r] == [33]
    page = client.get("/dashboard/1").text
    assert 'href="http://label-studio.example:8080/projects/1/data?task=7"' in page
    assert 'href="http://label-studio.example:8080/projects/1/data?task=33"' in page


def test_pages_before_a_model_and_for_unknown_projects(client, store, worker):
    assert "No project is set up yet" in client.get("/dashboard").text
    assert client.get("/dashboard/5").status_code == 404
    client.post("/setup", json=setup_body())
    page = client.get("/dashboard/1")
    assert page.status_code == 200 and "No trained model has been evaluated yet" in page.text
    assert client.get("/status/1").json()["progress"] is None
    index = client.get("/dashboard").text
    assert 'href="/dashboard/1"' in index and "no model yet" in index


def test_dashboard_needs_basic_auth_when_on(monkeypatch, settings, redis_conn):
    from fastapi.testclient import TestClient

    from backend.settings import get_settings

    monkeypatch.setenv("BASIC_AUTH_USER", "reviewer")
    monkeypatch.setenv("BASIC_AUTH_PASS", "s3cret")
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), redis_conn)) as c:
        assert c.post("/setup", json=setup_body(), auth=("reviewer", "s3cret")).status_code == 200
        for path in ("/dashboard", "/dashboard/1"):
            assert c.get(path).status_code == 401
            assert c.get(path, auth=("reviewer", "wrong")).status_code == 401
            assert c.get(path, auth=("reviewer", "s3cret")).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(settings, redis_conn):
    """The app served by uvicorn on loopback, in a thread of this process."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, redis_conn), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(*args: str, profile) -> str:
    """Run Debian's headless Chromium; returns what it printed."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is needed (apt-get install -y chromium; .ci/run installs it)")
    proc = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_dashboard_renders_in_headless_chromium(client, store, worker, live_server, tmp_path):
    annotate_rounds(client, store, worker, rounds=3)
    dom = chromium("--dump-dom", f"{live_server}/dashboard/1", profile=tmp_path / "profile")
    for plot_id in ("plot-learning-curve", "plot-savings", "plot-kappa", "plot-labels"):
        assert f'<svg id="{plot_id}"' in dom, plot_id
    assert dom.count("<svg") == 4
    assert 'id="recommendation"' in dom and 'id="numbers"' in dom
    assert '<meta http-equiv="refresh"' in dom
    # nothing fetched from elsewhere: no script, no stylesheet link, no external src or href
    assert "<script" not in dom and "<link" not in dom
    assert not re.search(r'(src|href)="(https?:)?//(?!127\.0\.0\.1:)', dom)
    index = chromium("--dump-dom", f"{live_server}/dashboard", profile=tmp_path / "profile")
    assert 'href="/dashboard/1"' in index
    shot = tmp_path / "dashboard.png"
    chromium(f"--screenshot={shot}", "--window-size=1400,1800", f"{live_server}/dashboard/1",
             profile=tmp_path / "profile")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_only_tasks_served_as_controls_count_as_unbiased_outcomes(client, store, worker, redis_conn):
    """A task in one version's control share but labeled while a later version (which did not draw it)
    served is a strategy pick, not a random sample: it must not count."""
    truth = annotate_rounds(client, store, worker, rounds=2)
    served = store.current_version()
    ranking = store.ranking(served)
    served_controls = store.random_pick_tasks(served) & set(sorted(ranking, key=ranking.get)[:OPTIONS["head_size"]])
    pending = {int(k): orjson.loads(v) for k, v in redis_conn.hgetall(store.key("progress:pending")).items()}
    assert served_controls and all(served in pending[t] for t in served_controls)
    # Tasks pending from an older version only (not a control of the serving one).
    stale = sorted(t for t, versions in pending.items() if served not in versions)
    assert stale, "the serving version re-drew its control share; some older control tasks are not in it"
    control_task, strategy_pick = sorted(served_controls)[0], stale[0]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # as precise as Label Studio's
    for ann_id, tid in ((900, control_task), (901, strategy_pick)):
        client.post("/webhook", json=annotation_event(ann_id, tid, truth[tid][0], truth[tid][1], updated_at=stamp))
    time.sleep(1.05)
    worker()
    outcomes = {int(k): orjson.loads(v) for k, v in redis_conn.hgetall(store.key("progress:outcomes")).items()}
    assert outcomes[control_task]["served_by"] == served
    assert outcomes[control_task]["truth"] == {"sentiment": truth[control_task][1]}
    assert strategy_pick not in outcomes
    assert redis_conn.hget(store.key("progress:pending"), strategy_pick) is None  # decided, not kept forever
