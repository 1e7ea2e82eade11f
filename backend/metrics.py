"""Prometheus metrics, correct across several serving processes.

The backend runs several uvicorn worker processes; with
``PROMETHEUS_MULTIPROC_DIR`` set (``al-backend serve`` sets it) every process
writes its samples to files there and ``/metrics`` merges them.  Queue sizes
are read from Redis at scrape time, so they are right whichever process
answers.
"""

from __future__ import annotations

import os

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from rq import Queue
from rq.serializers import JSONSerializer

REQUESTS = Counter("al_requests_total", "HTTP requests answered", ["route", "status"])
LATENCY = Histogram(
    "al_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TASKS_PREDICTED = Counter("al_tasks_predicted_total", "Tasks answered by /predict", ["kind"])
TASKS_SKIPPED = Counter("al_tasks_skipped_total", "Task/control pairs given no result", ["reason"])
WEBHOOKS = Counter("al_webhooks_total", "Webhook events received", ["action"])
JOBS_ENQUEUED = Counter("al_jobs_enqueued_total", "Worker jobs enqueued (after coalescing)", ["job"])


class QueueCollector:
    """Queue sizes straight from RQ's Redis structures, at scrape time."""

    def __init__(self, r: redis.Redis, queue_name: str) -> None:
        self.r, self.queue_name = r, queue_name

    def collect(self):
        g = GaugeMetricFamily("al_queue_jobs", "Jobs in the worker queue by state", labels=["queue", "state"])
        try:
            q = Queue(self.queue_name, connection=self.r, serializer=JSONSerializer)
            g.add_metric([self.queue_name, "queued"], q.count)
            g.add_metric([self.queue_name, "started"], q.started_job_registry.count)
            g.add_metric([self.queue_name, "failed"], q.failed_job_registry.count)
            g.add_metric([self.queue_name, "scheduled"], q.scheduled_job_registry.count)
        except redis.RedisError:
            pass  # Redis down: /health says so; metrics still serve the rest
        yield g


class ProgressCollector:
    """Per-project progress (what the dashboard shows), from the worker's summaries in Redis at scrape time."""

    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self.r, self.prefix = r, prefix

    def collect(self):
        from backend.progress.estimators import RECOMMENDATION_LEVEL
        from backend.state.progress import ProgressStore
        from backend.state.store import ProjectStore, project_ids

        labeled = GaugeMetricFamily("al_project_labeled_tasks", "Labeled tasks per project", labels=["project"])
        acc = GaugeMetricFamily("al_project_accuracy", "Estimated accuracy per project",
                                labels=["project", "estimate"])
        kappa = GaugeMetricFamily("al_project_kappa", "Cohen's kappa between the last two models on the stop set",
                                  labels=["project"])
        saved = GaugeMetricFamily("al_project_labels_saved", "Labels saved over random selection (estimated)",
                                  labels=["project"])
        rec = GaugeMetricFamily("al_project_recommendation",
                                "Stopping recommendation: 0 keep going, 1 consider stopping, 2 stop", labels=["project"])
        try:
            for pid in project_ids(self.r, self.prefix):
                s = ProgressStore(ProjectStore(self.r, self.prefix, pid)).summary()
                if s is None:
                    continue
                p = str(pid)
                labeled.add_metric([p], s.labeled_tasks)
                for name, value in (("current", s.accuracy),
                                    ("control_share", s.recent_control.accuracy if s.recent_control else None),
                                    ("cross_validation", s.cv.accuracy)):
                    if value is not None:
                        acc.add_metric([p, name], value)
                if s.kappa is not None:
                    kappa.add_metric([p], s.kappa)
                if s.savings.saved is not None:
                    saved.add_metric([p], s.savings.saved)
                rec.add_metric([p], RECOMMENDATION_LEVEL.get(s.recommendation.action, 0))
        except redis.RedisError:
            pass
        yield from (labeled, acc, kappa, saved, rec)


def render(r: redis.Redis, queue_name: str, prefix: str | None = None) -> bytes:
    """The text exposition of every metric."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY  # type: ignore[assignment]
    out = generate_latest(registry)
    extra = CollectorRegistry()
    extra.register(QueueCollector(r, queue_name))
    if prefix is not None:
        extra.register(ProgressCollector(r, prefix))
    return out + generate_latest(extra)
