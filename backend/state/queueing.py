"""Enqueue worker jobs by dotted name, coalesced per project.

Label Studio can send a burst of annotation webhooks; each must not become a
training.  A per-project ``pending`` flag (SET NX) lets only the first event
of a burst enqueue a job; the job clears the flag when it *starts*, so events
that arrive while it runs schedule exactly one more run.  The backend never
imports ``worker`` (jobs are referenced as strings, like RQ does itself).
"""

from __future__ import annotations

import uuid

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from backend.metrics import JOBS_ENQUEUED
from backend.state.store import ProjectStore, project_namespace

REFRESH_JOB = "worker.jobs.refresh_project"
# Low priority: pruning old versions from Label Studio, cross-validating a new model,
# the scheduled reconcile with Label Studio (it never holds a refresh back).
LOW_JOBS = {"prune": "worker.jobs.prune_project", "evaluate": "worker.jobs.evaluate_project",
            "reconcile": "worker.jobs.reconcile_project"}
SHARDS_JOB = "worker.jobs.help_score_shards"
TOPUP_JOB = "worker.jobs.topup_project"
#: The function of each job id prefix (ids are ``<prefix>-<project>-<random>``), so
#: ``/status`` names jobs without deserializing them.
JOB_FUNCTIONS = {"refresh": REFRESH_JOB, **LOW_JOBS, "shards": SHARDS_JOB, "topup": TOPUP_JOB}
PENDING_TTL = 600  # a lost job (worker gone before it started) unblocks after this
#: Jobs are stored as JSON, never pickle: job arguments are ids and strings, and
#: a pickle planted in Redis would run code in whichever process loads it.
JOB_SERIALIZER = JSONSerializer


def job_queue(name: str, r: redis.Redis) -> Queue:
    """An RQ queue that (de)serializes jobs as JSON; every queue of the project is made here."""
    return Queue(name, connection=r, serializer=JOB_SERIALIZER)


def pending_key(prefix: str, project_id: int) -> str:
    """The flag that coalesces a project's refreshes (cleared by the job when it starts)."""
    return f"{project_namespace(prefix, project_id)}:refresh_pending"


def topup_pending_key(prefix: str, project_id: int) -> str:
    return f"{project_namespace(prefix, project_id)}:topup_pending"


def request_refresh(r: redis.Redis, prefix: str, queue_name: str, project_id: int, reason: str) -> bool:
    """Ask the worker to sync, retrain and re-rank a project; ``False`` if one is already queued."""
    if not r.set(pending_key(prefix, project_id), reason, nx=True, ex=PENDING_TTL):
        return False
    job_queue(queue_name, r).enqueue(
        REFRESH_JOB,
        project_id,
        prefix,
        job_id=f"refresh-{project_id}-{uuid.uuid4().hex[:12]}",
        job_timeout=3600,
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"refresh project {project_id} ({reason})",
    )
    JOBS_ENQUEUED.labels("refresh").inc()
    return True


def low_queue(queue_name: str) -> str:
    """The low-priority queue next to ``queue_name`` (workers take it last)."""
    return f"{queue_name}-low"


def request_sync(r: redis.Redis, prefix: str, queue_name: str, project_id: int, *, full: bool, reason: str) -> bool:
    """Ask for a reconcile with Label Studio's API before the next training."""
    ProjectStore(r, prefix, project_id).request_sync(full=full)
    return request_refresh(r, prefix, queue_name, project_id, reason)




def topup_queue(queue_name: str) -> str:
    """The queue of head top-ups: both worker processes take it before anything else they do."""
    return f"{queue_name}-topup"


def request_topup(r: redis.Redis, prefix: str, queue_name: str, project_id: int) -> bool:
    """Ask for the next slice of the served version's ranking (``backend/state/head.py``), coalesced."""
    if not r.set(topup_pending_key(prefix, project_id), 1, nx=True, ex=PENDING_TTL):
        return False
    job_queue(topup_queue(queue_name), r).enqueue(
        TOPUP_JOB, project_id, prefix, job_id=f"topup-{project_id}-{uuid.uuid4().hex[:12]}",
        job_timeout=600, result_ttl=3600, failure_ttl=7 * 24 * 3600, description=f"top up project {project_id}",
    )
    JOBS_ENQUEUED.labels("topup").inc()
    return True


def low_pending_key(prefix: str, project_id: int, job: str) -> str:
    return f"{project_namespace(prefix, project_id)}:{job}_pending"


def claim_scheduler_tick(r: redis.Redis, prefix: str, ttl_s: float) -> bool:
    """Whether this process has the scheduler's tick (one worker per tick, whoever asks first)."""
    return bool(r.set(f"{prefix}:scheduler_tick", 1, nx=True, px=int(ttl_s * 1000)))


def request_low(r: redis.Redis, prefix: str, queue_name: str, project_id: int, job: str) -> bool:
    """Queue a low-priority job (``prune``, ``evaluate``, ``reconcile``) for a project, coalesced like refreshes."""
    if not r.set(low_pending_key(prefix, project_id, job), 1, nx=True, ex=PENDING_TTL):
        return False
    job_queue(low_queue(queue_name), r).enqueue(
        LOW_JOBS[job], project_id, prefix, job_id=f"{job}-{project_id}-{uuid.uuid4().hex[:12]}",
        job_timeout=3600, result_ttl=3600, failure_ttl=7 * 24 * 3600,
        description=f"{job} project {project_id}",
    )
    JOBS_ENQUEUED.labels(job).inc()
    return True
