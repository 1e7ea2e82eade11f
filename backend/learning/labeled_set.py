"""Turn stored annotations into one answer per task and control.

Several annotators may label the same task; the control's task type says
what their consensus is (the majority for choices and for span sets, a tie
settled by the most recent annotation and counted, so it can be reviewed;
the median for numbers).  Cancelled (skipped) annotations carry no label.  Labels that the
current config no longer has are dropped, so a config edit never crashes
training.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Hashable

from backend.labelstudio.label_config import LabelConfig
from backend.labelstudio.tasktypes import Control, task_type_of

Answer = Hashable  # what the control's task type makes of a result (a label, a frozenset of labels...)


@dataclass
class LabeledSet:
    """``answers[control][task_id]`` is the annotators' consensus, as the control's task type reads it."""

    answers: dict[str, dict[int, Answer]] = field(default_factory=dict)
    labeled_tasks: set[int] = field(default_factory=set)
    ties: int = 0
    annotations_used: int = 0


def _answer(ann: dict, control: Control) -> Answer | None:
    """One annotation's answer for ``control`` (public for the progress records, which read one at a time).

    An annotation without items of the control answers it only when its
    task type says so (``TaskType.empty_is_answer``): a ``<Labels>``
    annotation without spans says "no entities", a real training target.
    """
    items = [i for i in ann.get("result") or [] if isinstance(i, dict) and i.get("from_name") == control.name]
    task_type = task_type_of(control)
    return task_type.answer(control, items) if items or task_type.empty_is_answer else None


def build_labeled_set(annotations: list[dict], config: LabelConfig) -> LabeledSet:
    """One answer per task and control from the annotations held (the task type's ``consensus``)."""
    out = LabeledSet(answers={c.name: {} for c in config.controls})
    by_task: dict[int, list[dict]] = defaultdict(list)
    for ann in annotations:
        if ann.get("was_cancelled") or not isinstance(ann.get("task"), int):
            continue
        by_task[ann["task"]].append(ann)
    for task_id, anns in by_task.items():
        out.labeled_tasks.add(task_id)
        out.annotations_used += len(anns)
        anns.sort(key=lambda a: a.get("updated_at") or "")
        for control in config.controls:
            given = [a for a in (_answer(x, control) for x in anns) if a is not None]
            if not given:
                continue
            answer, tied = task_type_of(control).consensus(given)
            out.answers[control.name][task_id] = answer
            out.ties += tied
    return out
