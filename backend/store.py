"""Everything the backend and the worker share, kept in Redis.

One ``ProjectStore`` per Label Studio project.  Keys are namespaced as
``<prefix>:p:<project id>:<what>`` so several deployments (or the tests) can
share a Redis.  Writes that must not go backwards (annotation updates that
arrive out of order, deleted annotations that arrive late) are single Lua
scripts, so two backend processes can never interleave them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

import orjson
import redis

# Keep an annotation only if it is not deleted and not older than what we hold.
# Returns 0 (stale or deleted: ignored), 1 (new), 2 (its labels changed) or
# 3 (same labels, e.g. a repeated webhook: stored, but nothing to retrain).
_UPSERT_ANNOTATION = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local outcome = 1
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and old['updated_at'] and ARGV[3] ~= '' and old['updated_at'] > ARGV[3] then return 0 end
  outcome = 2
  if ok and old['content'] == ARGV[4] then outcome = 3 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if outcome ~= 3 then redis.call('INCR', KEYS[3]) end
return outcome
"""

# HSETNX for many fields in one command: tasks already in the pool keep their data.
_ADD_NEW_FIELDS = """
local added = 0
for i = 1, #ARGV, 2 do added = added + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return added
"""


# Outcomes of ``ProjectStore.upsert_annotation``.
STALE, NEW, CHANGED, UNCHANGED = 0, 1, 2, 3


class UnknownProjectError(LookupError):
    """A request names a project this backend was never set up for."""


def parse_project_id(value: Any) -> int:
    """Label Studio sends ``"<id>.<created_epoch>"`` to the ML API, ``{"id": ...}`` in webhooks."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool):
        raise ValueError(f"project must be an id, got {value!r}")
    if isinstance(value, int):
        pid = value
    elif isinstance(value, str) and value.split(".", 1)[0].strip().isdigit():
        pid = int(value.split(".", 1)[0])
    else:
        raise ValueError(f"project must look like \"<id>.<created_epoch>\" or an integer id, got {value!r}")
    if pid < 0:
        raise ValueError(f"project id must not be negative, got {pid}")
    return pid


def connect(url: str) -> redis.Redis:
    """A client with short timeouts: Redis down must fail fast, not hang a request."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    meta: dict


