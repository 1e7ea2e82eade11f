"""Named entities in the real Label Studio 1.23.2, its UI, the real backend and worker.

CoNLL-2003 sentences (Reuters news, human-annotated PER/ORG/LOC/MISC) are
imported into a project with Label Studio's *Named Entity Recognition*
config.  A second annotator labels 100 of them through the API, so the
backend's tagger is trained before the browser opens; then an annotator
connects the backend in *Settings -> Model*, clicks *Label All Tasks*, and
for every task served corrects the backend's pre-annotated spans until they
are the true entities, as annotators do in Label Studio:

* a predicted span that is no entity is clicked and deleted (Backspace);
* a span with the right words but the wrong label is clicked and relabeled
  (a click on the right label);
* a missing entity is added: a click on its label, then a drag over its words.

Every Submit must be saved with exactly the true entities; every span Label
Studio shows on opening a task must be one the backend predicted; and the
worker must retrain on every label.  Screenshots go to
``test-output/browser/ner-*.png``.
"""

from __future__ import annotations

import time

import pytest

from backend.simulation.ner_datasets import load_ner_corpus
from harness.stack import REPO, synced, wait_for
from harness.ui import LabelStream, connected_page
from tests.e2e.conftest import report_browser_run

pytestmark = pytest.mark.e2e

LABELS = ("PER", "ORG", "LOC", "MISC")
CONFIG = ('<View><Labels name="label" toName="text">' + "".join(f'<Label value="{v}"/>' for v in LABELS)
          + '</Labels><Text name="text" value="$text"/></View>')
N_API, N_POOL, N_SUBMITS = 100, 160, 10
OUT = REPO / "test-output" / "browser"

#: The client rectangle of characters ``start``..``end`` of the task's text (for a drag over them).
_CHARS_BOX = """([start, end]) => {
  const root = document.querySelector('.lsf-htx-richtext');
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let pos = 0, sNode, sOff, eNode, eOff, n;
  while ((n = walker.nextNode())) {
    const len = n.textContent.length;
    if (sNode === undefined && start < pos + len) { sNode = n; sOff = start - pos; }
    if (eNode === undefined && end <= pos + len) { eNode = n; eOff = end - pos; }
    pos += len;
  }
  const r = document.createRange(); r.setStart(sNode, sOff); r.setEnd(eNode, eOff);
  const rects = r.getClientRects(); const a = rects[0], b = rects[rects.length - 1];
  return [a.left + 1, a.top + a.height / 2, b.right - 1, b.top + b.height / 2];
}"""


