"""Annotation saved in Label Studio → /next serves the retrained order: how long, with an annotator at work?

Usage::

    python bench/bench_loop.py --tasks 100000 --prelabeled 5000 --interval 2 --annotations 100 --fast-import

Starts a real Label Studio 1.23.2 (the e2e harness; PostgreSQL by default, as
production runs it), the backend (1 process) and the worker, on loopback.
Imports ``--tasks`` real tweets (CrowdFlower, 3 classes; beyond its 37,243
texts they repeat with a suffix), of which ``--prelabeled`` come with their
true label in the import body (``{"data": ..., "annotations": [{"result":
...}]}``: no API call per label).  Connects the backend and waits until Label
Studio points at a version trained on those labels.

Then two threads, as in production:

- the *annotator* takes the task ``/next`` serves, saves its true label one
  ``--interval`` after the previous save, and asks ``/next`` again at once
  (as Label Studio's UI does after a submit), ``--annotations`` times;
- the *observer* polls Label Studio's project for the version it points at
  and reads that version's metadata from the backend's Redis (how many
  labels it was trained on, its timings).

With a label every 2 s and a refresh that takes longer, several labels
coalesce into one refresh.  For each label the latency is from the start of
its save (``POST /api/tasks/<id>/annotations/``) until the observer sees
Label Studio's project point at a version whose training set includes it.
At that moment Label Studio's ``/next`` serves that version's order: the
push imports the whole head before it moves the pointer.  The benchmark
checks this, rather than assuming it: every ``/next`` the annotator made
while Label Studio pointed at one version must have served that version's
lowest-score unlabeled task, from the predictions Label Studio holds (or,
during the next version's import, the first task the import did not hold
locked: see ``check_served_order``).  The
observer never calls ``/next`` itself: Label Studio locks the task it serves
to the caller, and a second user makes uncertainty sampling pick at random.

It also checks that every version Label Studio pointed at was trained
(``kind == "model"``, trained in that very version, on as many labels as
there were labeled tasks) and that every task the annotator got is one
Label Studio has, unlabeled.  Prints p50/p90/p99/max and, per label, where
the time went (waiting for a refresh, the refresh, the push); writes JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.simulation.datasets import load_dataset  # noqa: E402
from backend.state.queueing import job_queue, low_queue, topup_queue  # noqa: E402
from backend.state.store import ProjectStore, connect  # noqa: E402
from harness.label_studio import FAST_IMPORT_FLAG, LabelStudio  # noqa: E402
from harness.stack import E2E_REDIS_URL, Stack, wait_for  # noqa: E402

CONFIG = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
          '<Choice value="negative"/><Choice value="neutral"/><Choice value="positive"/></Choices></View>')
CONTROL = "sentiment"
IMPORT_CHUNK = 5_000
# The backend's production defaults, not the e2e suite's quicker ones (tests/e2e/conftest.py).
PRODUCTION_ENV = {"AL_RECONCILE_INTERVAL": "300", "AL_WORKER_NICE": "10", "AL_LOCK_TTL": "60",
                  "AL_PUSH_RETRY_DELAY": "30"}


def choice(label: str) -> list[dict]:
    return [{"from_name": CONTROL, "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def quantile(xs: list[float], q: float) -> float:
    return float(np.quantile(xs, q)) if xs else float("nan")


def summary(xs: list[float]) -> dict:
    return {"n": len(xs), "p50": quantile(xs, 0.5), "p90": quantile(xs, 0.9), "p99": quantile(xs, 0.99),
            "max": max(xs) if xs else float("nan")}


class Run:
    """What the two threads record; times are ``time.time()`` (the worker stamps its metadata with it too)."""

    def __init__(self) -> None:
        self.saves: list[dict] = []  # k, task, start, end
        self.nexts: list[dict] = []  # start, end, task, labeled (tasks labeled by us before it)
        self.timeline: list[tuple[float, float, str | None]] = []  # observer: start, end, Label Studio's version
        self.versions: dict[str, dict] = {}  # name -> metadata + push state, read when first seen
        self.pushes: dict[str, dict] = {}  # every pushed version's push state, read at the end
        self.loads: list[float] = []
        self.done = threading.Event()
        self.errors: list[str] = []


def annotator(ls: LabelStudio, pid: int, truth: dict[int, str], prelabeled: set[int], run: Run,
              n: int, interval: float) -> None:
    """Take /next's task, save its label every ``interval`` seconds, ask /next again at once."""
    labeled: list[int] = []
    try:
        with ls.client() as c:
            def next_task() -> int:
                t0 = time.time()
                r = c.get(f"/api/projects/{pid}/next/")
                t1 = time.time()
                r.raise_for_status()
                tid = r.json()["id"]
                if tid not in truth or tid in prelabeled or tid in labeled:
                    raise AssertionError(f"/next served task {tid}: not an unlabeled task of the project")
                run.nexts.append({"start": t0, "end": t1, "task": tid, "labeled": len(labeled)})
                return tid

            task = next_task()
            tick = time.monotonic()
            for k in range(1, n + 1):
                tick = max(tick + interval, time.monotonic())
                time.sleep(max(0.0, tick - time.monotonic()))
                t0 = time.time()
                r = c.post(f"/api/tasks/{task}/annotations/", json={"result": choice(truth[task])})
                t1 = time.time()
                r.raise_for_status()
                labeled.append(task)
                run.saves.append({"k": k, "task": task, "start": t0, "end": t1})
                if k < n:
                    task = next_task()
    except Exception as exc:  # reported by main; the observer stops too
        run.errors.append(f"annotator: {type(exc).__name__}: {exc}")
    finally:
        run.done.set()