class ProjectStore:
    """Redis state of one project: config, tasks, annotations, model versions, ranking."""

    def __init__(self, r: redis.Redis, prefix: str, project_id: int) -> None:
        self.r = r
        self.prefix = prefix
        self.pid = project_id
        self.base = f"{prefix}:p:{project_id}"

    def key(self, what: str) -> str:
        return f"{self.base}:{what}"

    # -- config ------------------------------------------------------------
    def save_config(self, fields: dict[str, Any]) -> None:
        """Store the project's config fields (JSON-encoded) and register the project."""
        pipe = self.r.pipeline()
        pipe.hset(self.key("config"), mapping={k: orjson.dumps(v) for k, v in fields.items()})
        pipe.sadd(f"{self.prefix}:projects", self.pid)
        pipe.execute()

    def config(self) -> dict[str, Any]:
        raw = self.r.hgetall(self.key("config"))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    def schema(self) -> str | None:
        raw = self.r.hget(self.key("config"), "schema")
        return orjson.loads(raw) if raw else None

    def exists(self) -> bool:
        return bool(self.r.exists(self.key("config")))

    # -- tasks -------------------------------------------------------------
    def add_tasks(self, tasks: Iterable[tuple[int, dict]], *, overwrite: bool = True) -> int:
        """Record task data; returns how many tasks were new to the pool."""
        tasks = list(tasks)
        if not tasks:
            return 0
        if overwrite:
            added = self.r.hset(self.key("tasks"), mapping={tid: orjson.dumps(data) for tid, data in tasks})
        else:
            args = [x for tid, data in tasks for x in (tid, orjson.dumps(data))]
            added = int(self.r.register_script(_ADD_NEW_FIELDS)(keys=[self.key("tasks")], args=args))
        if added:
            self.r.incr(self.key("pool_epoch"))
        return added

    def delete_tasks(self, task_ids: Iterable[int]) -> int:
        ids = list(task_ids)
        if not ids:
            return 0
        pipe = self.r.pipeline()
        pipe.hdel(self.key("tasks"), *ids)
        pipe.sadd(self.key("tasks_deleted"), *ids)
        pipe.incr(self.key("pool_epoch"))
        return pipe.execute()[0]

    def tasks(self) -> dict[int, dict]:
        return {int(k): orjson.loads(v) for k, v in self.r.hgetall(self.key("tasks")).items()}

    def task_ids(self) -> list[int]:
        """Every task of the pool, without reading its data."""
        return [int(k) for k in self.r.hkeys(self.key("tasks"))]

    def tasks_by_id(self, task_ids: list[int]) -> dict[int, dict]:
        if not task_ids:
            return {}
        raw = self.r.hmget(self.key("tasks"), task_ids)
        return {tid: orjson.loads(v) for tid, v in zip(task_ids, raw) if v is not None}

    # -- annotations -------------------------------------------------------
    def upsert_annotation(self, ann: dict) -> int:
        """Keep the newest state of an annotation; see ``_UPSERT_ANNOTATION`` for the result.

        ``ann["content"]`` is a digest of what training uses (task, labels,
        cancelled), so a repeated webhook does not count as a change.
        """
        script = self.r.register_script(_UPSERT_ANNOTATION)
        return int(
            script(
                keys=[self.key("annotations"), self.key("annotations_deleted"), self.key("labels_epoch")],
                args=[ann["id"], orjson.dumps(ann), ann.get("updated_at") or "", ann.get("content", "")],
            )
        )

    def epochs(self) -> tuple[int, int]:
        """Counters bumped by every change of the labels and of the pool.

        The worker compares them with the current version's to skip work
        without loading the project.
        """
        labels, pool = self.r.mget(self.key("labels_epoch"), self.key("pool_epoch"))
        return int(labels or 0), int(pool or 0)

    def delete_annotations(self, ann_ids: Iterable[int]) -> int:
        ids = list(ann_ids)
        if not ids:
            return 0
        pipe = self.r.pipeline()
        pipe.sadd(self.key("annotations_deleted"), *ids)
        pipe.hdel(self.key("annotations"), *ids)
        removed = pipe.execute()[1]
        if removed:
            self.r.incr(self.key("labels_epoch"))
        return removed

    def annotations(self) -> list[dict]:
        return [orjson.loads(v) for v in self.r.hvals(self.key("annotations"))]

    # -- model versions ----------------------------------------------------
    def next_version_name(self) -> str:
        n = self.r.incr(self.key("version_counter"))
        return f"v{n}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"

    def publish_version(
        self,
        name: str,
        meta: dict,
        artifacts: dict[str, bytes],
        ranking: dict[int, float],
        *,
        control: Iterable[int] = (),
    ) -> None:
        """Write a complete version, then flip ``current`` to it in one transaction.

        Readers either see the old version or the whole new one: the pointer
        moves only after the model, its ranking and metadata are stored.  The
        version it replaces is stamped as current until now (``current_until``):
        ``/predict`` answers carry it, and Label Studio keeps those predictions.
        """
        previous = self.current_version()
        pipe = self.r.pipeline()
        art_key, rank_key = self.key(f"artifacts:{name}"), self.key(f"ranking:{name}")
        if artifacts:
            pipe.hset(art_key, mapping=artifacts)
        if ranking:
            pipe.hset(rank_key, mapping={tid: repr(float(s)) for tid, s in ranking.items()})
        control = list(control)
        if control:
            pipe.sadd(self.key(f"control:{name}"), *control)
        pipe.hset(self.key("versions"), name, orjson.dumps(meta))
        pipe.rpush(self.key("version_order"), name)
        pipe.set(self.key("current"), name)
        if previous and previous != name:
            pipe.zadd(self.key("current_until"), {previous: time.time()}, gt=True)
        pipe.execute()

    def current_version(self) -> str | None:
        raw = self.r.get(self.key("current"))
        return raw.decode() if raw else None

    def version_meta(self, name: str) -> dict | None:
        raw = self.r.hget(self.key("versions"), name)
        return orjson.loads(raw) if raw else None

    def update_version_meta(self, name: str, **fields: Any) -> None:
        meta = self.version_meta(name) or {}
        self.r.hset(self.key("versions"), name, orjson.dumps({**meta, **fields}))

    def versions(self) -> list[VersionInfo]:
        names = [n.decode() for n in self.r.lrange(self.key("version_order"), 0, -1)]
        metas = self.r.hmget(self.key("versions"), names) if names else []
        return [VersionInfo(n, orjson.loads(m)) for n, m in zip(names, metas) if m]

    def artifacts(self, name: str) -> dict[str, bytes]:
        return {k.decode(): v for k, v in self.r.hgetall(self.key(f"artifacts:{name}")).items()}

    def ranking(self, name: str) -> dict[int, float]:
        return {int(k): float(v) for k, v in self.r.hgetall(self.key(f"ranking:{name}")).items()}

    def control_tasks(self, name: str) -> set[int]:
        """Tasks the version's random control share placed in the queue."""
        return {int(t) for t in self.r.smembers(self.key(f"control:{name}"))}

    def drop_version_data(self, name: str) -> None:
        """Free an old version's model, ranking and control set; its metadata stays (history)."""
        self.r.delete(*(self.key(f"{what}:{name}") for what in ("artifacts", "ranking", "control")))

    def ranking_scores(self, name: str, task_ids: list[int]) -> list[float | None]:
        if not task_ids:
            return []
        raw = self.r.hmget(self.key(f"ranking:{name}"), task_ids)
        return [None if v is None else float(v) for v in raw]

    # -- what Label Studio holds ---------------------------------------------
    def push_state(self, name: str) -> dict:
        raw = self.r.hget(self.key("pushes"), name)
        return orjson.loads(raw) if raw else {}

    def set_push_state(self, name: str, state: dict) -> None:
        pipe = self.r.pipeline()
        pipe.hset(self.key("pushes"), name, orjson.dumps(state))
        pipe.zadd(self.key("push_order"), {name: time.time()}, nx=True)
        pipe.execute()

    def pushed_versions(self) -> list[str]:
        """Versions this backend sent to Label Studio, oldest first."""
        return [n.decode() for n in self.r.zrange(self.key("push_order"), 0, -1)]

    def forget_push(self, name: str) -> None:
        pipe = self.r.pipeline()
        pipe.hdel(self.key("pushes"), name)
        pipe.zrem(self.key("push_order"), name)
        pipe.execute()

    def ls_version(self) -> str | None:
        """The version Label Studio's project points at (as last set by this backend)."""
        raw = self.r.get(self.key("ls_version"))
        return raw.decode() if raw else None

    def set_ls_version(self, name: str) -> None:
        """Point at ``name``; the version pointed at before is stamped as current until now."""
        previous = self.r.set(self.key("ls_version"), name, get=True)
        if previous and previous.decode() != name:
            self.r.zadd(self.key("current_until"), {previous.decode(): time.time()}, gt=True)

    def current_until(self) -> dict[str, float]:
        """When each version last stopped being current, in the backend or in Label Studio.

        An annotator may still have a task open with a prediction of such a
        version (and submits its id), so pruning waits on this time.  The
        later of the two stamps wins (``ZADD GT``).
        """
        return {n.decode(): t for n, t in self.r.zrange(self.key("current_until"), 0, -1, withscores=True)}

    # -- feature cache -----------------------------------------------------
    def cached_features(self, spec_key: str, task_ids: list[int]) -> list[bytes | None]:
        if not task_ids:
            return []
        return self.r.hmget(self.key(f"features:{spec_key}"), task_ids)

    def cache_features(self, spec_key: str, rows: dict[int, bytes]) -> None:
        if rows:
            self.r.hset(self.key(f"features:{spec_key}"), mapping=rows)

    # -- status ------------------------------------------------------------
    def set_status(self, **fields: Any) -> None:
        self.r.hset(self.key("status"), mapping={k: orjson.dumps(v) for k, v in fields.items()})

    def status(self) -> dict[str, Any]:
        return {k.decode(): orjson.loads(v) for k, v in self.r.hgetall(self.key("status")).items()}


def project_ids(r: redis.Redis, prefix: str) -> list[int]:
    return sorted(int(x) for x in r.smembers(f"{prefix}:projects"))
