"""Label Studio 1.23.2's own labeling UI in headless Chromium, on PostgreSQL (issue 11, items 1, 2, 6).

An annotator logs in, connects the backend in *Settings -> Model*, clicks
*Label All Tasks*, and labels 30 tasks, taking 3 to 12 s over each (some
longer than a retraining), while a second annotator labels through the API
at the same time; the worker retrains after every label, and keeps a single
older version (``AL_KEEP_VERSIONS=1``) with Label Studio's task lock shortened
so that pruning really runs during the test.  It fails on any refused submit
(the UI submits the id of the prediction it showed, so a pruned prediction
would be a 400) and any "not saved" message; it checks that every
pre-annotation is pre-selected and that the task served is the backend's
next one.  Screenshots and the counts go to ``test-output/browser/``.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

import httpx
import pytest

from harness.label_studio import LabelStudio
from harness.stack import REPO, Stack, make_project, synced, wait_for
from harness.ui import LabelStream, connect_model, launch, login

pytestmark = pytest.mark.e2e

N_TASKS, N_SUBMITS = 200, 30
LOCK_TTL = 40  # Label Studio's TASK_LOCK_TTL here, and the backend's AL_TASK_LOCK_TTL
OUT = REPO / "test-output" / "browser"


def think_seconds(i: int) -> float:
    """3-5 s per task; every fifth task 12 s, longer than a retraining on two annotators' labels."""
    return 12.0 if i % 5 == 4 else 3.0 + (i % 3)


@pytest.fixture(scope="module")
def ls_pg():
    with LabelStudio(db="postgresql", env={"TASK_LOCK_TTL": str(LOCK_TTL)}) as server:
        yield server


@pytest.fixture(scope="module")
def browser_stack(ls_pg, tmp_path_factory):
    s = Stack(ls_pg, tmp_path_factory.mktemp("browser"), extra_env={
        "AL_TRAIN_EVERY": "1", "AL_KEEP_VERSIONS": "1", "AL_TASK_LOCK_TTL": str(LOCK_TTL), "AL_PRUNE_MARGIN": "5",
    }).start()
    yield s
    s.stop()
    s.cleanup_redis()


class SecondAnnotator(threading.Thread):
    """Another user, signed up through the organisation's invite link, labeling through the API.

    Records which task it held when, so the served-order check can leave out
    the task Label Studio had locked to it.
    """

    def __init__(self, ls: LabelStudio, pid: int, truth: dict[int, str]) -> None:
        super().__init__(daemon=True)
        self.pid, self.truth, self.url = pid, truth, ls.url
        self.stop = threading.Event()
        self.held: list[list] = []  # [task, from, until]
        self.done = self.refused = 0
        self.errors: list[str] = []
        self.http = httpx.Client(base_url=ls.url, timeout=60)
        with ls.client() as admin:
            invite = admin.get("/api/invite").raise_for_status().json()["invite_url"]
        self.http.get(invite)
        r = self.http.post(invite, headers={"Referer": ls.url + invite}, data={
            "csrfmiddlewaretoken": self.http.cookies["csrftoken"], "email": "second@example.com",
            "password": "second-annotator-pass", "allow_newsletters": "false"})
        assert r.status_code == 302, f"sign-up refused: {r.status_code} {r.text[:300]}"
        self.http.headers["X-CSRFToken"] = self.http.cookies["csrftoken"]

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.time()
            r = self.http.get(f"/api/projects/{self.pid}/next/")
            if r.status_code == 404:
                return
            if r.status_code != 200:
                self.errors.append(f"/next {r.status_code} {r.text[:200]}")
                time.sleep(1)
                continue
            task = r.json()
            entry = [task["id"], t0, None]
            self.held.append(entry)
            time.sleep(1.5)
            result = [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                       "value": {"choices": [self.truth[task["id"]]]}}]
            r = self.http.post(f"/api/tasks/{task['id']}/annotations/", json={"result": result})
            entry[2] = time.time()
            if r.is_success:
                self.done += 1
            else:
                self.refused += 1
                self.errors.append(f"submit {r.status_code} {r.text[:200]}")

    def held_between(self, start: float, end: float) -> set[int]:
        return {t for t, a, b in self.held if a <= end and (b is None or b >= start)}


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def served_order_miss(ls: LabelStudio, pid: int, version: str, served: dict, saved: dict,
                      held: set[int]) -> dict | None:
    """Whether Label Studio served ``version``'s lowest score among the tasks it could serve.

    Those are the tasks with a prediction of ``version`` that had no annotation
    when ours was saved (the next task is fetched after that) and that the
    second annotator did not hold.  Returns ``None`` when there was no such task
    (nothing to check), ``{}`` when the served task is that one, else what was
    served and what was expected.
    """
    with ls.client() as c:
        tasks = c.get("/api/tasks/", params={"project": pid, "page_size": 1000, "fields": "all"}).json()["tasks"]
    ours = _when(saved["created_at"])
    scores = {}
    for task in tasks:
        done = any(not a.get("was_cancelled") and _when(a["created_at"]) <= ours for a in task.get("annotations") or [])
        for p in task.get("predictions") or []:
            if p.get("model_version") == version and not done and task["id"] not in held:
                scores[task["id"]] = p["score"]
    if not scores:
        return None
    best = min(scores, key=scores.get)
    if served["id"] == best:
        return {}
    return {"served": served["id"], "served_score": scores.get(served["id"]), "expected": best,
            "expected_score": scores[best], "version": version}


