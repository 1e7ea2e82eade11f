"""A ``<Rating>`` to predict in the real Label Studio 1.23.2, its UI, the real backend and worker.

Movie reviews (rotten-tomatoes) get one to five stars: five for a fresh
review, one for a rotten one.  An annotator connects the backend in
*Settings -> Model*, clicks *Label All Tasks*, and for every task clicks
the stars and submits.  Once a model exists, the stars Label Studio shows
on opening a task are the backend's predicted rating (the editor draws a
``number``/``rating`` prediction as filled stars), and every Submit must be
saved with the annotator's own rating.  Screenshots go to
``test-output/browser/rating-*.png``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from backend.simulation.datasets import load_dataset
from harness.stack import REPO, synced, wait_for
from harness.ui import connected_page
from tests.e2e.conftest import label_all_tasks, report_browser_run

pytestmark = pytest.mark.e2e

CONFIG = ('<View><Text name="text" value="$text"/>'
          '<Rating name="stars" toName="text" maxRating="5"/></View>')
N_TASKS, N_SUBMITS = 60, 10
OUT = REPO / "test-output" / "browser"
STARS = {"fresh": 5, "rotten": 1}


def shown_stars(page) -> int:
    """How many stars the editor shows filled (Label Studio draws ``<Rating>`` with antd's Rate)."""
    return page.locator("li.ant-rate-star-full").count()


def click_stars(page, n: int) -> None:
    page.locator("li.ant-rate-star").nth(n - 1).locator("div[role=radio]").click()
    if shown_stars(page) != n:
        raise AssertionError(f"clicking star {n} shows {shown_stars(page)} stars")


def test_an_annotator_rates_in_the_real_ui_with_the_backends_predicted_stars(ls, stack):
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    for old in [*OUT.glob("rating-*.png"), *OUT.glob("number-*.png")]:
        old.unlink()
    ds = load_dataset("rotten-tomatoes")
    idx = np.random.default_rng(7).permutation(len(ds.texts))[:N_TASKS]
    pid = ls.create_project("Review stars (browser e2e)", CONFIG)["id"]
    ids = ls.import_tasks(pid, [{"text": ds.texts[i]} for i in idx])
    truth = {tid: STARS[ds.labels[i]] for tid, i in zip(ids, idx)}
    counts = {"submits": 0, "with_prediction": 0, "stars_match_prediction": 0, "saved_own_rating": 0}
    t0 = time.monotonic()
    with sync_playwright() as pw:
        browser, page, api_errors = connected_page(pw, ls, pid, stack.url, {"width": 1200, "height": 900})
        try:
            stream = label_all_tasks(ls, stack, page, pid)
            for i in range(N_SUBMITS):
                served = stream.task
                tid = served["id"]
                stream.wait_shown(served["data"]["text"], ready="li.ant-rate-star")
                page.wait_for_timeout(300)  # the pre-annotation is applied with the task
                predicted = [item["value"]["rating"] for p in served.get("predictions") or []
                             for item in p["result"] if item.get("type") == "rating"]
                if predicted:
                    counts["with_prediction"] += 1
                    counts["stars_match_prediction"] += shown_stars(page) == predicted[0]
                if i == 0 or (predicted and counts["with_prediction"] <= 2) or i == N_SUBMITS - 1:
                    page.screenshot(path=str(OUT / f"rating-labeling-{i + 1:02d}.png"))
                click_stars(page, truth[tid])
                wait_for(lambda: synced(ls, stack, pid, i), 120, what=f"a version on {i} labels")
                stream.submit()  # raises on a refused submit or a "not saved" message
                counts["submits"] += 1
                saved = stream.saved
                assert saved["task"] == tid, saved
                rating = [r for r in saved["result"] if r["type"] == "rating"]
                counts["saved_own_rating"] += len(rating) == 1 and rating[0]["value"]["rating"] == truth[tid]
        finally:
            browser.close()
    report_browser_run("rating", counts, api_errors, t0)
    assert counts["submits"] == N_SUBMITS and counts["saved_own_rating"] == N_SUBMITS, counts
    # After two different ratings the backend trains, and Label Studio shows its stars on the next tasks.
    assert counts["with_prediction"] >= N_SUBMITS - 4, counts
    assert counts["stars_match_prediction"] == counts["with_prediction"], counts
    status = stack.status(pid)
    assert status["current"]["kind"] == "model" and "stars" in status["current"]["controls"]


NUMBER_CONFIG = ('<View><Table name="record" value="$record"/>'
                 '<Number name="progression" toName="record" min="0" max="400" step="1"/></View>')


def test_an_annotator_enters_numbers_in_the_real_ui_with_the_backends_predicted_value(ls, stack):
    """``<Number>`` about a ``<Table>`` record (scikit-learn's diabetes patients): the input is pre-filled."""
    from playwright.sync_api import sync_playwright

    from backend.simulation.datasets import load_regression

    records, target = load_regression("diabetes")
    idx = np.random.default_rng(5).permutation(len(records))[:N_TASKS]
    pid = ls.create_project("Disease progression (browser e2e)", NUMBER_CONFIG)["id"]
    ids = ls.import_tasks(pid, [{"record": {k: round(v, 4) for k, v in records[i].items()}} for i in idx])
    truth = {tid: int(target[i]) for tid, i in zip(ids, idx)}
    counts = {"submits": 0, "with_prediction": 0, "input_shows_prediction": 0, "saved_own_number": 0}
    t0 = time.monotonic()
    box = "input[name=progression]"
    with sync_playwright() as pw:
        browser, page, api_errors = connected_page(pw, ls, pid, stack.url, {"width": 1200, "height": 900})
        try:
            stream = label_all_tasks(ls, stack, page, pid)
            for i in range(N_SUBMITS):
                tid = stream.task["id"]
                page.locator(box).wait_for(timeout=30_000)
                page.wait_for_timeout(300)  # the pre-annotation is applied with the task
                predicted = [item["value"]["number"] for p in stream.task.get("predictions") or []
                             for item in p["result"] if item.get("type") == "number"]
                if predicted:
                    counts["with_prediction"] += 1
                    counts["input_shows_prediction"] += float(page.input_value(box) or "nan") == predicted[0]
                if i == 0 or (predicted and counts["with_prediction"] <= 2) or i == N_SUBMITS - 1:
                    page.screenshot(path=str(OUT / f"number-labeling-{i + 1:02d}.png"))
                page.fill(box, str(truth[tid]))
                page.locator(box).press("Tab")
                wait_for(lambda: synced(ls, stack, pid, i), 120, what=f"a version on {i} labels")
                stream.submit()
                counts["submits"] += 1
                number = [r for r in stream.saved["result"] if r["type"] == "number"]
                counts["saved_own_number"] += len(number) == 1 and number[0]["value"]["number"] == truth[tid]
        finally:
            browser.close()
    report_browser_run("number", counts, api_errors, t0)
    assert counts["submits"] == N_SUBMITS and counts["saved_own_number"] == N_SUBMITS, counts
    assert counts["with_prediction"] >= N_SUBMITS - 4, counts
    assert counts["input_shows_prediction"] == counts["with_prediction"], counts
    status = stack.status(pid)
    assert status["current"]["kind"] == "model" and "progression" in status["current"]["controls"]
