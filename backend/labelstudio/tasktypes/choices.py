"""``<Choices>``: classification of a text, an image or a table, single or multiple choice.

The first task type: a linear model over the task's features
(:class:`backend.learning.model.ChoicesClassifier`), one per ``<Choices>``
block, whose probabilities become pre-selected choices.  What the features
are depends on the object it is bound to (hashed n-grams of a text, the
embedding of an image, the standardised numbers of a table); the model does
not care.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence
from xml.etree.ElementTree import Element

import numpy as np

from backend.labelstudio.tasktypes.base import Control, NotPredicted, ObjectTag, TaskType, bound_objects
from backend.learning.model import SINGLE_CHOICE_CLASS_WEIGHT, ChoicesClassifier
from backend.selection import scores

SUPPORTED_OBJECTS = ("Text", "HyperText", "Paragraphs", "Image", "Table", "TimeSeries")
CHOICE_MODES = {"single": False, "single-radio": False, "multiple": True}


@dataclass(frozen=True)
class ChoicesControl(Control):
    """One ``<Choices>`` block: its options and whether several may be chosen."""

    labels: tuple[str, ...] = ()
    multiple: bool = False
    task_type: str = "choices"


def _choice_labels(el: Element) -> tuple[str, ...]:
    """Options in document order, each once (a dict keeps order: linear in the options)."""
    labels: dict[str, None] = {}
    for child in el.iter("Choice"):
        label = child.get("alias") or child.get("value")
        if label:
            labels.setdefault(label, None)
    return tuple(labels)


class ChoicesTask(TaskType):
    name = "choices"
    tags = ("Choices",)
    result_type = "choices"
    supported = ("<Choices> over <Text>, <HyperText> or <Paragraphs> (text classification), <Image> (image "
                 "classification), <Table> (a record of numbers) or <TimeSeries> (a series, by its summary)")

    def parse(self, el: Element, objects: dict[str, Element]) -> ChoicesControl:
        if (el.get("value") or "").startswith("$"):
            raise NotPredicted("its options come from task data (dynamic choices), which is not supported")
        if (el.get("perRegion") or "").lower() == "true":
            raise NotPredicted("per-region choices are not predicted (only choices about the whole task)")
        mode = (el.get("choice") or "single").lower()
        if mode not in CHOICE_MODES:
            raise NotPredicted(f"choice=\"{mode}\" is not one of {', '.join(CHOICE_MODES)}")
        bound = bound_objects(el, objects, SUPPORTED_OBJECTS)
        labels = _choice_labels(el)
        needed = 1 if CHOICE_MODES[mode] else 2
        if len(labels) < needed:
            raise NotPredicted(f"it needs at least {needed} <Choice> option(s) (got {len(labels)})")
        return ChoicesControl(name=el.get("name", ""), objects=bound, labels=labels,
                              multiple=CHOICE_MODES[mode])

    def control_from_dict(self, d: dict) -> ChoicesControl:
        return ChoicesControl(name=d["name"], objects=tuple(ObjectTag(**o) for o in d["objects"]),
                              labels=tuple(d["labels"]), multiple=bool(d["multiple"]))

    def answer(self, control: ChoicesControl, items: list[dict]) -> Hashable | None:
        """The options chosen, restricted to the config's (a config edit never crashes training)."""
        for item in items:
            value = item.get("value")
            choices = value.get("choices") if isinstance(value, dict) else None
            if not isinstance(choices, list):  # malformed (never written by Label Studio): no answer
                choices = []
            kept = [c for c in choices if isinstance(c, str) and c in control.labels]
            if control.multiple:
                return frozenset(kept)
            return kept[0] if kept else None
        return None

    def targets(self, control: ChoicesControl, answers: Sequence[Hashable]) -> list:
        return [sorted(a) for a in answers] if control.multiple else list(answers)

    def training_summary(self, control: ChoicesControl, y: list) -> dict:
        """How many labeled tasks got each answer (a multiple choice answer counts as its sorted list)."""
        return {"label_counts": {
            str(k): int(v) for k, v in zip(*np.unique([str(v) for v in y], return_counts=True))}}

    def make_model(self, control: ChoicesControl) -> ChoicesClassifier:
        if control.multiple:
            return ChoicesClassifier(multiple=True)
        return ChoicesClassifier(class_weight=SINGLE_CHOICE_CLASS_WEIGHT)

    def load_model(self, raw: bytes) -> ChoicesClassifier:
        return ChoicesClassifier.from_bytes(raw)

    def results(self, control: ChoicesControl, model: ChoicesClassifier, proba: np.ndarray,
                min_confidence: float = 0.0) -> list[dict | None]:
        """A ``choices`` result per row carrying the model's own probability.

        ``None`` when nothing is proposed, or when that probability is below
        ``min_confidence`` (a pre-annotation the model is unsure of is not
        shown; see ``docs/min-confidence.md``).  Options the model learned but
        the config no longer has are never proposed.
        """
        allowed = np.isin(model.classes_, control.labels)
        to_name = ",".join(control.to_names)
        out: list[dict | None] = []
        for row in proba:
            if control.multiple:
                chosen = [i for i in np.flatnonzero(row >= 0.5) if allowed[i]]
                labels = [str(model.classes_[i]) for i in chosen]
                p = float(np.min(row[chosen])) if chosen else -1.0
            else:
                masked = np.where(allowed, row, -1.0)
                best = int(np.argmax(masked))
                labels, p = [str(model.classes_[best])], float(masked[best])
            if p < 0 or p < min_confidence:
                out.append(None)
                continue
            out.append({"from_name": control.name, "to_name": to_name, "type": self.result_type,
                        "value": {"choices": labels}, "score": round(p, 6)})
        return out

    def uncertainty(self, model: ChoicesClassifier, proba: np.ndarray) -> np.ndarray:
        """Margin uncertainty (per label for multiple choice): the default strategy's utility."""
        return scores.multilabel_margin_uncertainty(proba) if model.multiple else scores.margin_uncertainty(proba)
