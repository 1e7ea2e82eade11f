"""What a control reads from a task, by the kind of data it is bound to.

A featurizer takes one kind of input (``Featurizer.input``): texts, image
arrays, or records of numbers.  This module is the one place that maps an
object tag's kind (``tasktypes.base.OBJECT_KINDS``) to the reader that gets
that input out of ``task.data``; a new kind is one reader here.  Every
reader raises :class:`~backend.labelstudio.task_data.TaskDataError` with the
reason for a task it cannot read (a per-task skip, never a failed request).
"""

from __future__ import annotations

from typing import Any

from backend.labelstudio import task_images, task_numbers, task_timeseries
from backend.labelstudio.task_data import Fetch, TaskDataError, control_text, exact_text, object_value
from backend.labelstudio.tasktypes import Control, task_type_of

#: The default of ``AL_FETCH_MAX_BYTES``, for callers without settings (the simulator).
DEFAULT_MAX_BYTES = 10 * 2**20


def control_content(data: Any, control: Control, *, max_chars: int, fetch: Fetch | None = None,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The input of ``control``'s featurizer for one task: a text, an image array or a record of numbers.

    A time series is read as the record of its summary numbers (``task_timeseries.py``).
    """
    kind = control.kind
    if kind == "text":
        return control_text(data, control, max_chars=max_chars, fetch=fetch)
    obj = control.objects[0]
    value = object_value(data, obj)
    if kind == "image":
        return task_images.image_array(value, obj.value_key, fetch, max_bytes=max_bytes)
    if kind == "numbers" and obj.tag == "TimeSeries":
        return task_timeseries.summary(value, obj, fetch)
    if kind == "numbers":
        return task_numbers.record(value, obj.value_key)
    raise TaskDataError(f"{kind} data is not read")


def model_content(data: Any, control: Control, *, max_chars: int, fetch: Fetch | None = None,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """What ``control``'s model reads of one task when it reads contents, not features (``TaskType.model_input``).

    ``"text"``: the text exactly as Label Studio shows it (``exact_text``),
    which a span model's offsets index.  Any other model reads its
    featurizer's input (``control_content``).
    """
    if task_type_of(control).model_input == "text":
        return exact_text(data, control, max_chars=max_chars, fetch=fetch)
    return control_content(data, control, max_chars=max_chars, fetch=fetch, max_bytes=max_bytes)


def reads_features(control: Control) -> bool:
    """Whether ``control``'s model reads the featurizer's rows (else the task's contents: ``model_content``)."""
    return task_type_of(control).model_input == "features"
