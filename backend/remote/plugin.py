"""Run your model in process (``model: plugin``): a LabelStudioMLBase-style class as a source of predictions.

Why this module exists
----------------------
A user with model code written for ``label-studio-ml`` (a class with
``predict(tasks, context)`` and ``fit(event, data)``) can let the worker
import and run it, instead of serving it behind ``/predict``
(docs/remote.md, "Run your model in process").  :class:`PluginModel` has
the one method the remote pipeline calls, ``predict(tasks, *, project,
label_config)``, like :class:`~backend.remote.client.RemoteModel`, so the
cache, the ranking, the back-off and ``/status`` are the remote mode's.

* The class is imported only when a worker (or ``/predict``) first needs it,
  never when a module of this backend is imported, and only if the operator
  listed it in ``AL_PLUGINS`` (``project_options.resolve`` checks that).
* One instance per process, project and label config (:func:`load`); it
  keeps what ``fit`` taught it for as long as the process lives.
* Every exception the class raises (and an answer of the wrong shape) is one
  :class:`RemoteError` naming the exception's type and (truncated) message.
* The version of its predictions is the class's own (``model_version``
  attribute, or ``get("model_version")``), else the class path, followed by
  ``@`` and a digest of the labels it was last fit on: a fit on other
  labels makes every cached prediction stale, and two worker processes fit
  on the same labels name the same version.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import threading
from collections.abc import Sequence
from typing import Any

import orjson

from backend.remote.client import RemoteError

__all__ = ["PluginModel", "load", "forget", "FIT_EVENT"]

#: The event ``fit`` is called with: label-studio-ml's name for "train on the project's labels now".
FIT_EVENT = "START_TRAINING"
#: Longest exception text kept in an error.
MAX_MESSAGE = 300
#: The version suffix before any fit.
UNFITTED = "unfitted"

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str, str], "PluginModel"] = {}


def _failed(what: str, exc: BaseException) -> RemoteError:
    text = " ".join(str(exc).split())[:MAX_MESSAGE]
    return RemoteError(f"{what} raised {type(exc).__name__}: {text}" if text else f"{what} raised {type(exc).__name__}")


def _as_data(value: Any) -> Any:
    """A pydantic object (label-studio-ml's ``ModelResponse``, ``PredictionValue``) as plain data; else as is."""
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) and not isinstance(value, (dict, list)) else value


def _predictions(answer: Any) -> tuple[list[Any] | None, Any]:
    """What ``predict`` returned, as (its list of predictions, the version it names if any)."""
    predictions = getattr(answer, "predictions", None)
    if predictions is not None and not isinstance(answer, dict):  # ModelResponse
        return list(predictions), getattr(answer, "model_version", None)
    answer = _as_data(answer)
    if isinstance(answer, dict):
        listed = answer.get("results", answer.get("predictions"))
        return (list(listed) if isinstance(listed, list) else None), answer.get("model_version")
    return (list(answer) if isinstance(answer, (list, tuple)) else None), None


