"""Pruning never takes away a prediction an annotator may still submit against (issue 11, item 1).

Label Studio's labeling UI submits the id of the prediction it showed
(``parent_prediction``) and refuses the annotation (400) if that prediction
was deleted.  So a version stays in Label Studio while it is current (in the
backend or in Label Studio) and for ``task_lock_ttl`` + margin after; real
Redis, the store's own stamps, a controlled clock.
"""

from __future__ import annotations

import pytest

from backend.settings import Settings
from backend.state import store as store_module
from worker.push import prunable

HOLD = 100.0


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(store_module.time, "time", c)
    return c


def publish(store, name: str, clock: Clock) -> None:
    store.publish_version(name, {"published_at": clock.t}, {}, {1: 0.0})


def push(store, name: str, clock: Clock) -> None:
    """What ``push_current`` records: a complete push, then Label Studio's pointer moves."""
    store.set_push_state(name, {"state": "complete", "at": clock.t})
    store.set_ls_version(name)


def test_versions_current_within_the_hold_are_kept_whatever_keep_versions_says(store, clock):
    for i in range(1, 5):  # v1..v4, each published then pushed, 10 s apart
        publish(store, f"v{i}", clock)
        push(store, f"v{i}", clock)
        clock.t += 10
    # v1 stopped being current 30 s ago, v3 10 s ago: all within the hold, even with keep=1.
    assert prunable(store, keep=1, hold_s=HOLD, now=clock.t) == []
    # Past the hold, ``keep`` counts only the older versions: v3 stays as the one kept.
    assert prunable(store, keep=1, hold_s=HOLD, now=clock.t + HOLD + 1) == ["v1", "v2"]
    assert prunable(store, keep=2, hold_s=HOLD, now=clock.t + HOLD + 1) == ["v1"]
    # v1, v2 and v3 stopped being current 30, 20 and 10 s ago: 85 s from now, v1 and v2 are past the hold.
    assert prunable(store, keep=0, hold_s=HOLD, now=clock.t + 85) == ["v1", "v2"]


def test_the_current_versions_are_never_pruned(store, clock):
    publish(store, "v1", clock)
    push(store, "v1", clock)
    publish(store, "v2", clock)  # the backend's current; Label Studio still points at v1
    store.set_push_state("v2", {"state": "started"})  # its push is under way
    far = clock.t + 10 * HOLD
    assert prunable(store, keep=0, hold_s=HOLD, now=far) == []


def test_the_later_of_the_two_stamps_counts(store, clock):
    """A version the backend replaced long ago but Label Studio pointed at until now is kept."""
    publish(store, "v1", clock)
    push(store, "v1", clock)
    clock.t += 10
    publish(store, "v2", clock)  # v1 leaves the backend here ...
    clock.t += 10
    publish(store, "v3", clock)  # v2 leaves it here (Label Studio never points at v2)
    store.set_push_state("v2", {"state": "failed"})
    clock.t += 500
    push(store, "v3", clock)  # ... and v1 leaves Label Studio only here
    until = store.current_until()
    assert until["v1"] == clock.t and until["v2"] == clock.t - 500
    assert prunable(store, keep=0, hold_s=HOLD, now=clock.t + 50) == ["v2"]
    assert prunable(store, keep=0, hold_s=HOLD, now=clock.t + HOLD + 1) == ["v1", "v2"]


def test_versions_pushed_before_the_stamps_use_their_successors_push(store, clock, redis_conn):
    for i in range(1, 4):
        publish(store, f"v{i}", clock)
        push(store, f"v{i}", clock)
        clock.t += 10
    redis_conn.delete(store.key("current_until"))  # as a deployment upgraded from before the stamps
    # v1's pointer moved on when v2's push completed (20 s ago), v2's 10 s ago.
    assert prunable(store, keep=0, hold_s=15, now=clock.t) == ["v1"]
    assert prunable(store, keep=0, hold_s=5, now=clock.t) == ["v1", "v2"]


def test_the_hold_follows_label_studios_task_lock(monkeypatch):
    monkeypatch.delenv("AL_TASK_LOCK_TTL", raising=False)
    monkeypatch.delenv("AL_PRUNE_MARGIN", raising=False)
    assert Settings().prediction_hold_s == 86_400 + 300  # TASK_LOCK_TTL's default in Label Studio 1.23.2
    monkeypatch.setenv("AL_TASK_LOCK_TTL", "30")
    monkeypatch.setenv("AL_PRUNE_MARGIN", "5")
    assert Settings().prediction_hold_s == 35
