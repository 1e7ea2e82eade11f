"""Task types: how each kind of Label Studio control is predicted (see ``base.py``).

To add one: write a module with a :class:`~backend.labelstudio.tasktypes.base.TaskType`
subclass (and its :class:`~backend.labelstudio.tasktypes.base.Control`), then add an
instance to ``TASK_TYPES`` below.
"""

from __future__ import annotations

from backend.labelstudio.tasktypes.base import Control, NotPredicted, ObjectTag, TaskType, result_items
from backend.labelstudio.tasktypes.choices import ChoicesControl, ChoicesTask
from backend.labelstudio.tasktypes.labels import LabelsControl, LabelsTask
from backend.labelstudio.tasktypes.number import NumberControl, NumberTask

#: Every task type, by name (the name is stored with each parsed control).
TASK_TYPES: dict[str, TaskType] = {}
#: Control tag -> the task type that reads it.
BY_TAG: dict[str, TaskType] = {}
#: Result item types some task type reads from annotations (the webhook keeps only these).
RESULT_TYPES: set[str] = set()


def register(task_type: TaskType) -> TaskType:
    """Make a task type known: its tags are parsed, its results kept, its models served."""
    clash = [tag for tag in task_type.tags if BY_TAG.get(tag, task_type) is not task_type]
    if task_type.name in TASK_TYPES or clash:
        raise ValueError(f"task type {task_type.name!r} or its tags {clash} are registered already")
    TASK_TYPES[task_type.name] = task_type
    BY_TAG.update({tag: task_type for tag in task_type.tags})
    RESULT_TYPES.update(task_type.result_types)
    return task_type


register(ChoicesTask())
register(NumberTask())
register(LabelsTask())


def task_type_of(control: Control) -> TaskType:
    """The task type a parsed control belongs to."""
    return TASK_TYPES[control.task_type]


def control_from_dict(d: dict) -> Control:
    """A control stored by ``LabelConfig.to_dict`` (stored before task types were named: ``<Choices>``)."""
    return TASK_TYPES[d.get("task_type", "choices")].control_from_dict(d)


__all__ = ["BY_TAG", "RESULT_TYPES", "TASK_TYPES", "ChoicesControl", "Control", "LabelsControl", "NotPredicted", "NumberControl",
           "ObjectTag", "TaskType", "control_from_dict", "register", "result_items", "task_type_of"]
