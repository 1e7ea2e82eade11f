"""A named-entity project as Label Studio, the backend and the worker run it: /predict on one sentence, and the refresh.

Usage: python bench/bench_ner_project.py [--pool 2000] [--labels 200] [--predicts 300] [--refresh-pools 2000,10000]

On real CoNLL-2003 sentences (``backend/simulation/ner_datasets.py``) in Label
Studio's *Named Entity Recognition* config (``<Labels>`` PER/ORG/LOC/MISC over
``<Text>``); no Label Studio is needed:

1. **/predict on one sentence over HTTP.** ``al-backend serve`` and
   ``al-backend worker`` run as real processes on loopback.  The project is
   set up with ``/setup``; ``--pool`` sentences of the ``train`` split arrive as
   a ``TASKS_CREATED`` webhook and ``--labels`` of them (every 10th) are
   annotated with their true entities as ``ANNOTATION_CREATED`` webhooks whose
   span regions are shaped as Label Studio 1.23.2's editor writes them.  The
   worker trains; the benchmark waits for the version trained on exactly those
   labels (labeled count, entities per label, sentences without entities), stops
   the worker (a warm shutdown: its jobs finish) and then times ``--predicts``
   calls of ``POST /predict`` with one held-out ``test`` sentence each, after
   warm-up, alternating with ``GET /health`` on the same server, the round-trip
   floor measured in the same run.  Every answer must be from that version, and
   every span result must be a ``labels`` item of the config whose ``text`` is
   the sentence's slice ``[start:end]``.
2. **The refresh** (train the CRF on the labels + rank the unlabeled pool) for
   each of ``--refresh-pools``: the same webhooks, then ``build_version`` in
   this process (one BLAS thread, as the worker runs it), after one new label
   each time, ``--repeat`` times; each must publish a model trained on every
   label and rank every unlabeled sentence.  Median reported.

Uses ``AL_BENCH_REDIS_URL`` (default 127.0.0.1:6379/10) under its own key
prefix and queue, whose keys it deletes before and after.  Results:
``docs/results/ner-project.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BENCH_REDIS_URL = os.environ.get("AL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
PREFIX, QUEUE = "bench-ner", "bench-ner-queue"
LABELS = ("PER", "ORG", "LOC", "MISC")
CONFIG = ('<View><Labels name="label" toName="text"><Label value="PER" background="red"/>'
          '<Label value="ORG" background="darkorange"/><Label value="LOC" background="orange"/>'
          '<Label value="MISC" background="green"/></Labels><Text name="text" value="$text"/></View>')
WARMUP = 20


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AL_", "LABEL_STUDIO", "BASIC_AUTH"))}
    return {**env, "REDIS_URL": BENCH_REDIS_URL, "AL_KEY_PREFIX": PREFIX, "AL_QUEUE": QUEUE,
            "AL_WORKER_NICE": "0", "AL_LOG_LEVEL": "WARNING"}


def _clean() -> None:
    from backend.state.store import connect

    r = connect(BENCH_REDIS_URL)
    for pattern in (f"{PREFIX}:*", f"*{QUEUE}*"):
        keys = list(r.scan_iter(pattern, count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i:i + 1000])


def _store(pid: int):
    from backend.state.store import ProjectStore, connect

    return ProjectStore(connect(BENCH_REDIS_URL), PREFIX, pid)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def regions(text: str, spans) -> list[dict]:
    """Span regions as Label Studio 1.23.2's editor writes them."""
    return [{"id": f"r{k}", "from_name": "label", "to_name": "text", "type": "labels", "origin": "manual",
             "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}}
            for k, (s, e, label) in enumerate(sorted(spans))]


class Server:
    """``al-backend serve`` (and, on request, ``al-backend worker``) on loopback."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(REPO / "run" / "bench-ner-backend.log", "ab")
        self.server = subprocess.Popen([sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1",
                                        "--port", str(self.port), "--workers", "1"],
                                       env=_env(), cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        self.worker: subprocess.Popen | None = None
        import httpx

        self.client = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.server.poll() is not None:
                raise SystemExit("the backend did not answer /health; see run/bench-ner-backend.log")
            time.sleep(0.2)

    def start_worker(self) -> None:
        self.worker = subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], env=_env(), cwd=REPO,
                                       stdout=self.log, stderr=subprocess.STDOUT)

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()  # RQ's warm shutdown: the running job finishes
            self.worker.wait(120)
            self.worker = None

    def post(self, path: str, body: dict) -> dict:
        r = self.client.post(path, json=body)
        if r.status_code != 200:
            raise SystemExit(f"POST {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    def close(self) -> None:
        self.stop_worker()
        self.client.close()
        self.server.terminate()
        self.server.wait(30)


def set_up(server: Server, pid: int, pool: list[tuple[str, list]], labeled: list[int]) -> None:
    """/setup, the pool as TASKS_CREATED webhooks, the labels as ANNOTATION_CREATED webhooks (task ids from 1)."""
    from harness.payloads import setup_body, tasks_created

    server.post("/setup", setup_body(pid=pid, schema=CONFIG))
    tasks = [(tid, text) for tid, (text, _) in enumerate(pool, start=1)]
    for i in range(0, len(tasks), 1000):  # an import of many tasks arrives as several events
        server.post("/webhook", tasks_created(tasks[i:i + 1000], pid=pid))
    annotate(server, pid, pool, labeled)


def annotate(server: Server, pid: int, pool: list[tuple[str, list]], task_ids: list[int]) -> None:
    from harness.payloads import annotation_event

    for tid in task_ids:
        text, spans = pool[tid - 1]
        server.post("/webhook", annotation_event(tid, tid, text, "", pid=pid, from_name="label",
                                                 result=regions(text, spans)))


def check_trained(meta: dict, pool: list[tuple[str, list]], labeled: list[int]) -> dict:
    """The version is a model trained on exactly the labels sent; returns its control's summary."""
    info = (meta.get("controls") or {}).get("label") or {}
    sent = Counter(label for tid in labeled for _, _, label in pool[tid - 1][1])
    empty = sum(1 for tid in labeled if not pool[tid - 1][1])
    problems = []
    if meta.get("kind") != "model" or "not_trained" in info:
        problems.append(f"kind {meta.get('kind')}, {info.get('not_trained')}")
    if meta.get("labeled_tasks") != len(labeled) or info.get("labeled") != len(labeled):
        problems.append(f"labeled {meta.get('labeled_tasks')}/{info.get('labeled')} != {len(labeled)} sent")
    if Counter(info.get("entities") or {}) != sent:
        problems.append(f"entities {info.get('entities')} != sent {dict(sent)}")
    if info.get("no_entity_tasks") != empty:
        problems.append(f"no_entity_tasks {info.get('no_entity_tasks')} != {empty} sent without spans")
    if info.get("answers_skipped"):
        problems.append(f"answers_skipped {info['answers_skipped']}")
    if problems:
        raise SystemExit("the version is not trained on exactly the labels sent: " + "; ".join(problems)
                         + f"\n{json.dumps(meta)[:2000]}")
    return {"labeled": info["labeled"], "entities": info["entities"], "no_entity_tasks": info["no_entity_tasks"]}


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


def _summary(ms: list[float]) -> dict:
    return {"p50": _pct(ms, 0.5), "p95": _pct(ms, 0.95), "mean": round(statistics.mean(ms), 3)}


def predict_latency(pool_size: int, n_labels: int, n_calls: int) -> dict:
    from backend.learning.spans import entity_scores
    from backend.simulation.ner_datasets import load_ner_corpus
    from harness.payloads import predict_body

    train, test = load_ner_corpus(split="train"), load_ner_corpus(split="test")
    pool = list(zip(train.texts, train.spans))[:pool_size]
    labeled = list(range(1, pool_size + 1, pool_size // n_labels))[:n_labels]
    held = [(t, s) for t, s in zip(test.texts, test.spans) if len(t.split()) >= 4]
    server = Server()
    try:
        t0 = time.perf_counter()
        set_up(server, 1, pool, labeled)
        webhooks_s = time.perf_counter() - t0
        print(f"sent /setup, {pool_size} tasks and {n_labels} annotations as webhooks in {webhooks_s:.1f} s",
              flush=True)
        store = _store(1)
        server.start_worker()
        deadline = time.monotonic() + 600
        while True:
            name = store.current_version()
            meta = store.version_meta(name) if name else None
            if meta and meta.get("kind") == "model" and meta.get("labeled_tasks") == n_labels:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"no version trained on {n_labels} labels after 600 s: {meta}")
            time.sleep(0.5)
        trained_after_s = time.perf_counter() - t0
        server.stop_worker()  # after its evaluate job: nothing else runs while /predict is timed
        name = store.current_version()
        meta = store.version_meta(name)
        trained = check_trained(meta, pool, labeled)
        print(f"version {name} trained on {trained['labeled']} sentences ({trained['entities']}) "
              f"{trained_after_s:.1f} s after the first webhook", flush=True)

        health, predict, spans_seen, with_spans = [], [], 0, 0
        predicted, truth = [], []
        for k in range(n_calls + WARMUP):
            text, spans = held[k % len(held)]
            body = predict_body([(1_000_000 + k, text)], pid=1, label_config=CONFIG)
            t = time.perf_counter()
            h = server.client.get("/health")
            dt_health = time.perf_counter() - t
            h.raise_for_status()
            t = time.perf_counter()
            r = server.client.post("/predict", json=body)
            dt = time.perf_counter() - t
            if r.status_code != 200:
                raise SystemExit(f"/predict answered {r.status_code}: {r.text[:300]}")
            (answer,) = r.json()["results"]
            if answer.get("model_version") != name:
                raise SystemExit(f"/predict answered from {answer.get('model_version')}, not {name}")
            found = []
            for item in answer["result"]:
                v = item["value"]
                if (item["from_name"], item["to_name"], item["type"]) != ("label", "text", "labels") or \
                        text[v["start"]:v["end"]] != v["text"] or len(v["labels"]) != 1 or \
                        v["labels"][0] not in LABELS or not 0 < item["score"] <= 1:
                    raise SystemExit(f"a span result that is not the sentence's slice: {item} in {text!r}")
                found.append((v["start"], v["end"], v["labels"][0]))
            if k >= WARMUP:  # the first calls open the tagger in the server's threads
                health.append(dt_health * 1000)
                predict.append(dt * 1000)
                spans_seen += len(found)
                with_spans += bool(found)
                predicted.append(found)
                truth.append(spans)
        if with_spans < n_calls / 2:
            raise SystemExit(f"only {with_spans} of {n_calls} answers had any span")
        f1 = entity_scores(truth, predicted)["f1"]
        out = {
            "version": name, "trained": trained,
            "webhooks_s": round(webhooks_s, 2), "trained_after_s": round(trained_after_s, 1),
            "calls": n_calls, "warmup": WARMUP,
            "predict_ms": _summary(predict), "health_ms": _summary(health),
            "answers_with_spans": with_spans, "spans": spans_seen,
            "entity_f1_of_answers": round(f1, 3),
        }
        out["predict_over_health_p50_ms"] = round(out["predict_ms"]["p50"] - out["health_ms"]["p50"], 3)
        return out
    finally:
        server.close()


def refresh_times(pool_size: int, n_labels: int, repeat: int, pid: int) -> dict:
    """The refresh (train + rank) of a project of ``pool_size`` sentences, after one new label, ``repeat`` times."""
    from backend.settings import get_settings
    from backend.simulation.ner_datasets import load_ner_corpus
    from worker.refresh import build_version

    train = load_ner_corpus(split="train")
    pool = list(zip(train.texts, train.spans))[:pool_size]
    if len(pool) < pool_size:
        raise SystemExit(f"the train split has {len(pool)} sentences, fewer than {pool_size}")
    step = pool_size // (n_labels + repeat)
    order = list(range(1, pool_size + 1, step))[:n_labels + repeat]
    server = Server()
    try:
        set_up(server, pid, pool, order[:n_labels])
        store = _store(pid)
        t = time.perf_counter()
        first = build_version(store, get_settings())
        first_s = time.perf_counter() - t
        check_trained(first, pool, order[:n_labels])
        runs = []
        for i in range(repeat):
            labeled = order[:n_labels + i + 1]
            annotate(server, pid, pool, labeled[-1:])
            t = time.perf_counter()
            meta = build_version(store, get_settings())
            wall = time.perf_counter() - t
            check_trained(meta, pool, labeled)
            if meta.get("trained_in") != meta.get("version") or meta.get("ranked") != pool_size - len(labeled):
                raise SystemExit(f"the refresh did not retrain and rank all {pool_size - len(labeled)} "
                                 f"unlabeled sentences: {json.dumps(meta)[:1500]}")
            runs.append({"wall_s": round(wall, 3), "timings": meta.get("timings"), "version": meta["version"],
                         "labeled": len(labeled), "ranked": meta["ranked"]})
            print(f"refresh of {pool_size} sentences after one label ({len(labeled)} labels): {wall:.2f} s",
                  flush=True)
        return {"pool": pool_size, "first_refresh_s": round(first_s, 3), "runs": runs,
                "median_s": round(statistics.median(r["wall_s"] for r in runs), 3)}
    finally:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=int, default=2_000)
    ap.add_argument("--labels", type=int, default=200)
    ap.add_argument("--predicts", type=int, default=300)
    ap.add_argument("--refresh-pools", default="2000,10000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "ner-project.json"))
    args = ap.parse_args()
    (REPO / "run").mkdir(exist_ok=True)
    os.environ.update(_env())
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # the worker's BLAS share on a shared 2-core machine
    _clean()
    load_before = os.getloadavg()
    try:
        latency = predict_latency(args.pool, args.labels, args.predicts)
        print(f"/predict one sentence: p50 {latency['predict_ms']['p50']} ms, p95 {latency['predict_ms']['p95']} ms; "
              f"GET /health p50 {latency['health_ms']['p50']} ms, p95 {latency['health_ms']['p95']} ms "
              f"({latency['calls']} calls each after {WARMUP} warm-up); {latency['answers_with_spans']} answers "
              f"with spans, entity F1 {latency['entity_f1_of_answers']}", flush=True)
        refreshes = [refresh_times(int(n), args.labels, args.repeat, pid=10 + k)
                     for k, n in enumerate(args.refresh_pools.split(","))]
    finally:
        _clean()
    for r in refreshes:
        print(f"refresh (train + rank) of {r['pool']} sentences with {args.labels}+ labels: "
              f"median {r['median_s']} s of {[x['wall_s'] for x in r['runs']]}")
    import pycrfsuite  # noqa: F401 - the version below

    from importlib.metadata import version

    result = {
        "command": "python bench/bench_ner_project.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"uname_m": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "python_crfsuite": version("python-crfsuite")},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "pool": args.pool, "labels": args.labels,
        "predict_one_sentence": latency,
        "refresh": refreshes,
        "goals": {"predict_p50_ms": 10.0},
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
