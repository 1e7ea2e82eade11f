"""Task texts given as URLs are read over HTTP, with Label Studio's token only on its own host."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from backend.labelstudio.client import LabelStudioClient, _is_jwt
from backend.service.app import create_app
from backend.settings import get_settings
from tests.conftest import annotation_event, predict_body, setup_body


class FileServer(BaseHTTPRequestHandler):
    """Serves /data/upload/<name>.txt to requests with the right token; records auth headers."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802 - http.server naming
        FileServer.seen.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "Token ls-token":
            self.send_response(401)
            self.end_headers()
            return
        if self.path.startswith("/data/upload/") and self.path.endswith(".txt"):
            body = self.path.rsplit("/", 1)[-1].removesuffix(".txt").replace("-", " ").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def file_server():
    FileServer.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FileServer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def app_with(redis_conn, monkeypatch, **env: str) -> TestClient:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    return TestClient(create_app(get_settings(), redis_conn))


@pytest.fixture
def client(settings, redis_conn, monkeypatch):
    """/setup's hostname here is a loopback file server: the operator allows it, as it must."""
    with app_with(redis_conn, monkeypatch, AL_FETCH_ALLOW_HOSTS="127.0.0.1") as c:
        yield c


def test_url_texts_are_read_with_the_setup_credentials(client, worker, file_server):
    body = setup_body()
    body["hostname"], body["access_token"] = file_server, "ls-token"
    client.post("/setup", json=body)
    client.post("/webhook", json=annotation_event(1, 1, "great lovely film", "pos"))
    client.post("/webhook", json=annotation_event(2, 2, "awful boring film", "neg"))
    worker()
    pred = predict_body([(10, "/data/upload/1/great-lovely-film.txt"), (11, "/data/upload/1/missing.pdf"),
                         (12, "http://127.0.0.1:1/great.txt")])
    results = client.post("/predict", json=pred).json()["results"]
    assert results[0]["result"][0]["value"] == {"choices": ["pos"]}
    assert results[1]["result"] == [] and results[2]["result"] == []
    assert ("/data/upload/1/great-lovely-film.txt", "Token ls-token") in FileServer.seen


def test_env_credentials_win_over_setup(settings, redis_conn, file_server, monkeypatch):
    with app_with(redis_conn, monkeypatch, LABEL_STUDIO_URL=file_server, LABEL_STUDIO_API_KEY="ls-token") as client:
        body = setup_body()
        body["hostname"], body["access_token"] = "http://127.0.0.1:1", "wrong"
        client.post("/setup", json=body)
        results = client.post("/predict", json=predict_body([(10, "/data/upload/1/a-b.txt")])).json()["results"]
    assert len(results) == 1 and FileServer.seen == [("/data/upload/1/a-b.txt", "Token ls-token")]


def test_url_texts_train_like_inline_texts(client, worker, store, file_server):
    """A project whose texts are all /data/upload URLs trains on them (issue 12 item 5: was 40 "unreadable")."""
    body = setup_body()
    body["hostname"], body["access_token"] = file_server, "ls-token"
    client.post("/setup", json=body)
    words = {"pos": ["great", "lovely", "superb", "wonderful"], "neg": ["awful", "boring", "dull", "terrible"]}
    n = 0
    for label, ws in words.items():
        for i, w in enumerate(ws):
            n += 1
            url = f"/data/upload/1/{w}-film-{label}-{i}.txt"
            client.post("/webhook", json=annotation_event(n, n, url, label))
    worker()
    meta = store.version_meta(store.current_version())
    sentiment = meta["controls"]["sentiment"]
    assert sentiment["labeled"] == n == 8 and sentiment["unreadable"] == 0
    assert sentiment["label_counts"] == {"neg": 4, "pos": 4} and "not_trained" not in sentiment
    assert sum(1 for path, _ in FileServer.seen if path.startswith("/data/upload/1/")) >= n
    # A text served only as a URL is predicted by the model trained on URL texts.
    results = client.post("/predict", json=predict_body([(100, "/data/upload/1/superb-lovely-film.txt")])).json()
    assert results["results"][0]["result"][0]["value"] == {"choices": ["pos"]}


def test_credentials_only_go_to_label_studio():
    client = LabelStudioClient("http://ls.example:8080", "s3cr3t-value")
    assert client.same_origin("/data/upload/x.txt")
    assert client.same_origin("http://ls.example:8080/api/")
    assert not client.same_origin("http://other.example/x.txt")
    assert not client.same_origin("https://ls.example:8080/x")
    assert "s3cr3t-value" not in repr(client)


def test_personal_access_tokens_are_recognised():
    assert _is_jwt("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.sig")
    assert not _is_jwt("4f2c0a0b9e1d4e6b8c7a")
