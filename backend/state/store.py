"""Everything the backend and the worker share, kept in Redis.

One ``ProjectStore`` per Label Studio project.  Keys are namespaced as
``<prefix>:p:<project id>:<what>`` so several deployments (or the tests) can
share a Redis.  Only ``backend/state/`` spells key names: each structure's
keys are written by the class or module that owns it (this one; the job
flags in ``queueing.py``; the served head in ``head.py``; the progress
figures in ``progress.py``), and everyone else calls their methods.

Writes that must not go backwards (annotation updates that arrive out of
order) are single Lua scripts, so two backend processes can never
interleave them.

**One identity per project.**  Label Studio names a project ``"<id>.<created
epoch>"`` in ``/setup``, and every webhook carries the project's
``created_at``.  The key namespace stays the plain id (short keys, nothing to
rename), and the project's identity, its creation epoch and the Label Studio
host ``/setup`` named, is stored beside the state (``<...>:identity``).  When
``/setup`` or a webhook shows another epoch, the project was recreated (a
reset or reinstalled Label Studio, or a second instance using the same id):
every key of the old project is deleted first, so the new one starts clean
and inherits nothing.  A same epoch from another host is the same project
reached through another address and keeps its state.

**Label Studio is the truth.**  There are no tombstones: a deletion webhook
removes the annotations named and records their ids as *unconfirmed*; the
worker then asks Label Studio about each (``worker/sync.py``) and restores
what it still holds, so a forged ``ANNOTATIONS_DELETED`` cannot remove a label
for longer than one worker run, nor block annotations created later, and a
reconcile makes the labeled set equal to Label Studio's.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import orjson
import redis
import redis.lock

# Keep an annotation only if it is not older than what we hold.
# Returns 0 (stale: ignored), 1 (new), 2 (its labels changed) or
# 3 (same labels, e.g. a repeated webhook: stored, but nothing to retrain).
_UPSERT_ANNOTATION = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local outcome = 1
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and old['updated_at'] and ARGV[3] ~= '' and old['updated_at'] > ARGV[3] then return 0 end
  outcome = 2
  if ok and old['content'] == ARGV[4] then outcome = 3 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if outcome ~= 3 then redis.call('INCR', KEYS[2]) end
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


def project_namespace(prefix: str, project_id: int) -> str:
    """The start of every key of one project (the layout stored state is read with: never change it)."""
    return f"{prefix}:p:{project_id}"


class ProjectStore:
    """Redis state of one project: config, tasks, annotations, model versions, ranking."""

    def __init__(self, r: redis.Redis, prefix: str, project_id: int) -> None:
        self.r = r
        self.prefix = prefix
        self.pid = project_id
        self.base = project_namespace(prefix, project_id)

    def key(self, what: str) -> str:
        return f"{self.base}:{what}"

    # -- identity ----------------------------------------------------------
    def identity(self) -> dict:
        raw = self.r.get(self.key("identity"))
        return orjson.loads(raw) if raw else {}

    def claim(self, epoch: int | None, hostname: str | None = None) -> bool:
        """Make this store the project created at ``epoch``; returns ``True`` if an older project's state was wiped.

        ``None`` (Label Studio did not say) changes nothing.  A store
        without an identity (state from before identities) adopts the epoch
        its config recorded at ``/setup``, if any, and is wiped only if that
        differs.
        """
        if epoch is None:
            return False
        ident = self.identity()
        known = ident.get("epoch")
        if known is None:
            known = self.config().get("project_epoch")
        if known is not None and int(known) != int(epoch):
            self.wipe()
            ident = {}
        new = {**ident, "epoch": int(epoch), **({"hostname": hostname} if hostname else {})}
        if new != ident:
            self.r.set(self.key("identity"), orjson.dumps(new))
        return known is not None and int(known) != int(epoch)

    def wipe(self) -> int:
        """Delete every key of this project (the lock stays: a running job finishes on its own)."""
        keep = self.key("lock").encode()
        keys = [k for k in self.r.scan_iter(match=f"{self.base}:*", count=1000) if k != keep]
        for i in range(0, len(keys), 1000):
            self.r.delete(*keys[i:i + 1000])
        return len(keys)

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
        return self.config_field("schema")

    def config_field(self, name: str) -> Any:
        """One field of the config (one HGET, not the whole config); ``None`` when unset."""
        raw = self.r.hget(self.key("config"), name)
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
        pipe.incr(self.key("pool_epoch"))
        return pipe.execute()[0]

    def tasks(self) -> dict[int, dict]:
        return {int(k): orjson.loads(v) for k, v in self.r.hgetall(self.key("tasks")).items()}

    def task_ids(self) -> list[int]:
        """Every task of the pool, without reading its data."""
        return [int(k) for k in self.r.hkeys(self.key("tasks"))]

    def has_tasks(self, task_ids: list[int]) -> list[bool]:
        """Whether each task is in the pool (one round trip)."""
        pipe = self.r.pipeline(transaction=False)
        for tid in task_ids:
            pipe.hexists(self.key("tasks"), tid)
        return [bool(x) for x in pipe.execute()]

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
                keys=[self.key("annotations"), self.key("labels_epoch")],
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

    def delete_annotations(self, ann_ids: Iterable[int], *, unconfirmed: bool = False) -> int:
        """Remove annotations held here; ``unconfirmed``: also ask the worker to check them with Label Studio.

        No tombstone is left: an id deleted here may be created again (Label
        Studio is the truth, see the module docstring).
        """
        ids = list(ann_ids)
        if not ids:
            return 0
        pipe = self.r.pipeline()
        pipe.hdel(self.key("annotations"), *ids)
        if unconfirmed:
            pipe.sadd(self.key("deletions_unconfirmed"), *ids)
        removed = pipe.execute()[0]
        if removed:
            self.r.incr(self.key("labels_epoch"))
        return removed

    def take_unconfirmed_deletions(self, limit: int) -> list[int]:
        """Up to ``limit`` deleted annotation ids that Label Studio has not confirmed yet (removed from the set)."""
        return [int(x) for x in self.r.spop(self.key("deletions_unconfirmed"), limit) or []]

    def annotation(self, ann_id: int) -> dict | None:
        raw = self.r.hget(self.key("annotations"), ann_id)
        return orjson.loads(raw) if raw else None

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

    def random_pick_tasks(self, name: str) -> set[int]:
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

    def feature_cache_token(self, spec_key: str) -> str:
        """A random token that lives as long as the feature cache ``spec_key``.

        A worker keeping rows of that cache in memory compares it: a new
        token means the cache was wiped (project recreated, Redis flushed).
        """
        key = self.key(f"features_token:{spec_key}")
        self.r.set(key, uuid.uuid4().hex, nx=True)
        return (self.r.get(key) or b"").decode()

    # -- status ------------------------------------------------------------
    def set_status(self, **fields: Any) -> None:
        self.r.hset(self.key("status"), mapping={k: orjson.dumps(v) for k, v in fields.items()})

    def status(self) -> dict[str, Any]:
        return {k.decode(): orjson.loads(v) for k, v in self.r.hgetall(self.key("status")).items()}

    def sizes(self) -> tuple[int, int]:
        """``(tasks, annotations)`` held, without reading them."""
        pipe = self.r.pipeline()
        pipe.hlen(self.key("tasks"))
        pipe.hlen(self.key("annotations"))
        tasks, annotations = pipe.execute()
        return int(tasks), int(annotations)

    def has_control_set(self, name: str) -> bool:
        """Whether a version's control tasks are still kept (``drop_version_data`` frees them)."""
        return bool(self.r.exists(self.key(f"control:{name}")))

    def push_times(self) -> list[tuple[float, str]]:
        """``(when its push began, version)`` of the versions pushed to Label Studio, oldest first."""
        return [(float(ts), n.decode()) for n, ts in self.r.zrange(self.key("push_order"), 0, -1, withscores=True)]

    # -- requests between the service and the worker -------------------------------
    def request_sync(self, *, full: bool) -> None:
        """Ask the next refresh to reconcile with Label Studio (a full request wins over an incremental one)."""
        if full:
            self.r.set(self.key("sync_requested"), "full")
        else:
            self.r.set(self.key("sync_requested"), "incremental", nx=True)

    def request_training(self) -> None:
        """Make the next refresh retrain even if no label changed (Label Studio's *Start training*)."""
        self.r.set(self.key("force_train"), 1)

    def take_requests(self) -> tuple[str | None, bool]:
        """The pending sync request (``"full"``, ``"incremental"`` or ``None``) and training request, cleared."""
        pipe = self.r.pipeline()
        pipe.getdel(self.key("sync_requested"))
        pipe.getdel(self.key("force_train"))
        sync, force = pipe.execute()
        return (sync.decode() if sync else None), bool(force)

    def return_unconfirmed_deletions(self, ann_ids: Iterable[int]) -> None:
        """Put back deletions taken by ``take_unconfirmed_deletions`` that could not be checked."""
        ids = list(ann_ids)
        if ids:
            self.r.sadd(self.key("deletions_unconfirmed"), *ids)

    def forget_unconfirmed_deletions(self) -> None:
        """Nobody can confirm them (no Label Studio access): the webhook is all there is."""
        self.r.delete(self.key("deletions_unconfirmed"))

    # -- locks ---------------------------------------------------------------
    def lock(self, *, timeout: float, blocking_timeout: float) -> redis.lock.Lock:
        """The project's lock: one refresh (sync, train, push) at a time; ``wipe`` keeps it."""
        # thread_local=False: a renewing thread must see the token of the job that took the lock.
        return self.r.lock(self.key("lock"), timeout=timeout, blocking_timeout=blocking_timeout,
                           thread_local=False)

    def is_locked(self) -> bool:
        return bool(self.r.exists(self.key("lock")))

    def topup_lock(self, *, timeout: float) -> redis.lock.Lock:
        """One top-up of the served head at a time (taken without waiting)."""
        return self.r.lock(self.key("topup_lock"), timeout=timeout, blocking_timeout=0)

    def shard_keys(self, token: str) -> tuple[str, str, str]:
        """The keys of one sharded scoring run (``worker/shards.py``): its state, shards to do, shards done."""
        base = self.key(f"shards:{token}")
        return base, base + ":todo", base + ":done"

    # -- refusals (``backend/service/refusals.py``) ----------------------------------
    def set_refusal(self, entry: dict) -> None:
        pipe = self.r.pipeline()
        pipe.set(self.key("refusal"), orjson.dumps(entry))
        pipe.sadd(_refused_index(self.prefix), self.pid)  # ids of projects with a refusal, never set-up ones too
        pipe.execute()

    def clear_refusal(self) -> None:
        pipe = self.r.pipeline()
        pipe.delete(self.key("refusal"))
        pipe.srem(_refused_index(self.prefix), self.pid)
        pipe.execute()

    def refusal(self) -> dict | None:
        raw = self.r.get(self.key("refusal"))
        return orjson.loads(raw) if raw else None