def observer(ls: LabelStudio, store: ProjectStore, pid: int, run: Run, want: int, poll: float,
             timeout: float) -> None:
    """Poll the version Label Studio's project points at until it holds ``want`` labels (or ``timeout``)."""
    deadline = None
    try:
        with ls.client() as c:
            while True:
                t0 = time.time()
                # ``include``: without it Label Studio counts every task's annotations and predictions
                # on each look (0.5 s at 100,000 tasks), and the observer alone kept it busy.
                version = c.get(f"/api/projects/{pid}/", params={"include": "id,model_version"}
                                ).raise_for_status().json().get("model_version") or None
                t1 = time.time()
                run.timeline.append((t0, t1, version))
                if version and version not in run.versions:
                    run.versions[version] = {**(store.version_meta(version) or {}),
                                             "push": store.push_state(version), "first_seen": t1}
                run.loads.append(os.getloadavg()[0])
                labels = (run.versions.get(version) or {}).get("labeled_tasks", -1)
                if run.done.is_set():
                    if labels >= want or run.errors:
                        return
                    deadline = deadline or time.monotonic() + timeout
                    if time.monotonic() > deadline:
                        run.errors.append(f"observer: no version with {want} labels {timeout:.0f}s after the last save")
                        return
                time.sleep(poll)
    except Exception as exc:
        run.errors.append(f"observer: {type(exc).__name__}: {exc}")


def latencies(run: Run, prelabeled: int) -> list[dict]:
    """Per label: when Label Studio first pointed at a version trained on it, and where the time went."""
    out = []
    for s in run.saves:
        need = prelabeled + s["k"]
        seen = next(((t1, v) for t0, t1, v in run.timeline
                     if t0 >= s["start"] and v and run.versions[v].get("labeled_tasks", -1) >= need), None)
        if seen is None:
            out.append({"k": s["k"], "task": s["task"], "latency_s": None})
            continue
        t_seen, v = seen
        meta = run.versions[v]
        built_at = meta["published_at"] - meta["duration_s"]  # build_version started
        push_at = meta["push"].get("at")
        out.append({
            "k": s["k"], "task": s["task"], "version": v, "latency_s": t_seen - s["start"],
            "save_s": s["end"] - s["start"],
            # The label waited for a refresh that could include it (the one running when it came, then the queue).
            "wait_s": built_at - s["start"],
            "build_s": meta["duration_s"],
            "push_s": (push_at - meta["published_at"]) if push_at else None,
            "observed_after_push_s": (t_seen - push_at) if push_at else None,
        })
    return out


