#!/usr/bin/env python
"""Benchmark any Label Studio ML backend over HTTP, with real labeled text.

It talks to the backend exactly as Label Studio 1.23 does (same request bodies
as ``shared/label-studio-payloads``), on a throw-away project id:

1. ``POST /setup`` for project ``<pid>.<epoch>`` (``--project``, default 9001);
2. unless ``--no-train``: ``TASKS_CREATED`` webhooks for every task (as an
   import does), one ``ANNOTATION_CREATED`` webhook per labeled task
   (``--train-labels`` real Rotten Tomatoes labels), then ``START_TRAINING``,
   and waits until a trained model serves (``GET /status/<pid>`` when the
   backend has it, else a new name in ``GET /versions``).  Training runs in
   the backend's own worker: start it yourself, this script never does;
3. measures, on one keep-alive connection, with texts the model never saw:
   ``/predict`` with 1 task (latency percentiles), ``/predict`` with 1,000
   tasks (tasks/s), ``/webhook`` ``ANNOTATION_UPDATED`` (latency), and the
   RSS of the serving processes afterwards.  ``/predict`` is measured twice:
   on *announced* tasks (sent by ``TASKS_CREATED`` before training, so the
   worker ranked them: the score is a lookup) and on *unannounced* ones (the
   same texts under ids the backend never heard of, as a task opened before
   its webhook arrived: features, model and a live place in the queue);
4. prints a table and writes everything as JSON (``--out``).

``--repeat K`` runs the measurement rounds K times and reports the median
of each number across rounds (per-round numbers are kept in the JSON).

Usage (backend and its worker already running)::

    .venv/bin/python bench/bench_backend.py --url http://127.0.0.1:9393
    .venv/bin/python bench/bench_backend.py --no-train --repeat 1 --single-requests 200
    .venv/bin/python bench/bench_backend.py --server-pids 1234,1235 --auth user:pass

Only httpx, numpy and psutil are needed (and ``backend.simulation.datasets`` for data).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is optional: RSS is then skipped
    psutil = None

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for backend.simulation.datasets when run from anywhere

from backend.simulation.datasets import load_dataset  # noqa: E402

WARMUP_SINGLE, WARMUP_BATCH, WARMUP_WEBHOOK = 50, 2, 50
BATCH_SIZE = 1000
UNANNOUNCED_OFFSET = 500_000  # ids of the unannounced copies: never sent in TASKS_CREATED
TARGETS = {  # what this project asks of its own backend on a 2-core machine
    "predict_1_p50_ms": ("<=", 5.0),
    "predict_1_p99_ms": ("<=", 20.0),
    "predict_1000_tasks_per_s": (">=", 12_000.0),
    "webhook_p99_ms": ("<=", 10.0),
    "webhook_changed_p99_ms": ("<=", 10.0),
    "rss_max_mb": ("<=", 250.0),
}


# -- request bodies ------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """The label config and the names a result must carry."""

    xml: str
    from_name: str
    to_name: str
    value_key: str
    labels: tuple[str, ...]


def default_config(labels: list[str]) -> str:
    choices = "".join(f'<Choice value="{label}"/>' for label in labels)
    return (
        '<View><Text name="text" value="$text"/>'
        f'<Choices name="sentiment" toName="text">{choices}</Choices></View>'
    )


def parse_config(xml: str) -> Config:
    """The first ``<Choices>`` and the ``$key`` of the object it labels."""
    root = ET.fromstring(xml)
    choices = next(root.iter("Choices"), None)
    if choices is None:
        raise SystemExit("the label config has no <Choices> tag")
    to_name = choices.get("toName", "").split(",")[0]
    obj = next((el for el in root.iter() if el.get("name") == to_name and el.get("value")), None)
    if obj is None:
        raise SystemExit(f"no object tag named {to_name!r} with a value in the label config")
    labels = tuple(c.get("value", "") for c in choices.iter("Choice"))
    return Config(xml, choices.get("name", ""), to_name, obj.get("value", "").lstrip("$"), labels)


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ls_task(tid: int, pid: int, cfg: Config, text: str, labeled: bool, t: float) -> dict:
    """A task as Label Studio sends it to /predict (and, trimmed, in webhooks)."""
    return {
        "id": tid,
        "data": {cfg.value_key: text},
        "meta": {},
        "created_at": iso(t),
        "updated_at": iso(t),
        "is_labeled": labeled,
        "overlap": 1,
        "inner_id": tid % 1_000_000 + 1,
        "total_annotations": int(labeled),
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": pid,
        "updated_by": None,
        "file_upload": None,
        "comment_authors": [],
        "annotations": [],
        "predictions": [],
    }


def project_ref(pid: int, cfg: Config) -> dict:
    """The part of the ``project`` object of webhooks that a backend may read."""
    return {"id": pid, "title": "bench", "label_config": cfg.xml, "model_version": "", "sampling": ""}


def annotation_event(
    action: str, pid: int, cfg: Config, tid: int, text: str, label: str, created: float, updated: float
) -> dict:
    """``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` as webhook_annotation_*.json."""
    task = ls_task(tid, pid, cfg, text, True, created)
    for k in ("annotations", "predictions"):
        task.pop(k)
    task.update(updated_at=iso(updated), allow_skip=True, precomputed_agreement=None, updated_by=1)
    return {
        "action": action,
        "annotation": {
            "id": tid,  # one annotation per task: its id is the task's
            "result": [
                {"from_name": cfg.from_name, "to_name": cfg.to_name, "type": "choices", "value": {"choices": [label]}}
            ],
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": iso(created),
            "updated_at": iso(updated),
            "draft_created_at": None,
            "lead_time": 1.5,
            "prediction": {},
            "result_count": 1,
            "import_id": None,
            "last_action": None,
            "bulk_created": False,
            "task": tid,
            "project": pid,
            "completed_by": 1,
            "updated_by": 1,
            "parent_prediction": None,
            "parent_annotation": None,
            "last_created_by": None,
        },
        "project": project_ref(pid, cfg),
        "task": task,
    }


def predict_body(project: str, pid: int, cfg: Config, tasks: list[tuple[int, str]], t: float) -> bytes:
    body = {
        "tasks": [ls_task(tid, pid, cfg, text, False, t) for tid, text in tasks],
        "project": project,
        "label_config": cfg.xml,
        "params": {"login": None, "password": None, "context": None},
    }
    return json.dumps(body).encode()


# -- HTTP ----------------------------------------------------------------------
def post(client: httpx.Client, path: str, body: bytes) -> tuple[float, httpx.Response]:
    """POST pre-encoded JSON; returns (seconds, response) with the body read."""
    t0 = time.perf_counter()
    resp = client.post(path, content=body, headers={"content-type": "application/json"})
    return time.perf_counter() - t0, resp


def check(resp: httpx.Response, what: str) -> None:
    if resp.status_code != 200:
        raise SystemExit(f"{what}: HTTP {resp.status_code}: {resp.text[:500]}")


def ms_stats(seconds: list[float]) -> dict[str, float]:
    a = np.asarray(seconds) * 1e3
    return {
        "n": int(a.size),
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
        "mean_ms": float(a.mean()),
    }


class PredictChecker:
    """Counts answers that break the protocol: one ``results`` item per task."""

    def __init__(self) -> None:
        self.answers = self.bad = self.empty_results = 0
        self.model_versions: set[str] = set()
        self.problems: list[str] = []

    def __call__(self, resp: httpx.Response, n_tasks: int) -> None:
        self.answers += 1
        problem = None
        if resp.status_code != 200:
            problem = f"HTTP {resp.status_code}: {resp.text[:200]}"
        else:
            results = resp.json().get("results")
            if not isinstance(results, list) or len(results) != n_tasks:
                got = len(results) if isinstance(results, list) else type(results).__name__
                problem = f"{got} results for {n_tasks} tasks"
            else:
                for item in results:
                    if not isinstance(item, dict) or "result" not in item or "score" not in item:
                        problem = f"malformed item {str(item)[:200]}"
                        break
                    self.empty_results += not item["result"]
                    self.model_versions.add(str(item.get("model_version")))
        if problem:
            self.bad += 1
            if len(self.problems) < 5:
                self.problems.append(problem)

    def summary(self) -> dict:
        return {
            "answers": self.answers,
            "bad_answers": self.bad,
            "tasks_without_result": self.empty_results,
            "model_versions": sorted(self.model_versions),
            "problems": self.problems,
        }


# -- steps ---------------------------------------------------------------------
def setup(client: httpx.Client, project: str, cfg: Config) -> str:
    body = {"project": project, "schema": cfg.xml, "hostname": "", "access_token": "", "extra_params": None}
    _, resp = post(client, "/setup", json.dumps(body).encode())
    check(resp, "POST /setup")
    return resp.json().get("model_version", "")


def train(
    client: httpx.Client, pid: int, cfg: Config, tasks: list[tuple[int, str]],
    labeled: list[tuple[int, str, str]], timeout: float,
) -> dict:
    """Send the labels and START_TRAINING; wait for a trained model to serve."""
    t0 = time.time()
    # Imported tasks: Label Studio announces them (TASKS_CREATED) before anyone labels.
    for start in range(0, len(tasks), BATCH_SIZE):
        body = {"action": "TASKS_CREATED", "project": project_ref(pid, cfg),
                "tasks": [ls_task(tid, pid, cfg, text, False, t0) for tid, text in tasks[start:start + BATCH_SIZE]]}
        _, resp = post(client, "/webhook", json.dumps(body).encode())
        check(resp, "TASKS_CREATED webhook")
    for tid, text, label in labeled:
        _, resp = post(client, "/webhook", json.dumps(
            annotation_event("ANNOTATION_CREATED", pid, cfg, tid, text, label, t0, t0)).encode())
        check(resp, "ANNOTATION_CREATED webhook")
    sent_s = time.time() - t0
    versions_before = versions(client, pid)
    t1 = time.perf_counter()
    _, resp = post(client, "/webhook", json.dumps({"action": "START_TRAINING", "project": {"id": pid}}).encode())
    check(resp, "START_TRAINING webhook")
    n = len(labeled)
    use_status = client.get(f"/status/{pid}").status_code == 200
    while time.perf_counter() - t1 < timeout:
        if use_status:
            current = client.get(f"/status/{pid}").json().get("current") or {}
            if current.get("kind") == "model" and current.get("labeled_tasks", 0) >= n:
                return {"labels_sent_s": sent_s, "train_wait_s": time.perf_counter() - t1, "via": "/status",
                        "version": current.get("version"), "version_meta": current}
        else:
            new = [v for v in versions(client, pid) if v not in versions_before]
            if new:
                return {"labels_sent_s": sent_s, "train_wait_s": time.perf_counter() - t1, "via": "/versions",
                        "version": new[-1]}
        time.sleep(0.2)
    raise SystemExit(
        f"no trained model after {timeout:.0f} s (--train-timeout). Is the backend's worker running "
        f"(for this project: AL_KEY_PREFIX/AL_QUEUE as the server's, `al-backend worker`)? "
        "Or run with --no-train."
    )


def versions(client: httpx.Client, pid: int) -> list[str]:
    resp = client.get("/versions", params={"project": str(pid)})
    return list(resp.json().get("versions") or []) if resp.status_code == 200 else []


def bench_single(
    client: httpx.Client, project: str, pid: int, cfg: Config, pool: list[tuple[int, str]], n: int,
    checker: PredictChecker,
) -> dict:
    """``n`` sequential one-task /predict requests after a warm-up; latency percentiles."""
    bodies = [predict_body(project, pid, cfg, [pool[i % len(pool)]], time.time()) for i in range(n + WARMUP_SINGLE)]
    times = []
    for i, body in enumerate(bodies):
        s, resp = post(client, "/predict", body)
        checker(resp, 1)
        if i >= WARMUP_SINGLE:
            times.append(s)
    return ms_stats(times)


def bench_batch(
    client: httpx.Client, project: str, pid: int, cfg: Config, pool: list[tuple[int, str]], n: int,
    checker: PredictChecker,
) -> dict:
    """``n`` /predict requests of 1,000 tasks each; tasks/s is the median over requests."""
    rates, times = [], []
    for i in range(n + WARMUP_BATCH):
        start = (i * BATCH_SIZE) % len(pool)
        tasks = [pool[(start + j) % len(pool)] for j in range(BATCH_SIZE)]
        s, resp = post(client, "/predict", predict_body(project, pid, cfg, tasks, time.time()))
        checker(resp, BATCH_SIZE)
        if i >= WARMUP_BATCH:
            times.append(s)
            rates.append(BATCH_SIZE / s)
    return {"tasks_per_s": float(np.median(rates)), "tasks_per_s_min": float(min(rates)), **ms_stats(times)}


def bench_webhook(
    client: httpx.Client, pid: int, cfg: Config, labeled: list[tuple[int, str, str]], n: int, change: bool
) -> dict:
    """``n`` sequential ANNOTATION_UPDATED webhooks with a newer ``updated_at``.

    ``change=False``: the same label (a re-save).  ``change=True``: the first
    half moves each task to another label and the second half moves it back,
    so every event is a real change and the backend's worker retrains while
    the webhooks are timed (the busy case, with the labels restored after).
    """
    times, errors = [], []
    created = time.time() - 3600
    half = max(1, (n + WARMUP_WEBHOOK) // 2)
    for i in range(n + WARMUP_WEBHOOK):
        tid, text, label = labeled[i % min(half, len(labeled))] if change else labeled[i % len(labeled)]
        if change and i < half:
            label = next(x for x in cfg.labels if x != label)
        body = json.dumps(annotation_event("ANNOTATION_UPDATED", pid, cfg, tid, text, label, created, time.time()))
        s, resp = post(client, "/webhook", body.encode())
        if resp.status_code != 200 and len(errors) < 5:
            errors.append(f"HTTP {resp.status_code}: {resp.text[:200]}")
        if i >= WARMUP_WEBHOOK:
            times.append(s)
    return {**ms_stats(times), "errors": errors}


# -- memory --------------------------------------------------------------------
def server_processes(url: str, pids: str | None) -> tuple[list, str]:
    """The serving processes: given pids, or those listening on the URL's port and their children."""
    if psutil is None:
        return [], "psutil is not installed"
    if pids:
        try:
            return [psutil.Process(int(p)) for p in pids.split(",") if p.strip()], "--server-pids"
        except (ValueError, psutil.Error) as exc:
            return [], f"--server-pids {pids}: {exc}"
    port = urlsplit(url).port or (443 if url.startswith("https") else 80)
    # Per process, not psutil.net_connections(): that reports a socket shared by
    # a supervisor and its forked workers under one pid only.
    listeners: dict[int, Any] = {}
    for p in psutil.process_iter():
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections("tcp")):
                listeners[p.pid] = p
        except psutil.Error:
            continue
    if not listeners:
        return [], f"psutil sees no process listening on port {port} (other user or container?); pass --server-pids"
    procs = dict(listeners)
    for p in listeners.values():
        for child in p.children(recursive=True):
            procs[child.pid] = child
        # Workers started by a supervisor that does not listen itself: same parent, same program.
        parent = p.parent()
        if parent is not None and parent.pid not in listeners:
            for sib in parent.children():
                if sib.pid not in procs and sib.cmdline() == p.cmdline():
                    procs[sib.pid] = sib
    procs = {pid: p for pid, p in procs.items() if pid in listeners or p.children() or _serves(p)}
    return sorted(procs.values(), key=lambda p: p.pid), f"listening on port {port} (+ children)"


def _serves(p) -> bool:
    """False for helpers such as multiprocessing's resource tracker (they hold no sockets)."""
    try:
        return "resource_tracker" not in " ".join(p.cmdline())
    except psutil.Error:
        return False


def memory(procs: list) -> list[dict]:
    """RSS (and USS when readable) of each process, in MB."""
    out = []
    for p in procs:
        try:
            with p.oneshot():
                info = {"pid": p.pid, "name": p.name(), "rss_mb": p.memory_info().rss / 2**20,
                        "role": "supervisor" if p.children() else "server",
                        "cmdline": " ".join(p.cmdline())[:160]}
            try:
                info["uss_mb"] = p.memory_full_info().uss / 2**20
            except psutil.AccessDenied:
                pass
        except psutil.Error as exc:
            info = {"pid": p.pid, "error": type(exc).__name__}
        out.append(info)
    return out


# -- report --------------------------------------------------------------------
def median_of(rounds: list[dict], key: str) -> float:
    return float(statistics.median(r[key] for r in rounds))


def redact(argv: list[str]) -> list[str]:
    """The command line without the basic-auth password."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--auth" and i + 1 < len(out):
            out[i + 1] = "***"
        elif arg.startswith("--auth="):
            out[i] = "--auth=***"
    return out


def git_commit() -> str | None:
    """The commit of the checkout this script runs from (``+dirty`` if it has changes)."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", "-C", str(HERE), *cmd], capture_output=True, text=True, timeout=5).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        return (head + ("+dirty" if git("status", "--porcelain", "--", "backend", "worker") else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": model or platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def verdict(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    op, target = TARGETS[key]
    ok = value <= target if op == "<=" else value >= target
    return f"{'ok' if ok else 'MISSED'} ({op} {target:g})"


def print_table(
    summary: dict, mem: list[dict], train_info: dict | None, checks: dict, webhook_errors: list[str]
) -> None:
    rows = [
        ("/predict 1 task p50 (ms)", summary["predict_1_p50_ms"], "predict_1_p50_ms"),
        ("/predict 1 task p90 (ms)", summary["predict_1_p90_ms"], None),
        ("/predict 1 task p99 (ms)", summary["predict_1_p99_ms"], "predict_1_p99_ms"),
        ("/predict 1 task max (ms)", summary["predict_1_max_ms"], None),
        ("/predict 1,000 tasks (tasks/s)", summary["predict_1000_tasks_per_s"], "predict_1000_tasks_per_s"),
        ("/predict 1,000 tasks p50 (ms)", summary["predict_1000_p50_ms"], None),
        ("unannounced: /predict 1 task p50 (ms)", summary["predict_1_unannounced_p50_ms"], None),
        ("unannounced: /predict 1 task p99 (ms)", summary["predict_1_unannounced_p99_ms"], None),
        ("unannounced: 1,000 tasks (tasks/s)", summary["predict_1000_unannounced_tasks_per_s"], None),
        ("/webhook UPDATED p50 (ms)", summary["webhook_p50_ms"], None),
        ("/webhook UPDATED p99 (ms)", summary["webhook_p99_ms"], "webhook_p99_ms"),
        ("/webhook label changes p50 (ms)", summary["webhook_changed_p50_ms"], None),
        ("/webhook label changes p99 (ms)", summary["webhook_changed_p99_ms"], "webhook_changed_p99_ms"),
        ("max RSS per serving process (MB)", summary["rss_max_mb"], "rss_max_mb"),
    ]
    print()
    if train_info:
        print(f"training: labels sent in {train_info['labels_sent_s']:.1f} s; trained model serving "
              f"{train_info['train_wait_s']:.1f} s after START_TRAINING ({train_info['version']}, via {train_info['via']})")
    print(f"{'measure (median of rounds)':40} {'value':>10}  target")
    print("-" * 72)
    for label, value, key in rows:
        shown = "n/a" if value is None else f"{value:10.1f}"
        print(f"{label:40} {shown:>10}  {verdict(key, value) if key else ''}")
    print("-" * 72)
    for m in mem:
        if "rss_mb" in m:
            uss = f", USS {m['uss_mb']:.0f} MB" if "uss_mb" in m else ""
            print(f"  pid {m['pid']:>7} {m['role']:10} RSS {m['rss_mb']:6.0f} MB{uss}")
        else:
            print(f"  pid {m['pid']:>7} {m.get('error')}")
    print(f"/predict answers: {checks['answers']}, bad: {checks['bad_answers']}, "
          f"tasks with an empty result: {checks['tasks_without_result']}, "
          f"model_version(s): {', '.join(checks['model_versions'][:4])}")
    for p in checks["problems"]:
        print(f"  problem: {p}")
    for e in webhook_errors:
        print(f"  /webhook error: {e}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:9090", help="the ML backend")
    ap.add_argument("--project", type=int, default=9001, help="Label Studio project id to use")
    ap.add_argument("--dataset", default="rotten-tomatoes", help="a backend.simulation.datasets name")
    ap.add_argument("--texts", type=int, default=0, help="use only the first N rows after shuffling (0 = all)")
    ap.add_argument("--label-config-file", help="label config XML (default: Text + Choices over the labels)")
    ap.add_argument("--no-train", action="store_true", help="skip sending tasks and labels and waiting for training")
    ap.add_argument("--train-labels", type=int, default=1000, help="labeled tasks sent before measuring")
    ap.add_argument("--train-timeout", type=float, default=300.0, help="seconds to wait for a trained model")
    ap.add_argument("--single-requests", type=int, default=1000, help="one-task /predict requests per round")
    ap.add_argument("--batch-requests", type=int, default=20, help="1,000-task /predict requests per round")
    ap.add_argument("--webhook-requests", type=int, default=1000, help="ANNOTATION_UPDATED webhooks per round")
    ap.add_argument("--repeat", type=int, default=3, help="measurement rounds; medians are reported")
    ap.add_argument("--server-pids", help="comma-separated pids of the serving processes (default: find them)")
    ap.add_argument("--auth", help="user:password for HTTP basic auth, if the backend requires it")
    ap.add_argument("--seed", type=int, default=0, help="shuffles which texts train and which are predicted")
    ap.add_argument("--out", help="JSON results (default: bench/results/backend-<UTC timestamp>.json)")
    args = ap.parse_args(argv)

    started = dt.datetime.now(dt.timezone.utc)
    machine_info = machine()
    ds = load_dataset(args.dataset)
    rows = list(zip(ds.texts, ds.labels))
    random.Random(args.seed).shuffle(rows)
    if args.texts:
        rows = rows[: args.texts]
    cfg = parse_config(Path(args.label_config_file).read_text() if args.label_config_file
                       else default_config(sorted(set(ds.labels))))
    missing = sorted(set(ds.labels) - set(cfg.labels))
    if missing:
        raise SystemExit(f"the label config has no <Choice> for the dataset's labels {missing}")
    pid = args.project
    n_train = 0 if args.no_train else args.train_labels
    if len(rows) <= n_train:
        raise SystemExit(f"{len(rows)} texts cannot give {n_train} training labels and unseen texts to predict")
    base = pid * 1_000_000
    labeled = [(base + i, t, y) for i, (t, y) in enumerate(rows[:n_train])]
    # Held-out texts to predict; with --no-train the webhook round updates some of these.
    pool = [(base + i, t) for i, (t, _) in enumerate(rows) if i >= n_train]
    webhook_tasks = labeled or [(base + i, t, y) for i, (t, y) in enumerate(rows[:1000])]
    project = f"{pid}.{int(started.timestamp())}"

    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    client = httpx.Client(base_url=args.url, timeout=120.0, auth=auth)
    print(f"{args.url}: project {project}, {len(rows)} texts ({args.dataset}), {n_train} training labels")
    try:
        client.get("/health")
    except httpx.HTTPError as exc:
        raise SystemExit(f"cannot reach {args.url}: {exc}") from None
    setup_version = setup(client, project, cfg)
    train_info = None
    if not args.no_train:
        all_tasks = [(tid, text) for tid, text, _ in labeled] + pool
        train_info = train(client, pid, cfg, all_tasks, labeled, args.train_timeout)
    if train_info:
        print(f"trained model serving {train_info['train_wait_s']:.1f} s after START_TRAINING")

    checker = PredictChecker()
    # The same held-out texts under ids no webhook announced: never ranked, scored live.
    unannounced = [(base + UNANNOUNCED_OFFSET + i, text) for i, (_, text) in enumerate(pool)]
    rounds = []
    for k in range(args.repeat):
        r_single = bench_single(client, project, pid, cfg, pool, args.single_requests, checker)
        r_batch = bench_batch(client, project, pid, cfg, pool, args.batch_requests, checker)
        u_single = bench_single(client, project, pid, cfg, unannounced, args.single_requests, checker)
        u_batch = bench_batch(client, project, pid, cfg, unannounced, args.batch_requests, checker)
        r_hook = bench_webhook(client, pid, cfg, webhook_tasks, args.webhook_requests, change=False)
        r_change = bench_webhook(client, pid, cfg, webhook_tasks, args.webhook_requests, change=True)
        rounds.append({"predict_1": r_single, "predict_1000": r_batch, "predict_1_unannounced": u_single,
                       "predict_1000_unannounced": u_batch, "webhook": r_hook, "webhook_changed": r_change})
        print(f"round {k + 1}/{args.repeat}: /predict 1 p50 {r_single['p50_ms']:.1f} ms p99 {r_single['p99_ms']:.1f} ms"
              f" (unannounced {u_single['p50_ms']:.1f} / {u_single['p99_ms']:.1f} ms)"
              f" | 1,000 tasks {r_batch['tasks_per_s']:,.0f}/s (unannounced {u_batch['tasks_per_s']:,.0f}/s)"
              f" | /webhook p99 {r_hook['p99_ms']:.1f} ms (label changes: {r_change['p99_ms']:.1f} ms)")
    procs, found_by = server_processes(args.url, args.server_pids)
    mem = memory(procs)
    if not procs:
        print(f"RSS not measured: {found_by}")

    flat = [{**{f"predict_1_{k}": v for k, v in r["predict_1"].items()},
             **{f"predict_1000_{k}": v for k, v in r["predict_1000"].items()},
             **{f"predict_1_unannounced_{k}": v for k, v in r["predict_1_unannounced"].items()},
             **{f"predict_1000_unannounced_{k}": v for k, v in r["predict_1000_unannounced"].items()},
             **{f"webhook_{k}": v for k, v in r["webhook"].items() if k != "errors"},
             **{f"webhook_changed_{k}": v for k, v in r["webhook_changed"].items() if k != "errors"}} for r in rounds]
    summary = {key: median_of(flat, key) for key in flat[0]}
    rss = [m["rss_mb"] for m in mem if "rss_mb" in m]
    summary["rss_max_mb"] = max(rss) if rss else None
    checks = checker.summary()
    webhook_errors = [e for r in rounds for w in ("webhook", "webhook_changed") for e in r[w]["errors"]][:5]
    print_table(summary, mem, train_info, checks, webhook_errors)

    out = Path(args.out) if args.out else HERE / "results" / f"backend-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *redact(sys.argv)]),
        "args": {**vars(args), "auth": "***" if args.auth else None},
        "machine": machine_info,
        "git_commit": git_commit(),  # of this checkout: the backend's code if it runs from here
        "url": args.url,
        "project": project,
        "setup_model_version": setup_version,
        "training": train_info,
        "summary": summary,
        "targets": {k: {"op": op, "value": v, "verdict": verdict(k, summary.get(k))} for k, (op, v) in TARGETS.items()},
        "rounds": rounds,
        "memory": {"found_by": found_by, "processes": mem},
        "predict_checks": checks,
    }
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {out}")
    return 1 if checks["bad_answers"] or webhook_errors else 0


if __name__ == "__main__":
    sys.exit(main())
