"""Optional HTTP basic auth, as Label Studio's ML backend settings support it.

Label Studio sends the configured user and password with ``/health``,
``/setup``, ``/predict`` and ``/versions``, but its auto-created webhook has
no auth header.  So ``/webhook`` also accepts a shared token, either as
``?token=...`` in the webhook URL or as an ``Authorization: Basic ...`` header
added to the webhook in Label Studio (Settings → Webhooks → Headers).
Comparisons are constant-time; credentials are never logged.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from fastapi import HTTPException, Request, status

from backend.settings import Settings

CHALLENGE = {"WWW-Authenticate": 'Basic realm="label-studio-active-learning"'}


def _basic_ok(request: Request, settings: Settings) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    ok_user = secrets.compare_digest(user.encode(), settings.basic_auth_user.encode())
    ok_pass = secrets.compare_digest(password.encode(), settings.basic_auth_pass.get_secret_value().encode())
    return ok_user and ok_pass


def _token_ok(request: Request, settings: Settings) -> bool:
    expected = settings.webhook_token.get_secret_value()
    given = request.query_params.get("token", "")
    return bool(expected) and secrets.compare_digest(given.encode(), expected.encode())


def require_basic(request: Request) -> None:
    """Dependency for every protected route."""
    settings: Settings = request.app.state.settings
    if settings.auth_enabled and not _basic_ok(request, settings):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "basic auth required", headers=CHALLENGE)


def require_webhook_auth(request: Request) -> None:
    """Dependency for ``/webhook``: basic auth or the webhook token."""
    settings: Settings = request.app.state.settings
    if not settings.auth_enabled and not settings.webhook_token.get_secret_value():
        return
    if _token_ok(request, settings) or (settings.auth_enabled and _basic_ok(request, settings)):
        return
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "webhook not authorised: add ?token=<AL_WEBHOOK_TOKEN> to the webhook URL in Label Studio, "
        "or an Authorization header with the backend's basic auth",
        headers=CHALLENGE,
    )
