#!/usr/bin/env python
"""This backend against the official ``sklearn_text_classifier`` example, side by side.

Why: a speed claim against a peer only means something when both run in the
same run, on the same machine, on the same data, taking turns.  This script:

1. installs the official example from a checkout of
   ``HumanSignal/label-studio-ml-backend`` (``--official PATH``; bring it
   with ``git clone``) into its own venv (``.cache/official-venv``), with two
   changes to its requirements so it installs from PyPI:
   ``label-studio-sdk==2.1.2`` instead of a git pin, and no pillow pin;
2. trains both on the same ``--train-labels`` real Rotten Tomatoes labels:
   the official one through its own ``fit`` (its ``_get_tasks``, which
   would read Label Studio, is handed the same tasks instead), this one
   through webhooks and ``START_TRAINING`` to its own worker;
3. serves both as their defaults say: the official one with gunicorn
   (1 worker, 8 threads, ``LOG_LEVEL=INFO``: its compose file's ``DEBUG``
   would log every probability array), this one with
   ``al-backend serve --workers 2``;
4. takes turns (``--rounds``, the order alternating): ``/predict`` with
   1,000 tasks (``--batch-requests``) and with 1 task
   (``--single-requests``), with texts neither model saw, on one keep-alive
   connection; CPU seconds of the serving processes are read before and
   after each phase (psutil), so CPU per task excludes the client;
5. prints medians and the ratios (this / official), and writes JSON.

This backend is measured twice: on tasks it has never seen (``unannounced``:
computed from the text) and on tasks Label Studio announced and the worker
ranked (``announced``), since Label Studio sends both.

Usage::

    git clone /work/.mirror/HumanSignal+label-studio-ml-backend/repo /tmp/official   # or from GitHub
    .venv/bin/python bench/bench_official.py --official /tmp/official
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from bench_backend import (  # noqa: E402
    PredictChecker,
    default_config,
    git_commit,
    machine,
    parse_config,
    post,
    predict_body,
    setup,
    train,
)

from backend.simulation.datasets import load_dataset  # noqa: E402
from backend.state.store import namespace_pattern

EXAMPLE = Path("label_studio_ml/examples/sklearn_text_classifier")
PID = 9101
BATCH = 1000

# Run inside the official venv: its own model class, its own fit, on our tasks.
_TRAIN_OFFICIAL = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from model import SklearnTextClassifier
spec = json.load(open(sys.argv[2]))
SklearnTextClassifier._get_tasks = lambda self, project_id: spec["tasks"]  # instead of Label Studio's API
m = SklearnTextClassifier(project_id=str(spec["pid"]), label_config=spec["config"])
m.fit("START_TRAINING", {"annotation": {"project": spec["pid"]}})
print("trained")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer /health at {url} within {timeout:.0f} s")


def official_venv(checkout: Path, home: Path) -> Path:
    """The official example's venv, made once: its requirements, two pins changed."""
    venv = home / "official-venv"
    py = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.exists():
        return py
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    reqs = []
    for line in (checkout / "requirements.txt").read_text().splitlines():
        if line.strip().startswith("label-studio-sdk"):
            line = "label-studio-sdk==2.1.2"  # the git pin cannot install here
        reqs.append(line)
    for line in (checkout / EXAMPLE / "requirements.txt").read_text().splitlines():
        reqs.append("pillow" if line.strip().startswith("pillow") else line)
    reqs.append("gunicorn==23.0.0")  # requirements-base.txt's server
    req_file = home / "official-requirements.txt"
    req_file.write_text("\n".join(reqs) + "\n")
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["-r", str(req_file)], check=True)
    subprocess.run(pip + ["--no-deps", str(checkout)], check=True)
    stamp.touch()
    return py


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def measure(url: str, project: str, cfg, pool: list[tuple[int, str]], procs, batches: int, singles: int) -> dict:
    """One turn: ``batches`` requests of 1,000 tasks, then ``singles`` of one task."""
    checker = PredictChecker()
    out: dict = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for phase, n, size in (("batch", batches, BATCH), ("single", singles, 1)):
            bodies = [predict_body(project, PID, cfg, [pool[(i * size + j) % len(pool)] for j in range(size)],
                                   time.time()) for i in range(n + 2)]
            for body in bodies[:2]:  # warm-up
                post(client, "/predict", body)
            cpu0, times = cpu_seconds(procs), []
            for body in bodies[2:]:
                s, resp = post(client, "/predict", body)
                checker(resp, size)
                times.append(s)
            cpu = cpu_seconds(procs) - cpu0
            out[phase] = {
                "tasks_per_s": size * n / sum(times),
                "p50_ms": 1e3 * statistics.median(times),
                "cpu_ms_per_task": 1e3 * cpu / (size * n),
            }
    out["protocol"] = checker.summary()
    if checker.bad:
        raise SystemExit(f"{url}: {checker.bad} bad /predict answers: {checker.problems}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", type=Path, required=True, help="checkout of HumanSignal/label-studio-ml-backend")
    ap.add_argument("--home", type=Path, default=REPO / ".cache", help="where the official venv lives")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-requests", type=int, default=10)
    ap.add_argument("--single-requests", type=int, default=200)
    ap.add_argument("--train-labels", type=int, default=1000)
    ap.add_argument("--redis", default=os.environ.get("AL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "official-latest.json")
    args = ap.parse_args(argv)
    if not (args.official / EXAMPLE / "model.py").exists():
        raise SystemExit(f"{args.official} is not a checkout of label-studio-ml-backend (no {EXAMPLE}/model.py)")
    args.home.mkdir(parents=True, exist_ok=True)
    py = official_venv(args.official, args.home)

    ds = load_dataset("rotten-tomatoes")
    order = np.random.default_rng(0).permutation(len(ds.texts))
    labels = sorted(set(ds.labels))
    cfg = parse_config(default_config(labels))
    n_lab = args.train_labels
    # Task ids: 1..N announced to this backend; unseen texts get ids it never heard of.
    announced = [(int(k) + 1, ds.texts[i]) for k, i in enumerate(order[: len(order) // 2])]
    labeled = [(tid, text, ds.labels[order[tid - 1]]) for tid, text in announced[:n_lab]]
    unseen = [(10_000_000 + int(k), ds.texts[i]) for k, i in enumerate(order[len(order) // 2:])]
    announced_pool = announced[n_lab:]

    procs: dict[str, subprocess.Popen] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-official-"))
    prefix, queue = f"bofficial-{uuid.uuid4().hex[:6]}", f"bofficial-q-{uuid.uuid4().hex[:6]}"
    try:
        # -- the official example: trained by its own fit, served by gunicorn
        spec = {"pid": PID, "config": cfg.xml, "tasks": [
            {"id": tid, "data": {cfg.value_key: text},
             "annotations": [{"result": [{"from_name": cfg.from_name, "to_name": cfg.to_name, "type": "choices",
                                          "value": {"choices": [label]}}]}]}
            for tid, text, label in labeled]}
        (tmp / "spec.json").write_text(json.dumps(spec))
        env_off = {**{k: v for k, v in os.environ.items() if not k.startswith(("AL_", "LABEL_STUDIO"))},
                   "MODEL_DIR": str(tmp), "LOG_LEVEL": "INFO", "LABEL_STUDIO_HOST": "http://127.0.0.1:9",
                   "LABEL_STUDIO_API_KEY": "unused"}
        example = args.official / EXAMPLE
        t0 = time.perf_counter()
        subprocess.run([str(py), "-c", _TRAIN_OFFICIAL, str(example), str(tmp / "spec.json")], check=True,
                       env=env_off, cwd=tmp, stdout=subprocess.DEVNULL)
        official_train_s = time.perf_counter() - t0
        if not (tmp / "model.pkl").exists():
            raise SystemExit("the official example did not write model.pkl")
        port_off = free_port()
        procs["official"] = subprocess.Popen(
            [str(py), "-m", "gunicorn", "--preload", "--bind", f"127.0.0.1:{port_off}", "--workers", "1",
             "--threads", "8", "--timeout", "0", "_wsgi:app"],
            cwd=example, env=env_off, stdout=open(tmp / "official.log", "wb"), stderr=subprocess.STDOUT)
        url_off = f"http://127.0.0.1:{port_off}"

        # -- this backend: trained by its worker from webhooks
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AL_", "LABEL_STUDIO", "BASIC_AUTH"))},
               "REDIS_URL": args.redis, "AL_KEY_PREFIX": prefix, "AL_QUEUE": queue}
        al = str(Path(sys.executable).parent / "al-backend")
        procs["backend"] = subprocess.Popen([al, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                                            env=env, stdout=open(tmp / "backend.log", "wb"), stderr=subprocess.STDOUT)
        procs["worker"] = subprocess.Popen([al, "worker"], env=env, stdout=open(tmp / "worker.log", "wb"),
                                           stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        wait_health(url, "this backend")
        wait_health(url_off, "the official example")
        project = f"{PID}.{int(time.time())}"
        with httpx.Client(base_url=url, timeout=60) as c:
            setup(c, project, cfg)
            trained = train(c, PID, cfg, announced, labeled, timeout=600)
        with httpx.Client(base_url=url_off, timeout=60) as c:
            setup(c, project, cfg)

        # -- turns
        backends = {
            "official": (url_off, tree(procs["official"].pid), unseen),
            "this, unannounced": (url, tree(procs["backend"].pid), unseen),
            "this, announced": (url, tree(procs["backend"].pid), announced_pool),
        }
        worker_procs = tree(procs["worker"].pid)
        rounds: list[dict] = []
        for r in range(args.rounds):
            names = list(backends) if r % 2 == 0 else list(reversed(backends))
            result = {}
            for name in names:
                u, pr, pool = backends[name]
                w0 = cpu_seconds(worker_procs)
                result[name] = measure(u, project, cfg, pool, pr, args.batch_requests, args.single_requests)
                result[name]["worker_cpu_s"] = cpu_seconds(worker_procs) - w0
            rounds.append(result)
            print(f"round {r + 1}/{args.rounds}: " + "; ".join(
                f"{n}: {v['batch']['tasks_per_s']:.0f} tasks/s, {v['batch']['cpu_ms_per_task']:.3f} CPU ms/task"
                for n, v in result.items()), flush=True)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        import redis

        r = redis.Redis.from_url(args.redis)
        keys = [*r.scan_iter(namespace_pattern(prefix)), *r.scan_iter(f"*{queue}*")]
        if keys:
            r.delete(*keys)

    def med(name: str, phase: str, key: str) -> float:
        return statistics.median(rd[name][phase][key] for rd in rounds)

    summary: dict = {}
    print(f"\n{'':22s}{'1,000 tasks/s':>14s}{'CPU ms/task':>13s}{'1-task p50 ms':>15s}{'1-task CPU ms':>15s}")
    for name in backends:
        summary[name] = {f"{ph}_{k}": med(name, ph, k) for ph in ("batch", "single")
                         for k in ("tasks_per_s", "cpu_ms_per_task", "p50_ms")}
        s = summary[name]
        print(f"{name:22s}{s['batch_tasks_per_s']:14.0f}{s['batch_cpu_ms_per_task']:13.3f}"
              f"{s['single_p50_ms']:15.2f}{s['single_cpu_ms_per_task']:15.2f}")
    ratios = {}
    for name in ("this, unannounced", "this, announced"):
        o, t = summary["official"], summary[name]
        ratios[name] = {
            "throughput_x": t["batch_tasks_per_s"] / o["batch_tasks_per_s"],
            "cpu_per_task_x": t["batch_cpu_ms_per_task"] / o["batch_cpu_ms_per_task"],
            "single_latency_x": t["single_p50_ms"] / o["single_p50_ms"],
            "single_cpu_x": t["single_cpu_ms_per_task"] / o["single_cpu_ms_per_task"],
        }
        q = ratios[name]
        print(f"{name} / official: throughput {q['throughput_x']:.2f}x, CPU per task {q['cpu_per_task_x']:.2f}x, "
              f"1-task latency {q['single_latency_x']:.2f}x, 1-task CPU {q['single_cpu_x']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_commit": git_commit(),
        "machine": machine(), "official_commit": subprocess.run(
            ["git", "-C", str(args.official), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "official_train_s": official_train_s, "this_train": {k: v for k, v in trained.items() if k != "version_meta"},
        "summary": summary, "ratios": ratios, "rounds": rounds,
    }, indent=1))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
