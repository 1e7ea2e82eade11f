"""Bodies shaped exactly like what a real Label Studio 1.23.2 sends, for tests, demos and screenshots.

Built from the captured payloads in ``tests/fixtures/label-studio-payloads`` (a copy of
``shared/label-studio-payloads``), so a change in Label Studio shows up in one place.
"""

from __future__ import annotations

import copy
from pathlib import Path

import orjson

PAYLOADS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "label-studio-payloads"


def payload(name: str) -> dict:
    """A fresh copy of a body a real Label Studio 1.23.2 sent."""
    return orjson.loads((PAYLOADS / f"{name}.json").read_bytes())


LABEL_CONFIG = payload("setup")["schema"]


def setup_body(pid: int = 1, schema: str | None = None) -> dict:
    """The captured /setup body, without a reachable Label Studio (the worker then neither syncs nor pushes)."""
    body = payload("setup")
    body["project"] = f"{pid}.1795483663"
    body["hostname"] = ""
    if schema is not None:
        body["schema"] = schema
    return body


def annotation_event(
    ann_id: int,
    task_id: int,
    text: str,
    label: str | list[str],
    *,
    pid: int = 1,
    action: str = "ANNOTATION_CREATED",
    updated_at: str = "2026-11-24T01:29:11.440555Z",
    from_name: str = "sentiment",
    cancelled: bool = False,
    key: str = "text",
    result: list[dict] | None = None,
) -> dict:
    """An annotation webhook shaped exactly like the captured one (``key``: the data field and object name).

    ``result``: the annotation's result items as given (a number, a rating...) instead of ``label``'s choices.
    """
    body = copy.deepcopy(_ANN)
    body["action"] = action
    a = body["annotation"]
    a["id"], a["task"], a["project"], a["updated_at"] = ann_id, task_id, pid, updated_at
    a["was_cancelled"] = cancelled
    choices = label if isinstance(label, list) else [label]
    a["result"] = [] if cancelled else result if result is not None else [
        {"from_name": from_name, "to_name": key, "type": "choices", "value": {"choices": choices}}
    ]
    body["task"]["id"], body["task"]["data"] = task_id, {key: text}
    body["project"]["id"] = pid
    return body


def predict_body(tasks: list[tuple[int, str]], pid: int = 1, label_config: str | None = None,
                 key: str = "text") -> dict:
    body = payload("predict")
    template = body["tasks"][0]
    body["tasks"] = [{**copy.deepcopy(template), "id": tid, "data": {key: text}} for tid, text in tasks]
    body["project"] = f"{pid}.1795483663"
    if label_config is not None:
        body["label_config"] = label_config
    return body


def tasks_created(tasks: list[tuple[int, str]], pid: int = 1, key: str = "text") -> dict:
    body = payload("webhook_tasks_created")
    template = body["tasks"][0]
    body["tasks"] = [{**copy.deepcopy(template), "id": tid, "data": {key: text}} for tid, text in tasks]
    body["project"]["id"] = pid
    return body


_ANN = payload("webhook_annotation_created")
