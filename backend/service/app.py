"""The FastAPI application: wiring, error mapping, request logging and metrics.

Each layer raises its own exceptions; they become HTTP answers here, in one
place, with messages Label Studio can show to the user.
"""

from __future__ import annotations

import gc
import logging
import time
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import redis
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import __version__
from backend.labelstudio.label_config import UnsupportedConfigError
from backend.learning import featurizers
from backend.metrics import LATENCY, REQUESTS
from backend.service.auth import require_basic
from backend.service.body_limit import BodyLimit
from backend.service.dashboard import router as dashboard
from backend.service.predictor import Predictor
from backend.service.routes import errors, protected, router
from backend.service.webhooks import MalformedEventError
from backend.settings import Settings, get_settings
from backend.state.store import UnknownProjectError, connect

log = logging.getLogger("backend")


def redis_location(url: str) -> str:
    """host:port/db of a Redis URL, without any password in it."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or ''}"


def _error(request: Request, status: int, message: str) -> JSONResponse:
    """The answer, with its reason kept for the request log (``observe``)."""
    request.state.error_reason = message
    return JSONResponse({"detail": message}, status_code=status)


def _validation_message(errors: list) -> str:
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(parts) + more


def _log_request(request: Request, response, start: float) -> None:
    """One line per request: DEBUG when it worked, WARNING with the reason for a 4xx, ERROR for a 5xx.

    The path only: query strings may carry the webhook token.  Reasons are
    the answers' own ``detail`` texts, which never contain secrets.
    """
    status = response.status_code
    level = logging.DEBUG if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not log.isEnabledFor(level):
        return
    elapsed = (time.perf_counter() - start) * 1e3
    reason = getattr(request.state, "error_reason", None)
    if reason:
        log.log(level, "%s %s -> %d in %.1f ms: %s", request.method, request.url.path, status, elapsed,
                reason[:2000])
    else:
        log.log(level, "%s %s -> %d in %.1f ms", request.method, request.url.path, status, elapsed)


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Everything loaded so far lives as long as the process: move it out of
    # the garbage collector's sight, so full collections stay short and a
    # 1,000-task request does not pay for scanning the whole heap.
    # The default featurizer's tables, before the first request rather than during it
    # (another one loads on its first project's request: its weights are not paid for unused).
    featurizers.get().warm_up()
    gc.collect()
    gc.freeze()
    yield


def create_app(settings: Settings | None = None, r: redis.Redis | None = None) -> FastAPI:
    """Build the app; ``al-backend serve`` calls this once per worker process."""
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=lifespan,
        title="Label Studio active-learning backend",
        version=__version__,
        description="A Label Studio ML backend that pre-annotates, retrains and orders the queue.",
        # Served below behind the same basic auth as the API (the schema maps every route).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.predictor = Predictor(r or connect(settings.redis_url), settings)
    # Added before ``observe``, so it runs inside it and its 413s are logged and counted.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(router)
    app.include_router(protected)
    app.include_router(dashboard, responses=errors(400, 401, 404, 503))

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_basic)])
    def openapi_schema() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_basic)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - start
        route = request.scope.get("route")
        label = getattr(route, "path", "unmatched")
        REQUESTS.labels(label, str(response.status_code)).inc()
        LATENCY.labels(label).observe(elapsed)
        _log_request(request, response, start)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # 401, 404 of unknown routes, 405...: the default answer, with the reason logged.
        request.state.error_reason = str(exc.detail)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        return _error(request, 400, _validation_message(exc.errors()))

    @app.exception_handler(ValidationError)
    async def bad_model(request: Request, exc: ValidationError):
        return _error(request, 400, _validation_message(exc.errors()))

    @app.exception_handler(UnsupportedConfigError)
    async def unsupported(request: Request, exc: UnsupportedConfigError):
        return _error(request, 422, f"unsupported label config: {exc}")

    @app.exception_handler(MalformedEventError)
    async def malformed(request: Request, exc: MalformedEventError):
        return _error(request, 400, f"malformed webhook: {exc}")

    @app.exception_handler(UnknownProjectError)
    async def unknown(request: Request, exc: UnknownProjectError):
        return _error(request, 404, str(exc))

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError):
        return _error(request, 400, str(exc))

    @app.exception_handler(redis.RedisError)
    async def redis_down(request: Request, exc: redis.RedisError):
        log.error("Redis error: %s", type(exc).__name__)
        return _error(request, 503, f"Redis at {redis_location(settings.redis_url)} is not answering ({type(exc).__name__})")

    return app