class PluginModel:
    """One instance of the class at ``path`` (``module:Class``) for one project; see the module."""

    def __init__(self, path: str, *, project: str = "", label_config: str = "") -> None:
        self.path = path
        self.fitted_on = UNFITTED
        self.fits = 0
        self._lock = threading.Lock()  # one call at a time: model code need not be thread-safe
        module_name, _, class_name = path.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except Exception as exc:  # noqa: BLE001  (ImportError, AttributeError, or the module's own failure)
            raise _failed(f"importing {path}", exc) from None
        if not callable(getattr(cls, "predict", None)):
            raise RemoteError(f"{path} has no predict(tasks, context) method")
        # LabelStudioMLBase takes project_id and label_config; a plain class may take neither.
        kwargs = {"project_id": project, "label_config": label_config}
        try:
            params = inspect.signature(cls).parameters
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                kwargs = {k: v for k, v in kwargs.items() if k in params}
        except (TypeError, ValueError):
            kwargs = {}
        try:
            self.instance = cls(**kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _failed(f"{path}()", exc) from None

    # -- the version --------------------------------------------------------------
    def _own_version(self) -> str | None:
        version = getattr(self.instance, "model_version", None)
        if not isinstance(version, str):
            get = getattr(self.instance, "get", None)
            try:
                version = get("model_version") if callable(get) else None
            except Exception:  # noqa: BLE001  (label-studio-ml's cache may be unconfigured here)
                version = None
        return version if isinstance(version, str) and version else None

    def version(self, named: Any = None) -> str:
        """The version stamped on this instance's predictions now (``named``: the one its last answer named)."""
        base = named if isinstance(named, str) and named else (self._own_version() or self.path)
        return f"{base[:200]}@{self.fitted_on}"

    # -- fit ------------------------------------------------------------------------
    def fit_to(self, tasks: list[dict], project_id: int | None = None) -> bool:
        """Call ``fit`` when the labeled tasks differ from the last fit's; returns whether it was called.

        ``tasks``: the labeled tasks in Label Studio's export shape, ``{"id",
        "data", "annotations": [{"id", "result", ...}]}``.  The class gets
        ``fit("START_TRAINING", {"action": "START_TRAINING", "project": {"id":
        project_id}, "tasks": tasks, "annotations": [... each with "task": id]})``.
        No labels, or no ``fit`` method: nothing is called.
        """
        fit = getattr(self.instance, "fit", None)
        if not tasks or not callable(fit):
            return False
        digest = hashlib.sha1(orjson.dumps(
            sorted([t["id"], [[a.get("id"), a.get("result")] for a in t.get("annotations", [])]] for t in tasks),
            option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
        if digest == self.fitted_on:
            return False
        annotations = [{**a, "task": t["id"]} for t in tasks for a in t.get("annotations", [])]
        data = {"action": FIT_EVENT, "project": {"id": project_id}, "tasks": tasks, "annotations": annotations}
        with self._lock:
            try:
                fit(FIT_EVENT, data)
            except Exception as exc:  # noqa: BLE001
                raise _failed(f"{self.path}.fit", exc) from None
        self.fitted_on = digest
        self.fits += 1
        return True

    # -- predict ------------------------------------------------------------------
    def predict(self, tasks: Sequence[dict], *, project: str, label_config: str) -> list[dict]:
        """``predict(tasks, context=None)`` of the instance; one ``{"result", "score"?, "model_version"}`` per task.

        A prediction that is not an object comes back as ``{"result": []}``;
        an exception, an answer that is not a list of predictions (or one of
        another length) or values JSON cannot hold are a :class:`RemoteError`.
        """
        with self._lock:
            try:
                answer = self.instance.predict(list(tasks), context=None)
            except Exception as exc:  # noqa: BLE001
                raise _failed(f"{self.path}.predict", exc) from None
            predictions, named = _predictions(answer)
            version = self.version(named)
        if predictions is None:
            raise RemoteError(f"{self.path}.predict returned {type(answer).__name__}, not a list of predictions")
        if len(predictions) != len(tasks):
            raise RemoteError(f"{self.path}.predict returned {len(predictions)} predictions for {len(tasks)} tasks")
        out = []
        for p in map(_as_data, predictions):
            p = p if isinstance(p, dict) else {}
            row: dict[str, Any] = {"result": p.get("result") if isinstance(p.get("result"), list) else []}
            if isinstance(p.get("score"), (int, float)) and not isinstance(p.get("score"), bool):
                row["score"] = p["score"]
            row["model_version"] = version
            out.append(row)
        try:  # what is cached and pushed is JSON: numpy numbers become numbers, anything else is refused
            return orjson.loads(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY))
        except TypeError as exc:
            raise _failed(f"serialising {self.path}.predict's answer", exc) from None


def load(path: str, *, project: str, label_config: str = "") -> PluginModel:
    """This process's instance of ``path`` for ``project`` and its label config (made on first use)."""
    key = (project, path, hashlib.sha1(label_config.encode("utf-8", "replace")).hexdigest())
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = PluginModel(path, project=project, label_config=label_config)
        return model


def forget() -> None:
    """Drop every instance this process holds (tests; a project set up again starts from a fresh instance)."""
    with _LOCK:
        _MODELS.clear()
