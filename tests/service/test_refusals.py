"""Refusals a user can read: logged at WARNING by every serving process, kept per project, on the dashboard.

Label Studio 1.23 shows a refused ``/setup`` only as "422 Client Error ...
check the ML backend server console logs" (it keeps ``str(HTTPError)``, never
the body), so the console log and the dashboard are where the reason must be.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import predict_body, setup_body
from tests.service.test_server import free_port, server_env  # noqa: F401 - fixture

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "label-configs"
AUDIO = (CONFIGS / "audio-classification.xml").read_text()
#: The worker's format (backend/cli.py LOG_FORMAT): time, level, logger, [pid], message.
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<logger>\S+) \[(?P<pid>\d+)\] (?P<msg>.*)$")


def test_refused_setup_is_logged_kept_and_shown(client, caplog):
    caplog.set_level(logging.DEBUG)
    r = client.post("/setup", json=setup_body(7, AUDIO))
    assert r.status_code == 422
    assert "<Choices name=\"emotion\">" in r.json()["detail"]
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert any("project 7: /setup refused" in m and "<Choices name=\"emotion\">" in m for m in warnings), warnings
    assert any(m.startswith("POST /setup -> 422") and "<Choices name=\"emotion\">" in m for m in warnings), warnings

    status = client.get("/status/7").json()
    assert status["refusal"]["route"] == "/setup"
    assert "<Choices name=\"emotion\">" in status["refusal"]["reason"]
    page = client.get("/dashboard").text
    assert 'id="refused"' in page and "project 7" in page and "&lt;Choices name=&quot;emotion&quot;&gt;" in page
    assert "&lt;Choices name=&quot;emotion" in client.get("/dashboard/7").text

    # Fixed in Label Studio and connected again: the refusal is gone.
    assert client.post("/setup", json=setup_body(7)).status_code == 200
    assert client.get("/status/7").json()["refusal"] is None
    assert 'id="refused"' not in client.get("/dashboard").text


def test_refused_predict_is_kept(client):
    assert client.post("/setup", json=setup_body(3)).status_code == 200
    r = client.post("/predict", json=predict_body([(1, "some text")], pid=3, label_config=AUDIO))
    assert r.status_code == 422
    refusal = client.get("/status/3").json()["refusal"]
    assert refusal["route"] == "/predict" and "<Audio name=\"audio\">" in refusal["reason"]


def test_invalid_options_are_a_refusal_too(client):
    body = setup_body(4)
    body["extra_params"] = {"head_sise": 10}
    assert client.post("/setup", json=body).status_code == 400
    assert "head_sise" in client.get("/status/4").json()["refusal"]["reason"]


def test_other_4xx_are_warnings_with_their_reason(client, caplog):
    caplog.set_level(logging.DEBUG)
    client.post("/webhook", json={"no": "action"})
    client.get("/no-such-route")
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert any(m.startswith("POST /webhook -> 400") and 'string "action"' in m for m in warnings), warnings
    assert any(m.startswith("GET /no-such-route -> 404") and "Not Found" in m for m in warnings), warnings


def test_every_serving_process_logs_refusals_in_the_workers_format(server_env, tmp_path):  # noqa: F811
    """``al-backend serve --workers 2``: each refused /setup is a WARNING line with the reason, whichever process."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2"], env=server_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not start: " + log_path.read_text()[-2000:])
            time.sleep(0.2)
        n = 24

        def refuse(i: int) -> int:
            with httpx.Client(timeout=30) as c:
                return c.post(url + "/setup", json=setup_body(100 + i, AUDIO)).status_code

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(refuse, range(n))) == [422] * n
        with httpx.Client(timeout=30) as c:
            assert "project 105" in c.get(url + "/dashboard").text
            assert "<Choices name=\"emotion\">" in c.get(url + "/status/105").json()["refusal"]["reason"]
    finally:
        proc.terminate()
        proc.wait(15)
    lines = log_path.read_text().splitlines()
    parsed = [m for m in map(LINE.match, lines) if m]
    refused = [m for m in parsed if m["level"] == "WARNING" and "/setup refused" in m["msg"]]
    # One WARNING per refused request, with the tag that made it fail: none lost in either process.
    assert len(refused) == n, "\n".join(lines[-40:])
    assert all('<Choices name="emotion">' in m["msg"] for m in refused)
    answers = [m for m in parsed if m["level"] == "WARNING" and m["msg"].startswith("POST /setup -> 422")]
    assert len(answers) == n
    # uvicorn's own lines share the format (one format for the whole console).
    assert any(m["logger"].startswith("uvicorn") for m in parsed), "\n".join(lines[:20])
    serving = {m["pid"] for m in parsed if "Application startup complete" in m["msg"]}
    assert len(serving) == 2, lines[:20]
    assert {m["pid"] for m in refused} <= serving
