"""A project's remote model in Redis: its predictions per task, the version they are of, and its health.

"Bring your own model" (``docs/remote.md``): the worker asks another ML
backend for the pool's predictions and keeps each one here, so a refresh
asks only for tasks it has no prediction of under the remote's current
model version, and the push and ``/predict`` serve them without calling it.
This class is the only place these keys are spelled:

``remote:version``
    the remote's model version, as its last answer named it;
``remote:predictions:<digest of that version>``
    hash task id -> the remote's prediction, JSON (never pickle);
``remote:health``
    hash: consecutive failures, the last error's text, when, and when the
    next call is due; what ``/status/{project}`` shows under ``remote``.

A new version makes every cached prediction stale: the old hash is deleted
when the version changes.  The version string comes from a server someone
else runs, so it is hashed into the key, never spelled into it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson

from backend.remote.sources import uses_other_model
from backend.state.store import ProjectStore

#: The version of answers that name none.
UNVERSIONED = ""
#: Longest error text kept (a remote's answer is not echoed, only what the client made of it).
MAX_ERROR = 500


def result_of(prediction: Any) -> list[dict]:
    """A remote prediction's ``result`` as Label Studio result items: a list of objects with string
    ``from_name``, ``to_name`` and ``type`` and an object ``value``; anything else in it is dropped
    (a ``result`` that is not a list gives none, and the task is pushed with an empty pre-annotation)."""
    result = prediction.get("result") if isinstance(prediction, dict) else None
    if not isinstance(result, list):
        return []
    return [item for item in result if isinstance(item, dict) and isinstance(item.get("value"), dict)
            and all(isinstance(item.get(k), str) for k in ("from_name", "to_name", "type"))]


class RemotePredictions:
    """One project's cache of the remote model's predictions, and its health record."""

    def __init__(self, store: ProjectStore) -> None:
        self.store = store
        self.r = store.r

    def _version_key(self) -> str:
        return self.store.key("remote:version")

    def _health_key(self) -> str:
        return self.store.key("remote:health")

    def _predictions_key(self, version: str) -> str:
        digest = hashlib.sha256(version.encode("utf-8", "replace")).hexdigest()[:16]
        return self.store.key("remote:predictions:" + digest)

    # -- the version and its predictions -------------------------------------
    def version(self) -> str | None:
        """The remote's model version as last seen (``""``: it names none), ``None`` before any answer."""
        raw = self.r.get(self._version_key())
        return None if raw is None else raw.decode("utf-8", "replace")

    def set_version(self, version: str) -> bool:
        """Record the remote's version; a different one drops every cached prediction. Returns whether it changed."""
        old = self.version()
        if old == version:
            return False
        pipe = self.r.pipeline()
        if old is not None:
            pipe.delete(self._predictions_key(old))
        pipe.set(self._version_key(), version)
        pipe.execute()
        return True

    def get(self, task_ids: list[int]) -> list[dict | None]:
        """The cached prediction of each task under the current version (``None``: none, or unreadable)."""
        version = self.version()
        if version is None or not task_ids:
            return [None] * len(task_ids)
        out: list[dict | None] = []
        for raw in self.r.hmget(self._predictions_key(version), task_ids):
            try:
                value = orjson.loads(raw) if raw is not None else None
            except orjson.JSONDecodeError:
                value = None
            out.append(value if isinstance(value, dict) else None)
        return out

    def results(self, task_ids: list[int]) -> dict[int, list[dict]]:
        """The cached pre-annotation (``result_of``) of each task; an empty list where there is none."""
        return {tid: result_of(p) for tid, p in zip(task_ids, self.get(task_ids))}

    def missing(self, task_ids: list[int]) -> list[int]:
        """The tasks of ``task_ids`` without a prediction under the current version (in their order)."""
        version = self.version()
        if version is None:
            return list(task_ids)
        key = self._predictions_key(version)
        out: list[int] = []
        for start in range(0, len(task_ids), 10_000):
            chunk = task_ids[start:start + 10_000]
            pipe = self.r.pipeline()
            for tid in chunk:
                pipe.hexists(key, tid)
            out.extend(tid for tid, there in zip(chunk, pipe.execute()) if not there)
        return out

    def put(self, version: str, predictions: dict[int, dict]) -> None:
        """Cache predictions the remote made under ``version`` (ignored unless it is still the current one)."""
        if predictions and self.version() == version:
            rows = {tid: orjson.dumps(p) for tid, p in predictions.items()}
            self.r.hset(self._predictions_key(version), mapping=rows)

    # -- health ---------------------------------------------------------------
    def record_failure(self, error: str, retry_in: float, now: float | None = None) -> dict:
        """One more failed call in a row: its text, and when to call again. Returns the health record."""
        now = time.time() if now is None else now
        failures = int(self.r.hincrby(self._health_key(), "failures", 1))
        self.r.hset(self._health_key(), mapping={
            "last_error": error[:MAX_ERROR], "last_error_at": now, "next_retry_at": now + retry_in})
        return {**self.health(), "failures": failures}

    def failures(self) -> int:
        raw = self.r.hget(self._health_key(), "failures")
        return int(raw) if raw is not None else 0

    def record_success(self, calls: int, now: float | None = None) -> None:
        """Calls answered: the failure count is reset (the last error's text stays, with its time)."""
        now = time.time() if now is None else now
        pipe = self.r.pipeline()
        pipe.hset(self._health_key(), mapping={"failures": 0, "last_ok_at": now, "next_retry_at": 0})
        pipe.hincrby(self._health_key(), "calls", calls)
        pipe.execute()

    def health(self) -> dict[str, Any]:
        """What ``/status`` shows: failures in a row, last error and its time, next retry, last success, version."""
        raw = {k.decode(): v.decode("utf-8", "replace") for k, v in self.r.hgetall(self._health_key()).items()}
        out: dict[str, Any] = {"failures": int(raw.get("failures", 0)), "calls": int(raw.get("calls", 0)),
                               "last_error": raw.get("last_error") or None}
        for name in ("last_error_at", "next_retry_at", "last_ok_at"):
            value = float(raw.get(name) or 0)
            out[name] = value or None
        out["model_version"] = self.version()
        return out


def project_health(store: Any) -> dict[str, Any] | None:
    """The remote model's health for a project whose model is one (``remote`` or ``plugin``), else ``None``.

    What ``/status`` (``remote``) and the dashboard show.  ``store`` is the project's ``ProjectStore``.
    """
    extra = store.config_field("extra_params")
    if not uses_other_model(extra):
        return None
    where = extra.get("remote_url") if extra.get("model") == "remote" else extra.get("plugin")
    return {"model": extra.get("model"), "where": where if isinstance(where, str) else None,
            **RemotePredictions(store).health()}
