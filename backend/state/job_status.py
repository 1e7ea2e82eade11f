"""What the worker queue is doing for one project, read from RQ's registries and job hashes.

Why not ``rq.job.Job.fetch``: restoring a job deserializes its ``meta`` and,
on first use of ``func_name``, its ``data``.  Anyone who can write to Redis
could plant a payload there, and the serving process must never run it.  So
this module reads only plain hash fields (status, description, timestamps)
and the failed result's ``exc_string`` (base64 + zlib text), and derives the
job's name from its id, which ``backend.state.queueing`` gives the form
``<job>-<project>-<random>``.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from datetime import datetime, timezone

import redis
from rq.job import Job
from rq.results import Result

from backend.state.queueing import JOB_FUNCTIONS, job_queue

MAX_LISTED = 10
MAX_ERROR_BYTES = 64 * 1024  # an exception text is short; a planted zlib bomb is cut here
_FIELDS = ("status", "description", "enqueued_at", "started_at", "ended_at")


def _time(raw: bytes | None) -> datetime | None:
    if not raw:
        return None
    text = raw.decode("ascii", "replace")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


def _text(raw: bytes | None, limit: int = 500) -> str | None:
    return raw.decode("utf-8", "replace")[:limit] if raw else None


def _last_error(r: redis.Redis, job_id: str) -> str | None:
    """The last line of the latest result's exception text, decoded without any deserializer."""
    entries = r.xrevrange(Result.get_key(job_id), count=1)
    if not entries:
        return None
    raw = entries[0][1].get(b"exc_string")
    if not raw:
        return None
    try:
        text = zlib.decompressobj().decompress(base64.b64decode(raw), MAX_ERROR_BYTES).decode("utf-8", "replace")
    except (binascii.Error, zlib.error, ValueError):
        return None
    lines = text.strip().splitlines()
    return lines[-1][:500] if lines else None


def _describe(job_id: str, fields: list[bytes | None], r: redis.Redis) -> dict:
    status, description, enqueued, started, ended = fields
    started_at, ended_at = _time(started), _time(ended)
    info = {
        "id": job_id,
        "job": JOB_FUNCTIONS.get(job_id.split("-", 1)[0], job_id.split("-", 1)[0]).rsplit(".", 1)[-1],
        "status": _text(status, 20),
        "description": _text(description),
        "enqueued_at": _iso(_time(enqueued)),
        "started_at": _iso(started_at),
        "ended_at": _iso(ended_at),
        "duration_s": round((ended_at - started_at).total_seconds(), 3) if started_at and ended_at else None,
    }
    if info["status"] == "failed":
        error = _last_error(r, job_id)
        if error:
            info["error"] = error
    return info


def project_jobs(r: redis.Redis, queue_names: list[str], project_id: int) -> dict[str, list[dict]]:
    """Queued, running, failed and recently finished jobs of a project (newest first)."""
    marker = f"-{project_id}-"
    out: dict[str, list[dict]] = {"queued": [], "running": [], "failed": [], "finished": []}
    for name in queue_names:
        q = job_queue(name, r)
        sources = {
            "queued": q.get_job_ids(),
            "running": q.started_job_registry.get_job_ids(),
            "failed": q.failed_job_registry.get_job_ids(),
            "finished": q.finished_job_registry.get_job_ids(),
        }
        for state, ids in sources.items():
            mine = [i for i in ids if marker in i][-MAX_LISTED * 3:]
            pipe = r.pipeline(transaction=False)
            for job_id in mine:
                pipe.hmget(Job.key_for(job_id), _FIELDS)
            for job_id, fields in zip(mine, pipe.execute()):
                if any(fields):  # the hash expired or never existed
                    out[state].append(_describe(job_id, fields, r))
    for state in out:
        out[state].sort(key=lambda j: j["enqueued_at"] or "", reverse=True)
        out[state] = out[state][:MAX_LISTED]
    return out
