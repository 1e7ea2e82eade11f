"""Pydantic models of what Label Studio 1.23 sends and expects.

They mirror the captured bodies in ``shared/label-studio-payloads``.  Unknown
fields are allowed (Label Studio adds fields between releases); missing or
mistyped required ones become a 400 whose message names the field.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt, StrictStr, field_validator

from backend.labelstudio.tasktypes import RESULT_TYPES


class _LS(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _extra_params(v: Any) -> dict:
    """``extra_params`` arrives as an object, a JSON string or null."""
    if v is None or v == "":
        return {}
    if isinstance(v, str):
        try:
            v = orjson.loads(v)
        except orjson.JSONDecodeError:
            raise ValueError("extra_params must be a JSON object, e.g. {\"head_size\": 200}") from None
    if not isinstance(v, dict):
        raise ValueError(f"extra_params must be a JSON object, got {type(v).__name__}")
    return v


class SetupRequest(_LS):
    project: StrictStr | StrictInt = Field(description='"<id>.<created_epoch>"')
    schema_: str = Field(alias="schema", description="The project's label config (XML)")
    hostname: str | None = None
    access_token: SecretStr | None = None
    extra_params: dict = Field(default_factory=dict)
    model_version: str | None = None

    _params = field_validator("extra_params", mode="before")(_extra_params)


class SetupResponse(BaseModel):
    model_version: str


class Task(_LS):
    id: int | None = None
    data: dict[str, Any]


class PredictRequest(_LS):
    tasks: list[Task]
    project: StrictStr | StrictInt | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = None


class ResultItem(BaseModel):
    from_name: str
    to_name: str
    type: str
    value: dict[str, Any]
    score: float = Field(description="The model's probability for the proposed label(s)")


class Prediction(BaseModel):
    result: list[ResultItem]
    score: float = Field(description="Queue position as a fraction of the pool: 0 = annotate next")
    model_version: str


class PredictResponse(BaseModel):
    results: list[Prediction]


class ProjectRef(_LS):
    id: int
    label_config: str | None = None
    created_at: str | None = None  # the project's identity, with its id (``store.epoch_of``)


class AnnotationIn(_LS):
    id: int
    task: int | dict | None = None
    result: list[dict[str, Any]] = Field(default_factory=list)
    was_cancelled: bool = False
    completed_by: int | dict | None = None
    updated_at: str | None = None
    created_at: str | None = None


class IdRef(_LS):
    id: int


class AnnotationEvent(_LS):
    action: str
    project: ProjectRef
    annotation: AnnotationIn
    task: Task | None = None


class AnnotationsCreatedEvent(_LS):
    """Bulk creation (Data Manager: *Create Annotations From Predictions*): lists under singular keys."""

    action: str
    project: ProjectRef
    annotation: list[AnnotationIn]
    task: list[Task] = Field(default_factory=list)


class AnnotationsDeletedEvent(_LS):
    action: str
    project: ProjectRef
    annotations: list[IdRef]


class TasksCreatedEvent(_LS):
    action: str
    project: ProjectRef
    tasks: list[Task]


class TasksDeletedEvent(_LS):
    action: str
    project: ProjectRef
    tasks: list[IdRef]


class ProjectEvent(_LS):
    action: str
    project: ProjectRef


class WebhookResponse(BaseModel):
    status: str
    action: str
    detail: str = ""


def compact_annotation(a: AnnotationIn, task_id: int | None) -> dict[str, Any]:
    """What training needs of an annotation (no user details, no prediction copy)."""
    completed_by = a.completed_by.get("id") if isinstance(a.completed_by, dict) else a.completed_by
    result = [r for r in a.result if isinstance(r, dict) and r.get("type") in RESULT_TYPES]
    digest = hashlib.sha1(
        orjson.dumps([task_id, result, a.was_cancelled, completed_by], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()[:16]
    return {
        "id": a.id,
        "task": task_id,
        "result": result,
        "was_cancelled": a.was_cancelled,
        "completed_by": completed_by,
        "updated_at": a.updated_at or a.created_at,
        "content": digest,
    }
