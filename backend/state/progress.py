"""The Redis structures of a project's progress figures (``<project>:progress:*``).

Written by the evaluate job (``worker/progress.py``), read by the dashboard,
``/status`` and ``/metrics``.  This class is the one place their keys are
spelled; what the figures mean is in ``backend/progress/``.

* ``pending``          -- per unlabeled task, JSON ``{version: prediction}``
  of the versions whose control share put it at the head of their queue;
* ``pending_versions`` -- the versions whose control predictions were recorded;
* ``outcomes``         -- per labeled control task, the serving version's
  prediction next to the label;
* ``random_curve``     -- the cached random-selection learning curve;
* ``stop_set`` / ``stop_last`` -- the fixed stop-set sample and the last
  model's predictions on it;
* ``feature_choice``   -- ``features: "auto"``: the last comparison of representations
  (``backend/learning/auto_features.py``), which the next refresh trains on;
* ``summary``          -- the latest summary (``backend/progress/summary.py``).
"""

from __future__ import annotations

import logging
from typing import Iterable

import orjson
from pydantic import ValidationError

from backend.learning.auto_features import Choice, read_choice
from backend.progress.summary import ProgressSummary
from backend.state.store import ProjectStore

log = logging.getLogger(__name__)


class ProgressStore:
    """Progress state of one project, beside its ``ProjectStore``."""

    def __init__(self, store: ProjectStore) -> None:
        self.store = store
        self.r = store.r

    def _key(self, what: str) -> str:
        return self.store.key(f"progress:{what}")

    # -- control predictions waiting for a label ------------------------------------
    def pending(self, task_ids: Iterable[int] | None = None) -> dict[int, dict]:
        """Pending predictions by task (of ``task_ids`` only, when given; tasks without any are left out)."""
        if task_ids is None:
            return {int(k): orjson.loads(v) for k, v in self.r.hgetall(self._key("pending")).items()}
        ids = list(task_ids)
        raw = self.r.hmget(self._key("pending"), ids) if ids else []
        return {t: orjson.loads(v) for t, v in zip(ids, raw) if v}

    def add_pending(self, rows: dict[int, dict]) -> None:
        if rows:
            self.r.hset(self._key("pending"), mapping={t: orjson.dumps(v) for t, v in rows.items()})

    def pending_count(self) -> int:
        return int(self.r.hlen(self._key("pending")))

    def is_recorded(self, version: str) -> bool:
        return bool(self.r.sismember(self._key("pending_versions"), version))

    def recorded_versions(self) -> set[str]:
        return {n.decode() for n in self.r.smembers(self._key("pending_versions"))}

    def mark_recorded(self, version: str) -> None:
        self.r.sadd(self._key("pending_versions"), version)

    # -- outcomes --------------------------------------------------------------------
    def outcomes(self) -> dict[int, dict]:
        return {int(k): orjson.loads(v) for k, v in self.r.hgetall(self._key("outcomes")).items()}

    def settled(self, task_ids: list[int]) -> set[int]:
        """Those of ``task_ids`` that already have an outcome."""
        raw = self.r.hmget(self._key("outcomes"), task_ids) if task_ids else []
        return {t for t, v in zip(task_ids, raw) if v is not None}

    def settle(self, outcomes: dict[int, dict], decided: list[int]) -> None:
        """Store new outcomes and drop the pending predictions of the tasks decided, together."""
        pipe = self.r.pipeline()
        if outcomes:
            pipe.hset(self._key("outcomes"), mapping={t: orjson.dumps(v) for t, v in outcomes.items()})
        if decided:
            pipe.hdel(self._key("pending"), *decided)
        pipe.execute()

    # -- cached curve, stop set ---------------------------------------------------------
    def random_curve(self) -> dict | None:
        raw = self.r.get(self._key("random_curve"))
        return orjson.loads(raw) if raw else None

    def set_random_curve(self, cached: dict) -> None:
        self.r.set(self._key("random_curve"), orjson.dumps(cached))

    def stop_set(self) -> list[int] | None:
        raw = self.r.get(self._key("stop_set"))
        return orjson.loads(raw) if raw else None

    def claim_stop_set(self, task_ids: list[int]) -> list[int]:
        """Keep ``task_ids`` as the stop set unless one is kept already; returns the one kept."""
        if task_ids:
            self.r.set(self._key("stop_set"), orjson.dumps(task_ids), nx=True)
        return self.stop_set() or []

    def swap_stop_predictions(self, entry: dict) -> dict | None:
        """Keep this model's stop-set predictions; returns the previous model's."""
        raw = self.r.set(self._key("stop_last"), orjson.dumps(entry), get=True)
        return orjson.loads(raw) if raw else None

    # -- the representation chosen by ``features: "auto"`` --------------------------------
    def feature_choice(self) -> Choice | None:
        """The last choice, checked (a value that does not fit is no choice: the default serves)."""
        raw = self.r.get(self._key("feature_choice"))
        try:
            return read_choice(orjson.loads(raw)) if raw else None
        except orjson.JSONDecodeError:
            return None

    def set_feature_choice(self, choice: Choice) -> None:
        self.r.set(self._key("feature_choice"), orjson.dumps(choice.to_dict()))

    # -- summary ----------------------------------------------------------------------
    def summary(self) -> ProgressSummary | None:
        """The latest summary, validated; ``None`` when there is none or it does not validate (logged)."""
        raw = self.r.get(self._key("summary"))
        if not raw:
            return None
        try:
            return ProgressSummary.model_validate_json(raw)
        except ValidationError as exc:  # Redis is shared: a bad value must cost the page its figures, not a 500
            first = exc.errors()[0]
            log.warning("project %s: the progress summary in Redis does not validate (%d problem(s), first: %s at %s);"
                        " shown as missing until the next evaluation", self.store.pid, exc.error_count(),
                        first.get("msg"), ".".join(map(str, first.get("loc", ()))) or "top level")
            return None

    def set_summary(self, summary: ProgressSummary) -> None:
        # Only what the worker set: an item keeps its own keys (a disagreement has "answers", no "label").
        self.r.set(self._key("summary"), summary.model_dump_json(exclude_unset=True))
