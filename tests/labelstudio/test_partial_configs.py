"""Partial configs: Label Studio's templates with controls the backend ignores keep the whole loop working.

Real Redis, real RQ worker (in process), the app through its HTTP routes.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import annotation_event, payload, predict_body, setup_body, tasks_created

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "label-configs"
TEXT_CLASSIFICATION = (CONFIGS / "text-classification.xml").read_text()
CONTENT_MODERATION = (CONFIGS / "content-moderation.xml").read_text()
SENTIMENT_RATING = (CONFIGS / "sentiment-rating.xml").read_text()

POOL = [
    (1, "you are an idiot and I hate you"),
    (2, "what a lovely day, thanks for sharing"),
    (3, "idiot, stupid idiot, I hate this"),
    (4, "thanks, lovely photo of the lake"),
    (5, "I will find you and hurt you"),
    (6, "lovely lake, thanks a lot"),
    (7, "hate hate idiot"),
    (8, "a calm lovely evening by the lake"),
]


def labeled(ann_id: int, task: int, choices: list[str], *, from_name: str, extra: list[dict]) -> dict:
    """An annotation webhook whose result also holds items of ignored controls (as the UI sends them)."""
    body = annotation_event(ann_id, task, dict(POOL)[task], choices, from_name=from_name)
    body["annotation"]["result"].extend(extra)
    return body


def comment(text: str) -> dict:
    return {"from_name": "comments", "to_name": "text", "type": "textarea", "value": {"text": [text]}}


def stars(n: int) -> dict:
    return {"from_name": "rating", "to_name": "text", "type": "rating", "value": {"rating": n}}


def project_updated(xml: str) -> dict:
    body = payload("webhook_project_updated")
    body["project"]["label_config"] = xml
    return body


def test_content_moderation_trains_and_predicts_its_choices(client, store, worker):
    assert client.post("/setup", json=setup_body(schema=CONTENT_MODERATION)).status_code == 200
    client.post("/webhook", json=tasks_created(POOL))
    answers = {1: ["Insult", "Hate"], 2: [], 3: ["Insult"], 4: [], 5: ["Threat"]}
    for i, (task, choices) in enumerate(answers.items(), 1):
        r = client.post("/webhook", json=labeled(i, task, choices, from_name="content_moderation",
                                                  extra=[comment(f"note {i}")]))
        assert r.status_code == 200
    worker()
    version = store.current_version()
    meta = store.version_meta(version)
    assert meta["kind"] == "model" and meta["labeled_tasks"] == 5
    assert set(meta["controls"]) == {"content_moderation"}
    preds = client.post("/predict", json=predict_body(POOL[5:], label_config=CONTENT_MODERATION)).json()["results"]
    assert all(p["model_version"] == version for p in preds)
    items = [item for p in preds for item in p["result"]]
    assert items and {item["from_name"] for item in items} == {"content_moderation"}
    assert all(item["type"] == "choices" and 0 <= item["score"] <= 1 for item in items)
    status = client.get("/status/1").json()
    assert status["ignored_controls"] == [
        {"name": "comments", "tag": "TextArea", "reason": "free text is not predicted"}]
    assert "free text is not predicted" in client.get("/dashboard/1").text


def test_a_comment_edit_alone_does_not_retrain(client, store, worker):
    client.post("/setup", json=setup_body(schema=CONTENT_MODERATION))
    client.post("/webhook", json=labeled(1, 1, ["Hate"], from_name="content_moderation", extra=[comment("a")]))
    body = labeled(1, 1, ["Hate"], from_name="content_moderation", extra=[comment("b")])
    body["annotation"]["updated_at"] = "2026-11-24T02:00:00.000000Z"
    assert client.post("/webhook", json=body).json()["detail"] == "annotation 1 unchanged"


def test_config_changes_that_add_and_drop_controls_keep_the_loop_going(client, store, worker):
    client.post("/setup", json=setup_body(schema=TEXT_CLASSIFICATION))
    client.post("/webhook", json=tasks_created(POOL))
    for i, (task, label) in enumerate([(1, "Negative"), (2, "Positive"), (3, "Negative"), (4, "Positive")], 1):
        client.post("/webhook", json=labeled(i, task, [label], from_name="sentiment", extra=[]))
    worker()
    v1 = store.current_version()
    assert set(store.version_meta(v1)["controls"]) == {"sentiment"}

    # A Rating is added in Label Studio: the config is taken, the stars are a number to predict, and
    # the next labels (with a rating) still train.
    r = client.post("/webhook", json=project_updated(SENTIMENT_RATING))
    assert r.json()["detail"] == "label config changed"
    client.post("/webhook", json=labeled(5, 5, ["Negative"], from_name="sentiment", extra=[stars(1)]))
    worker()
    v2 = store.current_version()
    assert v2 != v1 and store.version_meta(v2)["labeled_tasks"] == 5
    assert client.get("/status/1").json()["ignored_controls"] == []
    # One rating so far: not trained yet, and it says why.
    assert "not_trained" in store.version_meta(v2)["controls"]["rating"]

    # A second <Choices> and a TextArea are added: both choices are trained once labeled.
    both = SENTIMENT_RATING.replace(
        '<Header value="How strongly?"/>',
        '<Choices name="topic" toName="text"><Choice value="people"/><Choice value="nature"/></Choices>'
        '<TextArea name="comments" toName="text"/><Header value="How strongly?"/>')
    assert client.post("/webhook", json=project_updated(both)).json()["detail"] == "label config changed"
    topic = [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [t]}}
             for t in ("people", "nature", "people", "nature")]
    for i, (task, label) in enumerate([(6, "Positive"), (7, "Negative")], 6):
        client.post("/webhook", json=labeled(i, task, [label], from_name="sentiment",
                                             extra=[topic[i % 2], comment("x"), stars(3)]))
    client.post("/webhook", json=labeled(8, 8, ["Positive"], from_name="sentiment", extra=[topic[0]]))
    worker()
    v3 = store.current_version()
    assert v3 != v2 and set(store.version_meta(v3)["controls"]) == {"sentiment", "topic", "rating"}
    assert store.version_meta(v3)["controls"]["rating"]["targets"] == {
        "mean": round(7 / 3, 6), "std": 0.942809, "min": 1.0, "max": 3.0}  # stars 1, 3, 3
    preds = client.post("/predict", json=predict_body(POOL[:2], label_config=both)).json()["results"]
    assert {item["from_name"] for p in preds for item in p["result"]} == {"sentiment", "topic", "rating"}
    ratings = [item["value"]["rating"] for p in preds for item in p["result"] if item["type"] == "rating"]
    assert ratings and all(isinstance(r, int) and 1 <= r <= 5 for r in ratings)

    # The sentiment block is removed: the loop goes on with the control that remains.
    only_topic = both.replace(both[both.index('<Choices name="sentiment"'):both.index("</Choices>") + 10], "")
    assert client.post("/webhook", json=project_updated(only_topic)).json()["detail"] == "label config changed"
    worker()
    v4 = store.current_version()
    assert v4 != v3 and set(store.version_meta(v4)["controls"]) == {"topic", "rating"}
    preds = client.post("/predict", json=predict_body(POOL[:2], label_config=only_topic)).json()["results"]
    assert {item["from_name"] for p in preds for item in p["result"]} == {"topic", "rating"}
