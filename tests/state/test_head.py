"""The head Label Studio serves: its size, what is left of it, and when to top it up; real Redis."""

from __future__ import annotations

from rq import Queue

from backend.state import head
from tests.conftest import QUEUE, annotation_event, setup_body


def test_plan_is_the_configured_size_without_a_measured_rate():
    plan = head.plan_head(200, 0.0, 30.0)
    assert plan.size == 200 and 1 <= plan.threshold < 200


def test_plan_grows_with_labeling_rate_and_refresh_time_and_is_capped():
    # 5 labels/s during a 60 s refresh: 300 tasks used, twice that pushed, top up below 450.
    plan = head.plan_head(200, 5.0, 60.0)
    assert plan.size == 600 and plan.threshold == 450
    assert head.plan_head(200, 100.0, 600.0).size == 2000  # at most 10x the configured size


def test_labels_leave_the_head_and_a_topup_is_due_below_the_threshold(store):
    store.set_ls_version("v1")
    head.start(store, "v1", list(range(1, 11)), head.HeadPlan(size=10, threshold=4))
    due = [head.note_labeled(store, [t]) for t in range(1, 8)]
    assert due == [False] * 6 + [True]  # 3 left < 4
    assert head.note_labeled(store, [99]) is True  # outside the head: counted, still due
    info = head.info(store)
    assert info["left"] == 3 and info["pushed"] == 10 and info["labeled_outside"] == 1
    assert info["served_outside_head"] is True and info["labeling_rate_per_min"] > 0
    head.extend(store, "v1", [11, 12, 13, 14])
    assert head.info(store)["left"] == 7 and head.info(store)["topped_up"] == 4


def test_webhook_requests_one_topup_when_the_head_runs_low(client, store, redis_conn):
    client.post("/setup", json=setup_body())
    store.set_ls_version("v1")
    head.start(store, "v1", [1, 2, 3], head.HeadPlan(size=3, threshold=2))
    client.post("/webhook", json=annotation_event(1, 1, "a", "pos"))
    assert Queue(QUEUE + "-topup", connection=redis_conn).count == 0  # 2 left
    client.post("/webhook", json=annotation_event(2, 2, "b", "neg"))
    client.post("/webhook", json=annotation_event(3, 3, "c", "neg"))
    assert Queue(QUEUE + "-topup", connection=redis_conn).count == 1  # coalesced
    status = client.get("/status/1").json()
    assert status["head"]["left"] == 0 and status["head"]["ran_dry_at"] > 0


def test_dashboard_line_shows_head_left_and_tasks_served_outside():
    from backend.service.dashboard import _head_line

    line = _head_line({"version": "v3", "pushed": 260, "left": 12, "topped_up": 60, "labeled_outside": 2,
                       "served_outside_head": True})
    assert "12 of 260 tasks left" in line and "60 topped up" in line and "outside it." in line
    assert _head_line(None) == ""


def test_a_version_pushed_before_heads_were_tracked_counts_nothing(store):
    store.set_ls_version("v0")
    assert head.note_labeled(store, [1, 2]) is False
    info = head.info(store)
    assert info.get("labeled_outside", 0) == 0 and not info["served_outside_head"]