def _refused_index(prefix: str) -> str:
    return f"{prefix}:refused"


def refused_project_ids(r: redis.Redis, prefix: str) -> list[int]:
    """Projects with a refusal kept, those Label Studio could never connect included."""
    return sorted(int(x) for x in r.smembers(_refused_index(prefix)))


def project_ids(r: redis.Redis, prefix: str) -> list[int]:
    return sorted(int(x) for x in r.smembers(f"{prefix}:projects"))


def namespace_pattern(prefix: str) -> str:
    """A ``SCAN`` pattern for every key of a deployment (benchmarks clean up with it)."""
    return f"{prefix}:*"


def epoch_of(created_at: str | None) -> int | None:
    """The creation epoch Label Studio puts in ``"<id>.<created_epoch>"`` (``int(created_at.timestamp())``)."""
    if not created_at:
        return None
    try:
        return int(datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


# Keys that older layouts kept and this one must not: deletion tombstones
# blocked annotations forever, even against a full reconcile.
_OLD_KEYS = ("annotations_deleted", "tasks_deleted")


def migrate(r: redis.Redis, prefix: str) -> list[int]:
    """Bring every project's state to the current layout; returns the projects changed.

    Idempotent and cheap; run by the worker and the serving processes at start.
    Tombstone sets are dropped, and a project set up before identities gets
    the epoch its ``/setup`` recorded as its identity.
    """
    changed = []
    for pid in project_ids(r, prefix):
        store = ProjectStore(r, prefix, pid)
        dropped = r.delete(*(store.key(k) for k in _OLD_KEYS))
        adopted = False
        if not r.exists(store.key("identity")):
            epoch = store.config().get("project_epoch")
            if epoch is not None:
                adopted = store.claim(int(epoch), store.config().get("hostname") or None) is False
        if dropped or adopted:
            changed.append(pid)
    return changed