def test_two_annotators_in_the_real_ui_with_a_retraining_after_every_label(ls_pg, browser_stack):
    """No submit refused (``LabelStream.submit`` raises on one), pre-annotations pre-selected, the backend's order."""
    from playwright.sync_api import sync_playwright

    ls, stack = ls_pg, browser_stack
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    pid, data = make_project(ls, "Movie reviews (browser e2e)", N_TASKS, seed=21)
    truth = {tid: label for tid, (_, label) in data.items()}
    t_start = time.monotonic()
    counts = {"submits": 0, "checked": 0, "agreed": 0, "preselected": 0, "with_prediction": 0,
              "submits_against_a_replaced_version": 0, "parent_prediction_sent": 0}
    second = None
    seen_versions: set[str] = set()
    misses: list[dict] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            login(page, ls.url, ls.username, ls.password)
            connect_model(page, ls.url, pid, stack.url)
            page.screenshot(path=str(OUT / "settings-model-connected.png"))
            wait_for(lambda: synced(ls, stack, pid, 0), 120, what="the cold-start version in Label Studio")
            # Label All Tasks; a second annotator starts at the same time.
            second = SecondAnnotator(ls, pid, truth)
            stream = LabelStream(page, ls.url, pid)
            stream.open()
            second.start()
            for i in range(N_SUBMITS):
                served = stream.task
                tid = served["id"]
                seen_versions.update(p["model_version"] for p in served.get("predictions") or [])
                stream.wait_shown(data[tid][0])
                # The choice the backend predicted is the one checked.
                predicted = stream.predicted()
                if predicted:
                    counts["with_prediction"] += 1
                    page.wait_for_timeout(300)
                    counts["preselected"] += all(stream.checked(c) for c in predicted)
                if i in (0, 9, N_SUBMITS - 1) or (predicted and counts["with_prediction"] == 1):
                    page.screenshot(path=str(OUT / f"labeling-{i + 1:02d}.png"))
                time.sleep(think_seconds(i))
                stream.choose(truth[tid])
                counts["submits"] += 1
                version, t_before = ls.project(pid)["model_version"], time.time()
                sent = stream.submit()  # raises on a refused submit or a "not saved" toast
                current, t_after = ls.project(pid)["model_version"], time.time()
                if sent.get("parent_prediction"):
                    counts["parent_prediction_sent"] += 1
                    shown = [p for p in served.get("predictions") or [] if p["id"] == sent["parent_prediction"]]
                    if shown and shown[0]["model_version"] != current:
                        counts["submits_against_a_replaced_version"] += 1
                # The task served next is the backend's next one, when one version stood from before the
                # Submit to after the next task arrived (versions only move forward).
                if current == version:
                    miss = served_order_miss(ls, pid, version, stream.task, stream.saved,
                                             second.held_between(t_before, t_after))
                    if miss is not None:
                        counts["checked"] += 1
                        counts["agreed"] += not miss
                        if miss:  # kept with the counts, to read what Label Studio did instead
                            misses.append(miss)
            page.screenshot(path=str(OUT / "labeling-after.png"))
        finally:
            if second is not None:
                second.stop.set()
                second.join(30)
            browser.close()
    counts.update(runtime_s=round(time.monotonic() - t_start), second_annotator_done=second.done,
                  second_annotator_refused=second.refused)
    # The last labels may still be training: wait until Label Studio points at the backend's newest version.
    status = wait_for(lambda: (s := stack.status(pid)) and ls.project(pid)["model_version"] == s["current_version"]
                      and s, 120, what="the last version in Label Studio")
    with ls.client() as c:
        in_ls = c.get(f"/api/projects/{pid}/model-versions/").json()
    counts.update(versions_published=len(httpx.get(f"{stack.url}/versions", params={"project": pid}).json()["versions"]),
                  versions_in_label_studio=len(in_ls), versions_shown=len(seen_versions),
                  versions_shown_then_pruned=len(seen_versions - set(in_ls)))
    (OUT / "counts.json").write_text(json.dumps({**counts, "order_misses": misses}, indent=1))
    print("browser e2e:", json.dumps(counts))
    assert second.refused == 0, (counts, second.errors[:5])
    assert not second.errors, second.errors[:5]
    assert counts["submits"] == N_SUBMITS and second.done >= 10, counts
    # Label Studio's UI sends the prediction it showed; some of those were no longer current at submit.
    assert counts["parent_prediction_sent"] >= N_SUBMITS // 2, counts
    assert counts["submits_against_a_replaced_version"] >= 1, counts
    # Every pre-annotation shown was pre-selected.
    assert counts["with_prediction"] >= N_SUBMITS // 2 and counts["preselected"] == counts["with_prediction"], counts
    # The served order is the backend's.  A check needs one version from before a Submit to after the
    # next task arrived; misses (Label Studio's /next skips rows a concurrent import locks) in counts.json.
    assert counts["checked"] >= N_SUBMITS // 3 and counts["agreed"] >= 0.7 * counts["checked"], counts
    # Pruning ran during the test (versions the annotator was shown are gone), and no submit failed.
    assert counts["versions_shown_then_pruned"] >= 1, (counts, in_ls)
    assert status["current_version"] in in_ls