def _spans(result: list[dict]) -> set[tuple[int, int, str]]:
    return {(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
            for r in result if r.get("type") == "labels"}


def _region(page, start: int, end: int):
    """The highlight Label Studio draws for the span ``start``..``end``."""
    return page.locator(f'.htx-highlight[data-start="{start}"][data-end="{end}"]').first


def _label_button(page, label: str):
    return page.locator(".lsf-label", has_text=label).first


def correct(page, shown: set[tuple[int, int, str]], truth: set[tuple[int, int, str]]) -> dict:
    """Edit the shown spans into the true ones, as an annotator does; returns how many of each edit."""
    edits = {"deleted": 0, "relabeled": 0, "added": 0}
    true_words = {(s, e): lab for s, e, lab in truth}
    for start, end, label in sorted(shown - truth):
        _region(page, start, end).click()
        if (start, end) in true_words:  # the right words, the wrong label
            _label_button(page, true_words[(start, end)]).click()
            edits["relabeled"] += 1
        else:
            page.keyboard.press("Backspace")
            edits["deleted"] += 1
        page.keyboard.press("Escape")  # nothing selected: the next label click starts a new span
    kept = {(s, e) for s, e, _ in shown}
    for start, end, label in sorted(truth):
        if (start, end) in kept:
            continue
        _label_button(page, label).click()
        x1, y1, x2, y2 = page.evaluate(_CHARS_BOX, [start, end])
        page.mouse.move(x1, y1)
        page.mouse.down()
        page.mouse.move(x2, y2, steps=5)
        page.mouse.up()
        page.keyboard.press("Escape")
        edits["added"] += 1
    return edits


def test_an_annotator_corrects_the_backends_spans_in_the_real_ui(ls, stack):
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("ner-*.png"):
        old.unlink()
    corpus = load_ner_corpus(split="test")
    picked = [i for i in range(len(corpus)) if len(corpus.texts[i]) > 40][:N_POOL]
    pid = ls.create_project("Named entities (browser e2e)", CONFIG)["id"]
    ids = ls.import_tasks(pid, [{"text": corpus.texts[i]} for i in picked])
    truth = {tid: {(s, e, lab) for s, e, lab in corpus.spans[i]} for tid, i in zip(ids, picked)}
    for tid, i in list(zip(ids, picked))[:N_API]:  # a second annotator, through the API, before connecting
        text = corpus.texts[i]
        ls.annotate(tid, [{"from_name": "label", "to_name": "text", "type": "labels",
                           "value": {"start": s, "end": e, "text": text[s:e], "labels": [lab]}}
                          for s, e, lab in sorted(truth[tid])])
    counts = {"submits": 0, "with_prediction": 0, "predicted_spans": 0, "shown_spans_match_prediction": 0,
              "predicted_spans_correct": 0, "predicted_words_correct": 0, "deleted": 0, "relabeled": 0, "added": 0, "saved_true_entities": 0,
              "versions_seen": 0}
    versions = set()
    t0 = time.monotonic()
    with sync_playwright() as pw:
        browser, page, api_errors = connected_page(pw, ls, pid, stack.url, {"width": 1200, "height": 900})
        try:
            # Connecting reconciles with Label Studio: the worker trains on the API annotator's labels.
            wait_for(lambda: synced(ls, stack, pid, N_API), 180, what=f"a version trained on {N_API} labels")
            stream = LabelStream(page, ls.url, pid)
            stream.open()
            for i in range(N_SUBMITS):
                tid = stream.task["id"]
                assert tid in ids[N_API:], f"Label Studio served task {tid}, which is labeled already"
                stream.wait_shown(stream.task["data"]["text"], ready=".lsf-htx-richtext")
                page.wait_for_timeout(300)  # the pre-annotation is applied with the task
                predictions = stream.task.get("predictions") or []
                predicted = _spans([item for p in predictions for item in p["result"]])
                versions.update(p["model_version"] for p in predictions)
                shown = {(int(h.get_attribute("data-start")), int(h.get_attribute("data-end")))
                         for h in page.locator(".htx-highlight").all()}
                if predictions:
                    counts["with_prediction"] += 1
                    counts["predicted_spans"] += len(predicted)
                    counts["shown_spans_match_prediction"] += shown == {(s, e) for s, e, _ in predicted}
                    counts["predicted_spans_correct"] += len(predicted & truth[tid])
                    counts["predicted_words_correct"] += len({(s, e) for s, e, _ in predicted}
                                                             & {(s, e) for s, e, _ in truth[tid]})
                if i in (0, 1, N_SUBMITS - 1):
                    page.screenshot(path=str(OUT / f"ner-labeling-{i + 1:02d}-opened.png"))
                edits = correct(page, predicted, truth[tid])
                for k, v in edits.items():
                    counts[k] += v
                if i in (0, 1, N_SUBMITS - 1):
                    page.screenshot(path=str(OUT / f"ner-labeling-{i + 1:02d}-corrected.png"))
                wait_for(lambda: synced(ls, stack, pid, N_API + i), 120, what=f"a version on {N_API + i} labels")
                stream.submit()  # raises on a refused submit or a "not saved" message
                counts["submits"] += 1
                assert stream.saved["task"] == tid, stream.saved
                counts["saved_true_entities"] += _spans(stream.saved["result"]) == truth[tid]
        finally:
            browser.close()
    counts["versions_seen"] = len(versions)
    report_browser_run("ner", counts, api_errors, t0)
    assert counts["submits"] == N_SUBMITS and counts["saved_true_entities"] == N_SUBMITS, counts
    # Every task came pre-annotated by a trained tagger, and Label Studio drew exactly its spans.
    assert counts["with_prediction"] == N_SUBMITS, counts
    assert counts["shown_spans_match_prediction"] == N_SUBMITS, counts
    # On the tasks it is least sure of (the head of the queue), the tagger still finds the entities' words more
    # often than not, some with the right label too, and the annotator had something to correct.
    assert counts["predicted_words_correct"] > counts["predicted_spans"] / 2, counts
    assert counts["predicted_spans_correct"] >= 1, counts
    assert counts["deleted"] + counts["relabeled"] + counts["added"] > 0, counts
    # It retrained as labels arrived: the tasks came from several versions, the last on every label.
    assert counts["versions_seen"] >= 3, counts
    wait_for(lambda: synced(ls, stack, pid, N_API + N_SUBMITS), 120, what="the version on every label")
    status = stack.status(pid)
    assert status["current"]["kind"] == "model" and "label" in status["current"]["controls"]
