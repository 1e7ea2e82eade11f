"""A named-entity project's progress and dashboard: entity F1 is the headline (real Redis, RQ burst workers).

CoNLL-2003 sentences annotated round by round from the head of the
backend's queue, as in ``test_ner_projects.py``; a quarter of the queue is
random control tasks, so the held-out entity F1 takes over the headline.
The page is rendered by headless Chromium and kept as
``test-output/dashboard-ner.png``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from backend.state.progress import ProgressStore
from tests.conftest import annotation_event, label_queue_head, setup_body, tasks_created
from tests.service.test_dashboard import chromium, live_server  # noqa: F401 (a fixture)
from tests.service.test_ner_projects import CONFIG, corpus, regions  # noqa: F401 (a fixture)

pytest.importorskip("pycrfsuite")

ROUNDS, PER_ROUND = 5, 24
OUT = Path(__file__).resolve().parents[2] / "test-output" / "dashboard-ner.png"
MIXED = CONFIG.replace('<Text name="text"', '<Choices name="person" toName="text"><Choice value="yes"/>'
                       '<Choice value="no"/></Choices><Text name="text"')


def _annotate(client, store, worker, pool, config: str = CONFIG, rounds: int = ROUNDS) -> set[int]:
    body = setup_body(schema=config)
    body["extra_params"] = {"head_size": 60, "control_share": 0.25, "plateau_versions": 3}
    assert client.post("/setup", json=body).status_code == 200
    assert client.post("/webhook", json=tasks_created([(t, text) for t, (text, _) in enumerate(pool, start=1)])
                       ).status_code == 200
    worker()

    def event(ann, tid, stamp):
        text, spans = pool[tid - 1]
        person = [{"from_name": "person", "to_name": "text", "type": "choices",
                   "value": {"choices": ["yes" if any(s[-1] == "PER" for s in spans) else "no"]}}]
        return annotation_event(ann, tid, text, "", updated_at=stamp, from_name="label",
                                result=regions(text, spans) + (person if config == MIXED else []))

    return label_queue_head(client, store, worker, rounds, PER_ROUND, event)


def test_a_ner_projects_headline_is_entity_f1_with_its_curve_and_dashboard(client, store, worker, corpus,
                                                                            live_server, tmp_path):  # noqa: F811
    pool, _ = corpus
    _annotate(client, store, worker, pool)
    s = ProgressStore(store).summary()
    assert s is not None and s.measures == "entity_f1" and s.control == "label"
    assert s.accuracy is None and s.error is None and s.savings.random_labels is None

    # Held out: the labeled random control tasks, each tagged by a model trained without it.
    hold, cv, ent = s.holdout_entity, s.cv_entity, s.entity
    assert hold.n >= 20 and s.unbiased and ent == hold, (hold, s.accuracy_source)
    assert 0.2 < hold.f1 < 1 and hold.low < hold.f1 < hold.high and 0 < hold.precision and 0 < hold.recall
    assert cv.n == ROUNDS * PER_ROUND and cv.f1 == s.entities["label"].f1 and 0.2 < cv.f1 < 1

    # The learning curve: one point per trained version, F1 rising with the labels.
    meta = store.version_meta(store.current_version())
    assert len(s.curve) == ROUNDS and [p.labels for p in s.curve] == [PER_ROUND * (k + 1) for k in range(ROUNDS)]
    assert s.curve[-1].cv_entity_f1 == cv.f1 == meta["controls"]["label"]["cv_entity_f1"]
    assert s.curve[-1].holdout_entity_f1 == hold.f1 and s.curve[-1].holdout_entity_f1_low == hold.low
    assert s.curve[-1].cv_entity_f1 > s.curve[0].cv_entity_f1
    assert all(p.cv_accuracy is None and p.holdout_accuracy is None and p.cv_mae is None for p in s.curve)
    # The stopping rules read it: kappa of successive taggings, the plateau over the held-out F1.
    assert s.kappa is not None and "target_entity_f1_reached" in s.recommendation.signals
    assert s.rules["target_entity_f1"] == 0

    # The dashboard: F1, precision, recall, the curve and the entities per label; the index's "F1 x".
    page = client.get("/dashboard/1").text
    f1 = f"{100 * hold.f1:.0f}%"
    assert f"<small>held-out entity F1</small><b>{f1}</b>" in page
    assert f"<small>precision</small><b>{100 * hold.precision:.0f}%</b>" in page
    assert f"<small>recall</small><b>{100 * hold.recall:.0f}%</b>" in page
    assert "held-out accuracy" not in page and "accuracy (estimate)" not in page
    assert "entity F1</text>" in page and "(no entities)</text>" in page and "PER</text>" in page
    assert f"<td>F1 {f1}</td>" in client.get("/dashboard").text

    dom = chromium("--dump-dom", f"{live_server}/dashboard/1", profile=tmp_path / "profile")
    assert dom.count("<svg") == 4 and "held-out entity F1" in dom
    shot = tmp_path / "dashboard.png"
    chromium(f"--screenshot={shot}", "--window-size=1400,1900", f"{live_server}/dashboard/1",
             profile=tmp_path / "profile")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    OUT.parent.mkdir(exist_ok=True)
    shutil.copy(shot, OUT)


def test_target_entity_f1_stops(client, store, worker, corpus):
    pool, _ = corpus
    assert client.post("/setup", json={**setup_body(schema=CONFIG), "extra_params": {"target_entity_f1": 0.1}}
                       ).status_code == 200
    assert client.post("/webhook", json=tasks_created([(t, text) for t, (text, _) in enumerate(pool[:80], 1)])
                       ).status_code == 200
    for tid in range(1, 61):
        text, spans = pool[tid - 1]
        client.post("/webhook", json=annotation_event(tid, tid, text, "", from_name="label",
                                                      result=regions(text, spans)))
    worker()
    s = ProgressStore(store).summary()
    assert s.measures == "entity_f1" and s.accuracy_source == "cross-validation" and s.entity == s.cv_entity
    assert s.recommendation.action == "stop" and s.recommendation.signals["target_entity_f1_reached"]
    assert re.search(r"target entity F1 reached: 0\.\d{3} >= 0\.1", s.recommendation.reason)
    assert "entity F1 (estimate)" in client.get("/dashboard/1").text


def test_with_choices_beside_the_labels_choices_stay_the_headline(client, store, worker, corpus):
    pool, _ = corpus
    _annotate(client, store, worker, pool, MIXED, rounds=3)
    s = ProgressStore(store).summary()
    assert s.measures == "accuracy" and s.control == "person" and s.accuracy is not None and s.entity is None
    assert s.entities["label"].f1 > 0 and s.curve[-1].cv_entity_f1 is None  # the curve is the headline control's
    page = client.get("/dashboard/1").text
    assert f"<small>entity F1 (label)</small><b>{100 * s.entities['label'].f1:.0f}%</b>" in page
    assert f"<td>{100 * s.accuracy:.0f}%</td>" in client.get("/dashboard").text
