"""Bad input gets a clear 4xx or a per-task empty prediction; nothing else in the batch is lost."""

from __future__ import annotations

import logging

from tests.conftest import annotation_event, payload, predict_body, setup_body


def trained(client, worker) -> str:
    client.post("/setup", json=setup_body())
    for i in range(10):
        label = "pos" if i % 2 else "neg"
        client.post("/webhook", json=annotation_event(i + 1, 500 + i, f"{'great' if i % 2 else 'awful'} film {i}", label))
    worker()
    return client.get("/versions").json()["versions"][-1]


def test_malformed_json_is_400(client):
    r = client.post("/predict", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "invalid request" in r.json()["detail"]


def test_missing_tasks_is_400_naming_the_field(client):
    body = payload("predict")
    del body["tasks"]
    r = client.post("/predict", json=body)
    assert r.status_code == 400 and "tasks: Field required" in r.json()["detail"]


def test_task_data_not_an_object_is_400(client):
    body = payload("predict")
    body["tasks"][0]["data"] = "text"
    r = client.post("/predict", json=body)
    assert r.status_code == 400 and "tasks.0.data" in r.json()["detail"]


def test_unknown_project_without_config_is_404(client):
    body = payload("predict")
    del body["label_config"]
    body["project"] = "77.1"
    r = client.post("/predict", json=body)
    assert r.status_code == 404 and "project 77 is not set up" in r.json()["detail"]


def test_unknown_project_with_config_is_served(client):
    body = payload("predict")
    body["project"] = "78.1"
    r = client.post("/predict", json=body)
    assert r.status_code == 200 and len(r.json()["results"]) == 1


def test_bad_project_id_is_400(client):
    for project in ("abc", "-1.5", True):
        body = payload("predict")
        body["project"] = project
        r = client.post("/predict", json=body)
        assert r.status_code == 400, project


def test_bad_tasks_are_skipped_one_by_one(client, worker, caplog):
    version = trained(client, worker)
    body = predict_body([(1, "a great film"), (2, ""), (3, "x"), (4, "an awful film")])
    body["tasks"][2]["data"] = {"other_key": "no text here"}
    body["tasks"].append({**body["tasks"][0], "id": 5, "data": {"text": 12345}})
    body["tasks"].append({**body["tasks"][0], "id": 1})  # duplicated id
    big = "great " * 900_000  # ~5.4 MB
    body["tasks"].append({**body["tasks"][0], "id": 6, "data": {"text": big}})
    with caplog.at_level(logging.INFO, logger="backend.service.predictor"):
        r = client.post("/predict", json=body)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 7
    assert [bool(p["result"]) for p in results] == [True, False, False, True, False, True, True]
    assert all(p["model_version"] == version for p in results)
    for skipped in (results[1], results[2], results[4]):
        assert skipped["score"] == 1.0  # unreadable tasks go last
    assert results[0] == results[5]
    assert results[6]["result"][0]["value"]["choices"] == ["pos"]
    log = caplog.text
    assert "task 2: no prediction for sentiment: the text is empty" in log
    assert "task 3: no prediction for sentiment: task data has no key 'text' (keys: other_key)" in log
    assert "task 5: no prediction for sentiment: 'text' holds int, expected text" in log


def test_setup_with_unsupported_config_is_422_naming_it(client):
    for schema, needle in [
        ('<View><Text name="t" value="$t"/><Choices name="c" toName="missing"><Choice value="a"/>'
         '<Choice value="b"/></Choices></View>', 'toName="missing"'),
        ('<View><Image name="img" value="$img"/><RectangleLabels name="box" toName="img">'
         '<Label value="car"/></RectangleLabels></View>', '<RectangleLabels name="box">'),
    ]:
        r = client.post("/setup", json=setup_body(schema=schema))
        assert r.status_code == 422
        assert r.json()["detail"].startswith("unsupported label config:") and needle in r.json()["detail"]


def test_setup_without_schema_is_400(client):
    body = setup_body()
    del body["schema"]
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "schema: Field required" in r.json()["detail"]


def test_extra_params_must_be_an_object(client, store):
    body = setup_body()
    body["extra_params"] = '{"head_size": 50}'
    assert client.post("/setup", json=body).status_code == 200
    assert store.config()["extra_params"] == {"head_size": 50}
    body["extra_params"] = "[1, 2]"
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "extra_params must be a JSON object" in r.json()["detail"]


def test_oversized_body_is_413(client):
    r = client.post("/predict", content=b"{}", headers={"content-type": "application/json",
                                                         "content-length": str(200 * 2**20)})
    assert r.status_code == 413


def test_tokens_never_reach_the_logs(client, caplog):
    body = setup_body()
    body["access_token"] = "SECRET-TOKEN-123"
    with caplog.at_level(logging.DEBUG):
        client.post("/setup", json=body)
        client.post("/webhook?token=SECRET-WEBHOOK-456", json=payload("webhook_start_training"))
    # Everything the service itself logged (the test's own HTTP client logs its URLs).
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "SECRET-TOKEN-123" not in ours
    assert "SECRET-WEBHOOK-456" not in ours
    assert "/webhook -> 200" in ours


def test_unknown_or_invalid_extra_params_are_refused_at_setup(client):
    body = setup_body()
    body["extra_params"] = {"head_sise": 50}
    r = client.post("/setup", json=body)
    assert r.status_code == 400
    assert "head_sise: Extra inputs are not permitted" in r.json()["detail"]
    assert "known keys: head_size" in r.json()["detail"]
    body["extra_params"] = {"head_size": 0}
    r = client.post("/setup", json=body)
    assert r.status_code == 400 and "head_size: Input should be greater than or equal to 1" in r.json()["detail"]
    body["extra_params"] = {"head_size": 50, "set_sampling": False}
    assert client.post("/setup", json=body).status_code == 200
