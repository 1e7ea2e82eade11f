"""Fuzz every route from the OpenAPI schema: no input makes the service answer 5xx, and every
status it answers is one the schema documents (with basic auth off, and on)."""

from __future__ import annotations

import base64

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from backend.service.app import create_app
from backend.settings import Settings
from backend.state.store import connect
from tests.conftest import TEST_REDIS_URL

FUZZ_PREFIX = "fuzz"
CHECKS = (not_a_server_error, status_code_conformance)
BASE = {"REDIS_URL": TEST_REDIS_URL, "AL_KEY_PREFIX": FUZZ_PREFIX, "AL_QUEUE": "fuzz-queue"}
AUTH = {"Authorization": "Basic " + base64.b64encode(b"fuzz:fuzz-pass").decode()}

app = create_app(Settings(**BASE), connect(TEST_REDIS_URL))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
secured_app = create_app(Settings(**BASE, BASIC_AUTH_USER="fuzz", BASIC_AUTH_PASS="fuzz-pass"),
                         connect(TEST_REDIS_URL))
# The schema is itself behind auth there: read it with the credentials, then fuzz without them.
secured_schema = schemathesis.openapi.from_asgi("/openapi.json", secured_app, headers=AUTH)


@pytest.fixture(autouse=True, scope="module")
def clean_redis():
    r = connect(TEST_REDIS_URL)
    r.flushdb()
    yield
    r.flushdb()


@schema.parametrize()
@hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_crashes_the_service(case):
    case.call_and_validate(checks=CHECKS)


@secured_schema.parametrize()
@hsettings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_answers_with_auth_on_are_documented(case):
    case.call_and_validate(checks=CHECKS)
