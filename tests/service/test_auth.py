"""Optional basic auth, and authenticated webhooks without a Label Studio auth header."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.service.app import create_app
from backend.settings import get_settings
from tests.conftest import payload


@pytest.fixture
def secured(monkeypatch, settings, redis_conn):
    monkeypatch.setenv("BASIC_AUTH_USER", "ls")
    monkeypatch.setenv("BASIC_AUTH_PASS", "s3cret")
    monkeypatch.setenv("AL_WEBHOOK_TOKEN", "hook-token")
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), redis_conn)) as c:
        yield c


def test_protected_routes_need_basic_auth(secured):
    for method, path, body in [("post", "/setup", payload("setup")), ("post", "/predict", payload("predict")),
                               ("get", "/versions", None), ("get", "/metrics", None)]:
        r = getattr(secured, method)(path, **({"json": body} if body else {}))
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Basic")
        r = getattr(secured, method)(path, auth=("ls", "wrong"), **({"json": body} if body else {}))
        assert r.status_code == 401, path
        r = getattr(secured, method)(path, auth=("ls", "s3cret"), **({"json": body} if body else {}))
        assert r.status_code == 200, (path, r.text)


def test_health_stays_open_for_probes(secured):
    assert secured.get("/health").status_code == 200


def test_webhook_accepts_token_or_basic_auth(secured):
    body = payload("webhook_start_training")
    assert secured.post("/webhook", json=body).status_code == 401
    assert secured.post("/webhook?token=nope", json=body).status_code == 401
    assert secured.post("/webhook?token=hook-token", json=body).status_code == 200
    assert secured.post("/webhook", json=body, auth=("ls", "s3cret")).status_code == 200
    r = secured.post("/webhook", json=body, headers={"Authorization": "Basic !!notbase64"})
    assert r.status_code == 401 and "AL_WEBHOOK_TOKEN" in r.json()["detail"]


def test_webhook_token_alone_protects_webhooks(monkeypatch, settings, redis_conn):
    monkeypatch.setenv("AL_WEBHOOK_TOKEN", "only-hooks")
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), redis_conn)) as c:
        assert c.post("/webhook", json=payload("webhook_start_training")).status_code == 401
        assert c.post("/webhook?token=only-hooks", json=payload("webhook_start_training")).status_code == 200
        assert c.post("/predict", json=payload("predict")).status_code == 200
