"""A time-series classification project in the real Label Studio 1.23.2, its UI, the real backend and worker.

Real series: the UCR archive's ItalyPowerDemand (a day of Italy's
electricity demand, 24 hourly values, and which half of the year it is),
imported as ``<TimeSeries valueType="json">`` tasks.  An annotator connects
the backend in *Settings -> Model*, clicks *Label All Tasks*, sees each
day's chart and, once a model exists, the backend's choice pre-selected;
every Submit must be saved.  Screenshots go to
``test-output/browser/timeseries-*.png``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from backend.simulation.datasets import load_series
from harness.stack import REPO, synced, wait_for
from harness.ui import connected_page
from tests.e2e.conftest import label_all_tasks, report_browser_run

pytestmark = pytest.mark.e2e

CLASSES = {"1": "class 1", "2": "class 2"}
CONFIG = ('<View><TimeSeries name="ts" value="$ts" valueType="json" timeColumn="hour">'
          '<Channel column="demand"/></TimeSeries><Choices name="season" toName="ts">'
          + "".join(f'<Choice value="{c}"/>' for c in CLASSES.values()) + "</Choices></View>")
N_TASKS, N_SUBMITS = 80, 12
OUT = REPO / "test-output" / "browser"


def test_an_annotator_labels_time_series_in_the_real_ui_with_the_backends_choice(ls, stack):
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("timeseries-*.png"):
        old.unlink()
    series, labels = load_series("italy-power-demand")
    idx = np.random.default_rng(3).permutation(len(series))[:N_TASKS]
    pid = ls.create_project("Power demand days (browser e2e)", CONFIG)["id"]
    ids = ls.import_tasks(pid, [{"ts": {"hour": list(range(24)), "demand": series[i]}} for i in idx])
    truth = {tid: CLASSES[labels[i]] for tid, i in zip(ids, idx)}
    counts = {"submits": 0, "charts_shown": 0, "with_prediction": 0, "preselected": 0, "prediction_right": 0}
    t0 = time.monotonic()
    with sync_playwright() as pw:
        browser, page, api_errors = connected_page(pw, ls, pid, stack.url, {"width": 1200, "height": 900})
        try:
            stream = label_all_tasks(ls, stack, page, pid)
            for i in range(N_SUBMITS):
                tid = stream.task["id"]
                page.locator("input[type=checkbox]").first.wait_for(state="attached", timeout=30_000)
                # Label Studio draws the series as an SVG line chart (d3): one path per channel and overview.
                page.locator("svg path").first.wait_for(state="attached", timeout=30_000)
                counts["charts_shown"] += page.locator("svg path").count() > 0
                page.wait_for_timeout(300)  # the pre-annotation is applied with the task
                predicted = stream.predicted()
                if predicted:
                    counts["with_prediction"] += 1
                    counts["preselected"] += all(stream.checked(c) for c in predicted)
                    counts["prediction_right"] += predicted == [truth[tid]]
                if i == 0 or (predicted and counts["with_prediction"] <= 2) or i == N_SUBMITS - 1:
                    page.screenshot(path=str(OUT / f"timeseries-labeling-{i + 1:02d}.png"))
                for other in CLASSES.values():  # a wrong pre-selection is unticked, as an annotator would
                    if other != truth[tid] and stream.checked(other):
                        page.locator("label", has_text=other).first.click()
                stream.choose(truth[tid])
                wait_for(lambda: synced(ls, stack, pid, i), 120, what=f"a version on {i} labels")
                stream.submit()  # raises on a refused submit or a "not saved" message
                counts["submits"] += 1
                saved = stream.saved
                assert saved["task"] == tid and saved["result"][0]["value"]["choices"] == [truth[tid]], saved
                assert (saved["result"][0]["type"], saved["result"][0]["to_name"]) == ("choices", "ts"), saved
        finally:
            browser.close()
    report_browser_run("timeseries", counts, api_errors, t0)
    assert counts["submits"] == N_SUBMITS and counts["charts_shown"] == N_SUBMITS, counts
    assert counts["with_prediction"] >= N_SUBMITS - 4 and counts["preselected"] == counts["with_prediction"], counts
    status = stack.status(pid)
    assert status["current"]["kind"] == "model" and status["current"]["feature_spec"]["featurizer"] == "numbers"
    assert status["current"]["unreadable_tasks"] == 0
