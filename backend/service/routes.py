"""The HTTP routes Label Studio calls.  Thin: validate, call one function, answer."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from backend import metrics
from backend.labelstudio import schemas
from backend.labelstudio.client import credential_conflict
from backend.labelstudio.task_data import without_lone_surrogates
from backend.service import refusals
from backend.service.auth import require_basic, require_webhook_auth
from backend.service.dashboard import ignored_controls, read_summary
from backend.service.predictor import Predictor
from backend.service.webhooks import handle_event, parse_event
from backend.state import head
from backend.state.job_status import project_jobs
from backend.state.queueing import request_refresh, request_topup
from backend.state.store import ProjectStore, UnknownProjectError, parse_project_id, project_ids

MODEL_CLASS = "ActiveLearningTextClassifier"


class ErrorBody(BaseModel):
    """Every error answer: one message saying what was wrong and how to fix it."""

    detail: str


ERROR_MEANINGS = {
    400: "Invalid request: the message names the field or the problem",
    401: "Basic auth (or, on /webhook, the webhook token) is required and was missing or wrong",
    404: "The project is not set up on this backend",
    413: "The request body is over AL_MAX_BODY_BYTES",
    422: "The label config has nothing this backend can predict",
    503: "Redis is not answering",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can answer (so clients and fuzzers know them)."""
    return {code: {"model": ErrorBody, "description": ERROR_MEANINGS[code]} for code in codes}


router = APIRouter()
protected = APIRouter(dependencies=[Depends(require_basic)])


def get_predictor(request: Request) -> Predictor:
    return request.app.state.predictor


PredictorDep = Annotated[Predictor, Depends(get_predictor)]


@router.get("/health")
@router.get("/")
def health(predictor: PredictorDep) -> dict:
    """Liveness for Label Studio (1 s timeout) and whether Redis answers."""
    try:
        redis_ok = bool(predictor.r.ping())
    except Exception as exc:  # noqa: BLE001 - any failure means "not answering"
        redis_ok = False
        redis_error = type(exc).__name__
    body = {"status": "UP", "model_class": MODEL_CLASS, "redis": redis_ok}
    if not redis_ok:
        body["redis_error"] = redis_error
    return body


@protected.post("/setup", response_model=schemas.SetupResponse, responses=errors(400, 401, 413, 422, 503))
def setup(body: schemas.SetupRequest, predictor: PredictorDep) -> dict:
    pid = parse_project_id(body.project)
    epoch = str(body.project).partition(".")[2]
    version = predictor.setup(
        pid,
        body.schema_,
        hostname=body.hostname,
        access_token=body.access_token.get_secret_value() if body.access_token else None,
        extra_params=body.extra_params,
        project_epoch=int(epoch) if epoch.isdigit() else None,
    )
    return {"model_version": version}


@protected.post("/predict", response_model=schemas.PredictResponse, responses=errors(400, 401, 404, 413, 422, 503))
def predict(body: schemas.PredictRequest, predictor: PredictorDep) -> Response:
    """One prediction per task, in order (see ``Predictor.predict``)."""
    if body.project is None:
        raise ValueError('"project" is required, as "<id>.<created_epoch>"')
    pid = parse_project_id(body.project)
    tasks = [{"id": t.id, "data": without_lone_surrogates(t.data)} for t in body.tasks]
    results = predictor.predict(pid, tasks, body.label_config)
    return Response(orjson.dumps({"results": results}), media_type="application/json")


@router.post("/webhook", dependencies=[Depends(require_webhook_auth)], response_model=schemas.WebhookResponse,
             responses=errors(400, 401, 404, 413, 503))
def webhook(body: Annotated[dict[str, Any], Body()], predictor: PredictorDep) -> JSONResponse:
    """Record the event and enqueue (coalesced) worker jobs; answers in milliseconds."""
    action, event = parse_event(without_lone_surrogates(body))
    if event is None:
        return JSONResponse({"status": "ignored", "action": action, "detail": "event not used by this backend"})
    pid = event.project.id
    store = predictor.store(pid)
    s = predictor.settings

    def refresh(reason: str) -> bool:
        return request_refresh(predictor.r, s.key_prefix, s.queue_name, pid, reason)

    detail = handle_event(action, event, store, refresh,
                          lambda: request_topup(predictor.r, s.key_prefix, s.queue_name, pid))
    return JSONResponse({"status": "ok", "action": action, "detail": detail})


@protected.get("/versions", responses=errors(400, 401, 503))
def versions(predictor: PredictorDep, project: Annotated[str | None, Query()] = None) -> dict:
    """Model versions, newest last; of one project when ``project`` is given."""
    s = predictor.settings
    pids = [parse_project_id(project)] if project else project_ids(predictor.r, s.key_prefix)
    out: list[str] = []
    for pid in pids:
        out.extend(v.name for v in ProjectStore(predictor.r, s.key_prefix, pid).versions())
    return {"versions": out, "model_class": MODEL_CLASS}


@protected.get("/status/{project}", responses=errors(400, 401, 404, 503))
def status(project: str, predictor: PredictorDep) -> dict:
    """What the backend knows of a project: labels, current version and its metrics, last error, refusal."""
    store = predictor.store(parse_project_id(project))
    refusal = refusals.get(store)
    if not store.exists():
        if refusal:  # Label Studio could not connect it: say why
            return {"project": store.pid, "refusal": refusal}
        raise UnknownProjectError(f"project {project} is not set up on this backend")
    current = store.current_version()
    s = predictor.settings
    tasks, annotations = store.sizes()
    return {
        "project": store.pid,
        "tasks": tasks,
        "annotations": annotations,
        "current_version": current,
        "current": store.version_meta(current) if current else None,
        "status": store.status(),
        "head": head.info(store),  # how much of the queue Label Studio serves is left (backend/state/head.py)
        "jobs": project_jobs(store.r, [s.queue_name], store.pid),
        "progress": summary.model_dump(mode="json", exclude_unset=True) if (summary := read_summary(store)) else None,
        # Set when LABEL_STUDIO_URL/_API_KEY and /setup's hostname/token disagree (never holds a key).
        "credentials_warning": credential_conflict(s, store.config()),
        "refusal": refusal,
        "ignored_controls": ignored_controls(store),
        # model "remote": the other backend's health (failures in a row, last error, next retry), else null.
        "remote": predictor.remote_status(store),
    }


@protected.get("/metrics", responses=errors(401, 503))
def prometheus_metrics(predictor: PredictorDep) -> Response:
    s = predictor.settings
    return Response(metrics.render(predictor.r, s.queue_name, s.key_prefix), media_type="text/plain; version=0.0.4")