def check_versions(run: Run, prelabeled: int, cold: str) -> list[str]:
    """Every version Label Studio pointed at is a model trained in that version on all its labeled tasks."""
    problems = []
    for name, meta in run.versions.items():
        ctl = meta.get("controls", {}).get(CONTROL, {})
        if meta.get("kind") != "model" or meta.get("trained_in") != name:
            problems.append(f"{name}: not a model trained in this version ({meta.get('kind')}, "
                            f"trained in {meta.get('trained_in')})")
        trained = sum(ctl.get("label_counts", {}).values())
        # A label on a task without text (one CrowdFlower tweet is empty) is "unreadable": counted, not trained on.
        if ctl.get("labeled") != meta.get("labeled_tasks") or trained + ctl.get("unreadable", 0) != ctl.get("labeled"):
            problems.append(f"{name}: trained on {trained} of {meta.get('labeled_tasks')} labels ({ctl})")
        if name != cold and not prelabeled <= meta.get("labeled_tasks", -1) <= prelabeled + len(run.saves):
            problems.append(f"{name}: {meta.get('labeled_tasks')} labeled tasks, outside what was saved")
        if meta.get("push", {}).get("state") != "complete":
            problems.append(f"{name}: Label Studio points at it but its push is {meta.get('push')}")
    return problems


def check_served_order(ls: LabelStudio, pid: int, run: Run, prelabeled_ids: set[int]) -> dict:
    """Every /next made while Label Studio pointed at one version served its lowest-score unlabeled task.

    Judged on Label Studio's own predictions (read once, at the end: the
    benchmark keeps every version, as old versions are only pruned a day
    after they stop serving).  A top-up adds tasks after the head in score
    order, so it never changes the lowest score; still, only predictions
    made before the ``/next`` count.

    One exception, found here: on PostgreSQL, Label Studio's ``/next`` takes
    its task with ``SELECT ... FOR UPDATE SKIP LOCKED``, and a prediction
    import holds the rows of the tasks it writes until it commits.  So a
    ``/next`` made while the next version's head is being imported passes
    over the tasks that head shares with the current one and serves the
    current version's next task.  Such a ``/next`` is counted apart
    (``passed_over_import``), and only if every task it passed over has a
    prediction of a version whose push overlapped it.
    """
    with ls.client(timeout=300) as c:
        preds = c.get("/api/predictions/", params={"project": pid}).raise_for_status().json()
    by_version: dict[str, list[tuple[float, int, float]]] = {}
    pushed_to: dict[int, set[str]] = {}
    for p in preds:
        created = dt.datetime.fromisoformat(p["created_at"].replace("Z", "+00:00")).timestamp()
        by_version.setdefault(p.get("model_version"), []).append((p["score"], p["task"], created))
        pushed_to.setdefault(p["task"], set()).add(p.get("model_version"))
    windows = [(name, st["at"] - st["duration_s"], st["at"]) for name, st in run.pushes.items() if st.get("at")]
    ours = [s["task"] for s in run.saves]
    counts = {"first": 0, "passed_over_import": 0, "pointer_moved_during": 0}
    wrong = []
    for nx in run.nexts:
        before = [v for t0, t1, v in run.timeline if t1 <= nx["start"]]
        after = [v for t0, t1, v in run.timeline if t0 >= nx["end"]]
        if not before or not after or before[-1] != after[0] or not before[-1]:
            counts["pointer_moved_during"] += 1  # the pointer moved during this /next: either order is right
            continue
        version = before[-1]
        done = prelabeled_ids | set(ours[:nx["labeled"]])
        candidates = sorted((score, task) for score, task, created in by_version.get(version, [])
                            if task not in done and created <= nx["end"])
        served = [score for score, task in candidates if task == nx["task"]]
        lower = [task for score, task in candidates if served and score < served[0]]
        pushing = {name for name, a, b in windows if a <= nx["end"] and b >= nx["start"] and name != version}
        if served and not lower:
            counts["first"] += 1
        elif served and pushing and all(pushed_to[t] & pushing for t in lower):
            counts["passed_over_import"] += 1
        else:
            wrong.append({**nx, "version": version, "served_score": served[0] if served else None,
                          "lower": lower[:10], "pushing": sorted(pushing)})
    return {**counts, "wrong": wrong, "predictions": len(preds)}


