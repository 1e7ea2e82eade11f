"""What the worker queue is doing for one project, read from RQ's own registries."""

from __future__ import annotations

from datetime import datetime

import redis
from rq import Queue
from rq.job import Job

MAX_LISTED = 10


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


def _describe(job: Job) -> dict:
    started, ended = job.started_at, job.ended_at
    info = {
        "id": job.id,
        "job": job.func_name.rsplit(".", 1)[-1],
        "status": job.get_status(refresh=False).value if job.get_status(refresh=False) else None,
        "description": job.description,
        "enqueued_at": _iso(job.enqueued_at),
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "duration_s": round((ended - started).total_seconds(), 3) if started and ended else None,
    }
    result = job.latest_result() if info["status"] == "failed" else None
    if result is not None and result.exc_string:
        info["error"] = result.exc_string.strip().splitlines()[-1][:500]
    return info


def project_jobs(r: redis.Redis, queue_names: list[str], project_id: int) -> dict[str, list[dict]]:
    """Queued, running, failed and recently finished jobs of a project (newest first)."""
    marker = f"-{project_id}-"
    out: dict[str, list[dict]] = {"queued": [], "running": [], "failed": [], "finished": []}
    for name in queue_names:
        q = Queue(name, connection=r)
        sources = {
            "queued": q.get_job_ids(),
            "running": q.started_job_registry.get_job_ids(),
            "failed": q.failed_job_registry.get_job_ids(),
            "finished": q.finished_job_registry.get_job_ids(),
        }
        for state, ids in sources.items():
            mine = [i for i in ids if marker in i]
            jobs = [j for j in Job.fetch_many(mine[-MAX_LISTED * 3:], connection=r) if j is not None]
            out[state].extend(_describe(j) for j in jobs)
    for state in out:
        out[state].sort(key=lambda j: j["enqueued_at"] or "", reverse=True)
        out[state] = out[state][:MAX_LISTED]
    return out
