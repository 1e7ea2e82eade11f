"""Issue 13, item 6, in the label config and the dashboard: each attack replayed, each must fail safely.

* a label config with 40,000 choices parsed in linear time (it took 78 s), and one over the size limit refused
  at once with a clear message (a 5 MB one never finished);
* a lone surrogate (``\\ud800``) in a choice or a task: a clear 4xx or a normal answer, never a 500;
* a ``javascript:`` hostname stored by ``/setup`` never becomes a link on the dashboard;
* a label such as ``$x^$`` is drawn as plain text (matplotlib's mathtext made the page fail).
"""

from __future__ import annotations

import json
import time

import pytest

from backend.labelstudio.label_config import MAX_CONFIG_BYTES, UnsupportedConfigError, parse_label_config
from tests.conftest import annotation_event, setup_body, tasks_created


def many_choices(n: int) -> str:
    options = "".join(f'<Choice value="label {i}"/>' for i in range(n))
    return f'<View><Text name="t" value="$t"/><Choices name="c" toName="t">{options}</Choices></View>'


def test_40000_choices_parse_in_linear_time():
    xml = many_choices(40_000)
    t0 = time.perf_counter()
    cfg = parse_label_config(xml)
    elapsed = time.perf_counter() - t0
    assert len(cfg.controls[0].labels) == 40_000
    assert elapsed < 10, f"{elapsed:.1f} s (the quadratic parser took 19 s on an idle machine, 78 s under load)"


def test_many_controls_parse_in_linear_time():
    blocks = "".join(f'<Choices name="c{i}" toName="t"><Choice value="a"/><Choice value="b"/></Choices>'
                     for i in range(20_000))
    t0 = time.perf_counter()
    cfg = parse_label_config(f'<View><Text name="t" value="$t"/>{blocks}</View>')
    assert len(cfg.controls) == 20_000 and time.perf_counter() - t0 < 10


def test_a_config_over_the_limit_is_refused_at_once(client):
    xml = many_choices(200_000)
    assert len(xml.encode()) > MAX_CONFIG_BYTES
    t0 = time.perf_counter()
    with pytest.raises(UnsupportedConfigError, match=r"the label config is 5\.\d MB; the limit is 2 MB"):
        parse_label_config(xml)
    assert time.perf_counter() - t0 < 2
    r = client.post("/setup", json=setup_body(schema=xml))
    assert r.status_code == 422 and "the limit is 2 MB" in r.json()["detail"]
    assert "the limit is 2 MB" in client.get("/status/1").json()["refusal"]["reason"]


SURROGATE_CONFIG = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
                    '<Choice value="pos\ud800"/><Choice value="neg"/></Choices></View>')


def post_raw(client, path: str, body: dict):
    """JSON with a lone surrogate, escaped as ``\\ud800`` (valid JSON that Python decodes to a lone surrogate)."""
    return client.post(path, content=json.dumps(body, ensure_ascii=True), headers={"content-type": "application/json"})


def test_a_lone_surrogate_in_a_choice_is_a_clear_refusal_never_a_500(client, store):
    r = post_raw(client, "/setup", setup_body(schema=SURROGATE_CONFIG))
    assert r.status_code == 422
    assert "not valid Unicode ('\\ud800' at character" in r.json()["detail"]
    assert client.get("/status/1").json()["refusal"]["route"] == "/setup"
    assert client.post("/setup", json=setup_body()).status_code == 200
    body = {"project": "1.1", "label_config": SURROGATE_CONFIG, "tasks": [{"id": 1, "data": {"text": "hi"}}]}
    assert post_raw(client, "/predict", body).status_code == 422
    assert "Unicode" in client.get("/dashboard").text  # the /predict refusal, kept for the dashboard
    # Webhook bodies are made valid Unicode at the edge (U+FFFD, backend/labelstudio/task_data.py): read, never a 500.
    r = post_raw(client, "/webhook", {"action": "PROJECT_UPDATED", "project": {"id": 1, "label_config": SURROGATE_CONFIG}})
    assert r.status_code == 200


def test_a_lone_surrogate_in_a_task_still_gets_a_prediction(client, store):
    client.post("/setup", json=setup_body())
    body = {"project": "1.1", "tasks": [{"id": 1, "data": {"text": "fine \ud800 text"}}, {"id": 2, "data": {"text": "ok"}}]}
    r = post_raw(client, "/predict", body)
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    assert all(item["model_version"] for item in r.json()["results"])


def project_with_a_disagreement(client, store, worker, hostname: str) -> None:
    """A trained, evaluated project whose review list has one item (task 5: annotators disagree)."""
    body = setup_body()
    body["hostname"] = hostname
    assert client.post("/setup", json=body).status_code == 200
    texts = {1: "great lovely film", 2: "awful boring film", 3: "great acting", 4: "boring plot", 5: "a film",
             6: "lovely", 7: "awful"}
    client.post("/webhook", json=tasks_created(list(texts.items())))
    answers = [(1, 1, "pos"), (2, 2, "neg"), (3, 3, "pos"), (4, 4, "neg"), (5, 5, "pos"), (6, 5, "neg")]
    for ann, task, label in answers:
        client.post("/webhook", json=annotation_event(ann, task, texts[task], label,
                                                      updated_at=f"2026-11-30T00:00:0{ann}Z"))
    worker()
    assert any(item.get("task") == 5 for item in client.get("/status/1").json()["progress"]["review"])


@pytest.mark.parametrize("hostname", ["javascript:alert(document.cookie)", "JaVaScRiPt:alert(1)",
                                      " javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
                                      "//evil.example", "http://"])
def test_a_stored_hostname_that_is_not_http_never_becomes_a_link(client, store, worker, hostname):
    project_with_a_disagreement(client, store, worker, hostname)
    page = client.get("/dashboard/1").text
    assert "javascript:" not in page.lower() and "data:text" not in page and "evil.example" not in page
    assert "/data?task=" not in page  # no Label Studio link at all without an http(s) URL


def test_an_http_hostname_is_linked_and_escaped(client, store, worker):
    project_with_a_disagreement(client, store, worker, 'http://ls.invalid:8080/"onmouseover="alert(1)')
    page = client.get("/dashboard/1").text
    assert 'href="http://ls.invalid:8080/&quot;onmouseover=&quot;alert(1)/projects/1/data?task=5"' in page
    assert '"onmouseover="' not in page


def test_labels_are_plain_text_in_plots(client, store, worker):
    schema = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
              '<Choice value="$x^$"/><Choice value="a_b $\\alpha$"/></Choices></View>')
    client.post("/setup", json=setup_body(schema=schema))
    client.post("/webhook", json=tasks_created([(1, "one"), (2, "two"), (3, "three")]))
    client.post("/webhook", json=annotation_event(1, 1, "one", "$x^$"))
    client.post("/webhook", json=annotation_event(2, 2, "two", "a_b $\\alpha$"))
    worker()
    r = client.get("/dashboard/1")
    assert r.status_code == 200
    # Drawn as the literal label, in the SVG's text (svg.fonttype none), escaped for HTML.
    assert "$x^$" in r.text and "a_b $\\alpha$" in r.text