def refresh_versions(run: Run, store: ProjectStore) -> None:
    """Read the versions' metadata and push states again at the end: the pointer moves before the push is
    recorded as complete, and the refresh adds its publication time after publishing."""
    for name, seen in run.versions.items():
        run.versions[name] = {**(store.version_meta(name) or {}), "push": store.push_state(name),
                              "first_seen": seen["first_seen"]}
    run.pushes = {name: store.push_state(name) for name in store.pushed_versions()}


def job_times(r, queue_name: str, since: float) -> dict:
    """Seconds each kind of worker job ran since ``since`` (RQ's finished registries; results are kept 1 h)."""
    from rq.registry import FinishedJobRegistry

    from backend.state.queueing import JOB_SERIALIZER

    out: dict[str, list[float]] = {}
    for name in (queue_name, low_queue(queue_name), topup_queue(queue_name)):
        q = job_queue(name, r)
        registry = FinishedJobRegistry(queue=q)
        for job in q.job_class.fetch_many(registry.get_job_ids(), connection=r, serializer=JOB_SERIALIZER):
            if job and job.started_at and job.ended_at and job.started_at.timestamp() >= since:
                kind = job.id.split("-")[0]
                out.setdefault(kind, []).append((job.ended_at - job.started_at).total_seconds())
    return {kind: {"jobs": len(xs), "total_s": round(sum(xs), 1), "median_s": round(statistics.median(xs), 2),
                   "max_s": round(max(xs), 2)} for kind, xs in out.items()}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--prelabeled", type=int, default=500, help="tasks imported with their true label (≥ 10)")
    ap.add_argument("--annotations", type=int, default=20, help="labels the annotator saves")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between two saves")
    ap.add_argument("--head", type=int, default=200)
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between two looks of the observer")
    ap.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql",
                    help="Label Studio's database (production runs PostgreSQL)")
    ap.add_argument("--redis-url", default=E2E_REDIS_URL, help="a Redis database of the benchmark's own "
                    "(default $AL_E2E_REDIS_URL); only its own keys are written and deleted")
    ap.add_argument("--fast-import", action="store_true",
                    help=f"start Label Studio with {FAST_IMPORT_FLAG}=true (see docs/benchmarks.md)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.prelabeled < 10 or args.prelabeled + args.annotations + args.head > args.tasks:
        ap.error("need --prelabeled ≥ 10 (every version must be a trained model) and "
                 "--prelabeled + --annotations + --head ≤ --tasks")

    ds = load_dataset("crowdflower-tweets")
    n = len(ds.texts)
    idx = np.random.default_rng(0).permutation(max(n, args.tasks))[: args.tasks]
    text = {int(i): ds.texts[i % n] + ("" if i < n else f" #{i // n}") for i in idx}
    started = dt.datetime.now(dt.timezone.utc)
    ls_env = {FAST_IMPORT_FLAG: "true"} if args.fast_import else None
    run = Run()
    with LabelStudio(env=ls_env, db=args.db) as ls, tempfile.TemporaryDirectory() as tmp:
        stack = Stack(ls, Path(tmp), redis_url=args.redis_url,
                      extra_env={"AL_HEAD_SIZE": str(args.head), **PRODUCTION_ENV}).start()
        try:
            pid = ls.create_project("loop benchmark", CONFIG)["id"]
            t = time.perf_counter()
            ids: list[int] = []
            for start in range(0, len(idx), IMPORT_CHUNK):
                body = []
                for pos in range(start, min(start + IMPORT_CHUNK, len(idx))):
                    i = int(idx[pos])
                    item: dict = {"data": {"text": text[i]}}
                    if pos < args.prelabeled:
                        item["annotations"] = [{"result": choice(ds.labels[i % n])}]
                    body.append(item)
                ids += ls.import_tasks(pid, body)
            import_s = time.perf_counter() - t
            assert len(ids) == args.tasks, (len(ids), args.tasks)
            truth = {tid: ds.labels[int(i) % n] for tid, i in zip(ids, idx)}
            prelabeled_ids = set(ids[: args.prelabeled])
            store = ProjectStore(connect(args.redis_url), stack.env["AL_KEY_PREFIX"], pid)

            # The annotator's checks rely on the import answering task ids in the body's order.
            with ls.client(timeout=300) as c:
                body = c.get("/api/tasks/", params={"project": pid, "page_size": args.prelabeled + 100,
                                                    "fields": "task_only", "query": json.dumps({"filters": {
                                                        "conjunction": "and", "items": [{
                                                            "filter": "filter:tasks:total_annotations",
                                                            "operator": "greater", "type": "Number",
                                                            "value": 0}]}})}).raise_for_status().json()
            held = {t["id"] for t in body["tasks"]}
            assert held == prelabeled_ids, f"Label Studio's labeled tasks are not the imported ones ({len(held)})"
            t = time.perf_counter()
            ls.connect_ml_backend(pid, stack.url, title="active learning")

            def cold_ready():
                status = stack.status(pid)
                cur = status.get("current") or {}
                return (cur.get("labeled_tasks") == args.prelabeled and cur.get("kind") == "model"
                        and ls.project(pid)["model_version"] == status["current_version"] and status)

            cold = wait_for(cold_ready, 1800, 1.0, f"a version trained on the {args.prelabeled} imported labels")
            cold_s = time.perf_counter() - t
            print(f"{args.tasks} tasks ({args.prelabeled} labeled) imported in {import_s:.1f}s; "
                  f"Label Studio serves {cold['current_version']} {cold_s:.1f}s after connecting "
                  f"(refresh {cold['current'].get('timings')}, {cold['current'].get('duration_s')}s)", flush=True)
            # Let the cold start's low-priority evaluate job (5-fold CV) finish: measure the steady loop.
            wait_for(lambda: "cv_accuracy" in store.version_meta(cold["current_version"])["controls"][CONTROL],
                     900, 0.5, "the cold start's evaluation (a low-priority process: slow on a busy machine)")
            load_before = os.getloadavg()

            want = args.prelabeled + args.annotations
            threads = [
                threading.Thread(target=observer, args=(ls, store, pid, run, want, args.poll, 300), name="observer"),
                threading.Thread(target=annotator, name="annotator",
                                 args=(ls, pid, truth, prelabeled_ids, run, args.annotations, args.interval)),
            ]
            t_loop = time.time()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            loop_s = time.time() - t_loop
            # Label Studio points at a version a moment before the worker records its push as complete.
            last = run.timeline[-1][2] if run.timeline else None
            if last:
                wait_for(lambda: store.push_state(last).get("state") == "complete", 60, 0.2, f"the push of {last}")
            final_status = stack.status(pid)
            try:
                jobs = job_times(store.r, stack.env["AL_QUEUE"], t_loop)
            except Exception as exc:  # only a report: never lose the run over it
                jobs = {"error": f"{type(exc).__name__}: {exc}"}
            refresh_versions(run, store)
            order = check_served_order(ls, pid, run, prelabeled_ids)
        finally:
            stack.stop()
            stack.cleanup_redis()

    rows = latencies(run, args.prelabeled)
    lat = [r["latency_s"] for r in rows if r["latency_s"] is not None]
    problems = list(run.errors)
    problems += [f"label {r['k']} (task {r['task']}): Label Studio never pointed at a version trained on it"
                 for r in rows if r["latency_s"] is None]
    problems += check_versions(run, args.prelabeled, cold["current_version"])
    problems += [f"/next at {w['start']:.3f} served {w['task']} (score {w['served_score']}) while Label Studio "
                 f"pointed at {w['version']}, whose unlabeled tasks {w['lower']} score lower" for w in order["wrong"]]
    if order["first"] == 0:
        problems.append("no /next could be checked against the order Label Studio pointed at")
    seen = [v for v in run.versions if v != cold["current_version"]]
    gaps = [b["start"] - a["start"] for a, b in zip(run.saves, run.saves[1:])]

    def med(key: str) -> float | None:
        xs = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.median(xs), 3) if xs else None

    def before_ranking(meta: dict) -> float | None:
        """The refresh's time before ranking: reading the labels and training (its timings leave it out)."""
        t = meta.get("timings") or {}
        if meta.get("duration_s") is None or "score_pool_s" not in t:
            return None
        return round(meta["duration_s"] - t["score_pool_s"] - t["order_s"], 3)

    refreshes = [{"version": v, "labeled_tasks": run.versions[v].get("labeled_tasks"),
                  "duration_s": run.versions[v].get("duration_s"), "timings": run.versions[v].get("timings"),
                  "read_and_train_s": before_ranking(run.versions[v]),
                  "push": {k: run.versions[v]["push"].get(k) for k in ("duration_s", "timings", "count")}}
                 for v in seen]

    def refresh_median(get) -> float | None:
        xs = [x for x in map(get, refreshes) if x is not None]
        return round(statistics.median(xs), 3) if xs else None
    result = {
        "command": " ".join(sys.argv), "date": started.isoformat(timespec="seconds"), "commit": git_commit(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "label_studio": {"version": ls.version, "db": args.db, "fast_import": args.fast_import},
        "backend_env": {"AL_HEAD_SIZE": args.head, **PRODUCTION_ENV},
        "tasks": args.tasks, "prelabeled": args.prelabeled, "annotations": args.annotations,
        "interval_s": args.interval, "import_s": import_s, "cold_start_s": cold_s,
        "cold_version": {k: cold["current"].get(k) for k in ("version", "duration_s", "timings", "labeled_tasks")},
        "loop_s": loop_s, "save_gap_s": summary(gaps),
        "load_average": {"before": load_before, "during_min": min(run.loads, default=None),
                         "during_median": statistics.median(run.loads) if run.loads else None,
                         "during_max": max(run.loads, default=None)},
        "latency_s": summary(lat),
        "median_breakdown_s": {k: med(k) for k in ("save_s", "wait_s", "build_s", "push_s", "observed_after_push_s")},
        "median_refresh_s": {
            "build": refresh_median(lambda r: r["duration_s"]),
            "read_and_train": refresh_median(lambda r: r["read_and_train_s"]),
            **{k: refresh_median(lambda r, k=k: (r["timings"] or {}).get(k))
               for k in ("score_pool_s", "order_s", "publish_s")},
            "push": refresh_median(lambda r: r["push"]["duration_s"]),
            **{f"push_{k}": refresh_median(lambda r, k=k: (r["push"]["timings"] or {}).get(k))
               for k in ("import_s", "verify_s", "point_s")}},
        "save_s": summary([s["end"] - s["start"] for s in run.saves]),
        "next_s": summary([x["end"] - x["start"] for x in run.nexts]),
        "observer_poll_s": summary([t1 - t0 for t0, t1, _ in run.timeline]),
        "versions_served": len(seen), "labels_per_version": summary(
            [b - a for a, b in zip([args.prelabeled] + [run.versions[v]["labeled_tasks"] for v in seen],
                                   [run.versions[v]["labeled_tasks"] for v in seen])]),
        "served_order": {k: v for k, v in order.items() if k != "wrong"} | {"wrong": len(order["wrong"])},
        "head": final_status.get("head"),
        "worker_jobs_during_loop": jobs,
        "problems": problems, "labels": rows, "refreshes": refreshes, "wrong_order": order["wrong"],
        "nexts": run.nexts, "pointer_moves": [(t1, v) for (_, t1, v), prev in zip(run.timeline, [None] + run.timeline)
                                              if prev is None or prev[2] != v],
    }
    s = result["latency_s"]
    print(f"{len(lat)} labels, one every {statistics.median(gaps) if gaps else float('nan'):.2f}s (median), "
          f"{len(seen)} versions served: save → /next serves a version trained on it: "
          f"p50 {s['p50']:.2f}s, p90 {s['p90']:.2f}s, p99 {s['p99']:.2f}s, max {s['max']:.2f}s")
    print(f"median per label: {result['median_breakdown_s']}")
    print(f"median refresh: {result['median_refresh_s']}")
    print(f"load average during the loop: {result['load_average']}")
    print(f"worker jobs during the loop ({loop_s:.0f}s): {jobs}")
    print(f"/next checked against Label Studio's predictions: {result['served_order']}")
    for ref in refreshes:
        print(f"  {ref['version']}: {ref['labeled_tasks']} labels, build {ref['duration_s']}s "
              f"(read+train {ref['read_and_train_s']}s) {ref['timings']}, "
              f"push {ref['push']['duration_s']}s {ref['push']['timings']}")
    out = Path(args.out or f"bench/results/loop-{args.tasks}-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"written to {out}")
    if problems:
        print("NOT A VALID MEASUREMENT:\n  " + "\n  ".join(problems[:20]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
