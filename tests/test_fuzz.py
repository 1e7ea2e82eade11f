"""Fuzz every route from the OpenAPI schema: no input makes the service answer 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings as hsettings

from backend.app import create_app
from backend.config import Settings
from backend.store import connect
from tests.conftest import TEST_REDIS_URL

FUZZ_PREFIX = "fuzz"
app = create_app(
    Settings(REDIS_URL=TEST_REDIS_URL, AL_KEY_PREFIX=FUZZ_PREFIX, AL_QUEUE="fuzz-queue"), connect(TEST_REDIS_URL)
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(autouse=True, scope="module")
def clean_redis():
    r = connect(TEST_REDIS_URL)
    r.flushdb()
    yield
    r.flushdb()


@schema.parametrize()
@hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_crashes_the_service(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
