"""Label Studio 1.23's own templates against the real Label Studio, backend and worker.

Content Moderation (``<Choices>`` + a ``<TextArea>`` comment) connects, trains
on annotations whose results hold the ignored comment too, and gets an
ordered queue; so does a sentiment config with a ``<Rating>``, whose stars
are predicted beside the sentiment (a number to predict).  Audio Classification
is refused, and the reason is in the backend's log at WARNING
and on its dashboard (Label Studio itself shows only "422 Client Error").
Image Classification is predicted: ``tests/e2e/test_images.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from backend.simulation.datasets import load_dataset
from harness.label_studio import LabelStudioError
from harness.stack import synced, wait_for

pytestmark = pytest.mark.e2e

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "label-configs"
N_TASKS, N_LABELS = 80, 8

def _comment(fresh: bool) -> list[dict]:
    return [{"from_name": "comments", "to_name": "text", "type": "textarea", "value": {"text": ["checked"]}}]


def _stars(fresh: bool) -> list[dict]:
    return [{"from_name": "rating", "to_name": "text", "type": "rating", "value": {"rating": 5 if fresh else 2}}]


#: template -> (choices control, answer for a fresh review, for a rotten one, its other result items,
#: the controls predicted, the tags ignored)
TEMPLATES = {
    "content-moderation": ("content_moderation", ["Obscene"], ["Insult", "Hate"], _comment,
                           {"content_moderation"}, ["TextArea"]),
    "sentiment-rating": ("sentiment", ["Positive"], ["Negative"], _stars, {"sentiment", "rating"}, []),
}


def _project(ls, template: str, seed: int) -> tuple[int, dict[int, str]]:
    ds = load_dataset("rotten-tomatoes")
    idx = np.random.default_rng(seed).permutation(len(ds.texts))[:N_TASKS]
    pid = ls.create_project(f"template {template}", (CONFIGS / f"{template}.xml").read_text())["id"]
    ids = ls.import_tasks(pid, [{"text": ds.texts[i]} for i in idx])
    return pid, {tid: ds.labels[i] for tid, i in zip(ids, idx)}


def _scores(ls, pid: int, version: str) -> tuple[dict[int, float], dict[int, list], set[int]]:
    """Label Studio's predictions of ``version``: score and result per task, and the labeled tasks."""
    with ls.client() as c:
        body = c.get("/api/tasks/", params={"project": pid, "page_size": 1000, "fields": "all"}).json()
    scores, results, labeled = {}, {}, set()
    for task in body["tasks"]:
        if task.get("annotations"):
            labeled.add(task["id"])
        for p in task.get("predictions") or []:
            if p.get("model_version") == version:
                scores[task["id"]], results[task["id"]] = p["score"], p["result"]
    return scores, results, labeled


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_template_with_ignored_controls_connects_trains_and_orders_the_queue(ls, stack, template):
    control, fresh, rotten, extra, predicted, ignored = TEMPLATES[template]
    pid, truth = _project(ls, template, seed=len(template))
    ls.connect_ml_backend(pid, stack.url, title="active learning")
    wait_for(lambda: synced(ls, stack, pid, 0), 120, what="the cold-start version in Label Studio")
    status = stack.status(pid)
    assert [i["tag"] for i in status["ignored_controls"]] == ignored
    assert status["refusal"] is None
    for _ in range(N_LABELS):
        task = ls.next_task(pid)
        is_fresh = truth[task["id"]] == "fresh"
        answer = fresh if is_fresh else rotten
        result = [{"from_name": control, "to_name": "text", "type": "choices", "value": {"choices": answer}},
                  *extra(is_fresh)]
        ls.annotate(task["id"], result)
    status = wait_for(lambda: synced(ls, stack, pid, N_LABELS), 180,
                      what=f"a version trained on {N_LABELS} labels pushed to Label Studio")
    assert status["current"]["kind"] == "model"
    assert predicted <= set(status["current"]["controls"])
    version = status["current_version"]
    scores, results, labeled = _scores(ls, pid, version)
    assert len(scores) >= 20, "the head of the queue was pushed"
    # Pre-annotations of the predicted controls only, each item with the model's confidence.
    items = [item for r in results.values() for item in r]
    assert items and {item["from_name"] for item in items} == predicted
    assert all(0 <= item["score"] <= 1 for item in items)
    stars = [item["value"]["rating"] for item in items if item["type"] == "rating"]
    assert all(isinstance(s, int) and 1 <= s <= 5 for s in stars), stars
    # The queue is ordered: /next serves the backend's lowest score among unlabeled tasks.
    pending = {t: s for t, s in scores.items() if t not in labeled}
    task = ls.next_task(pid)
    assert ls.project(pid)["model_version"] == version and ls.project(pid)["sampling"] == "Uncertainty sampling"
    assert task["id"] == min(pending, key=pending.get)
    # The Data Manager's columns (what the dashboard tells leads to show): "Prediction score" is the
    # queue position (the current version's score), "Prediction results" shows each item's own score.
    with ls.client() as c:
        rows = c.get("/api/tasks/", params={"project": pid, "page_size": 1000, "fields": "all"}).json()["tasks"]
    shown = {t["id"]: t for t in rows}
    some = sorted(pending, key=pending.get)[:5]
    print("Data Manager row:", {k: shown[some[0]].get(k) for k in ("predictions_score", "predictions_results")})
    for tid in some:
        assert shown[tid]["predictions_score"] == pytest.approx(pending[tid], abs=1e-6)
        assert "score:" in shown[tid]["predictions_results"]
    # The dashboard page carries Label Studio's project title and how to read the queue.
    page = httpx.get(f"{stack.url}/dashboard/{pid}", timeout=10).text
    assert f"template {template} (project {pid})" in page and 'id="how-to-read"' in page


# NER (``<Labels>`` over ``<Text>``) is predicted since issue 17 (``tests/service/test_ner_projects.py``).
@pytest.mark.parametrize("template, tag", [("audio-classification", '<Choices name="emotion">')])
def test_templates_with_nothing_to_predict_are_refused_with_a_readable_reason(ls, stack, template, tag):
    pid = ls.create_project(f"template {template}", (CONFIGS / f"{template}.xml").read_text())["id"]
    with pytest.raises(LabelStudioError) as err:
        ls.connect_ml_backend(pid, stack.url, title="active learning")
    # What Label Studio 1.23 tells its user: the status line, none of the backend's text.
    assert "422 Client Error" in str(err.value) and tag not in str(err.value)

    def logged():
        lines = [ln for ln in stack.log("backend").splitlines()
                 if re.match(r"^\S+ \S+ WARNING ", ln) and f"project {pid}: /setup refused" in ln]
        return lines

    lines = wait_for(logged, 10, what="the WARNING line")
    assert tag in lines[-1] and "nothing in this label config can be predicted" in lines[-1]
    page = httpx.get(stack.url + "/dashboard", timeout=10).text
    # Named with Label Studio's title, read through its API.
    assert f"template {template} (project {pid})" in page
    assert tag.replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;") in page
    assert stack.status(pid)["refusal"]["route"] == "/setup"
