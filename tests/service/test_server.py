"""The real service: several processes, hot model swap, merged metrics, a real worker process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import PREFIX, QUEUE, TEST_REDIS_URL, annotation_event, predict_body, setup_body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server_env(redis_conn, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASIC_AUTH", "LABEL_STUDIO", "AL_"))}
    env.update(REDIS_URL=TEST_REDIS_URL, AL_KEY_PREFIX=PREFIX, AL_QUEUE=QUEUE,
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), AL_MODEL_POLL_INTERVAL="0.5")
    return env


@pytest.fixture
def server(server_env):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=server_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("server did not start: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_worker_process(env) -> None:
    subprocess.run([sys.executable, "-m", "backend.cli", "worker", "--burst"], env=env, check=True,
                   capture_output=True, timeout=120)


def test_new_version_is_served_by_every_process_within_a_second(server, server_env):
    with httpx.Client(base_url=server, timeout=10) as c:
        c.post("/setup", json=setup_body())
        c.post("/webhook", json=annotation_event(1, 1, "great lovely film", "pos"))
        c.post("/webhook", json=annotation_event(2, 2, "awful boring film", "neg"))
        run_worker_process(server_env)
        v1 = c.get("/versions").json()["versions"][-1]
        time.sleep(1.0)
        seen = {c.post("/predict", json=predict_body([(9, "lovely")])).json()["results"][0]["model_version"]
                for _ in range(40)}
        assert seen == {v1}
        c.post("/webhook", json=annotation_event(3, 3, "lovely great acting", "pos"))
        run_worker_process(server_env)
        v2 = c.get("/versions").json()["versions"][-1]
        assert v2 != v1
        time.sleep(1.0)
        seen = set()
        for _ in range(40):
            r = c.post("/predict", json=predict_body([(9, "lovely")]))
            seen.add(r.json()["results"][0]["model_version"])
        assert seen == {v2}


def test_metrics_merge_all_processes(server):
    with httpx.Client(base_url=server, timeout=10) as c:
        for _ in range(30):
            c.get("/health")
        text = c.get("/metrics").text
    line = next(l for l in text.splitlines() if l.startswith('al_requests_total{route="/health",status="200"}'))
    assert float(line.split()[-1]) >= 30
    assert 'al_queue_jobs{queue="t-queue",state="queued"}' in text


def test_redis_down_is_a_clear_503(server_env):
    env = dict(server_env, REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--workers", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                health = httpx.get(url + "/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health.status_code == 200 and health.json()["redis"] is False
        r = httpx.post(url + "/setup", json=setup_body(), timeout=10)
        assert r.status_code == 503
        assert "127.0.0.1:1/0 is not answering" in r.json()["detail"]
        assert "hunter2" not in r.text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert "hunter2" not in out
