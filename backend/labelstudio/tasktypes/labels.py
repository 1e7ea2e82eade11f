"""``<Labels>`` over ``<Text>``: named entities, predicted as character spans of the task's text.

One :class:`backend.learning.span_model.SpanModel` per control (a
linear-chain CRF, chosen by measurement in ``docs/research/ner.md``).  It is
the one task type whose model reads the task's text itself
(``model_input = "text"``): it tokenises the text with exact offsets, so a
predicted span's ``start``, ``end`` and ``text`` are always a slice of the
very string Label Studio shows.  Decisions are in ``docs/ner.md``.

What Label Studio 1.23.2 stores, and so what this reads and writes
(label-studio-sdk 2.1.2's validator ``label_interface/control_tags.py``:
``LabelsTag``, ``LabelsValue``):

* ``{"from_name", "to_name", "type": "labels", "value": {"start": 0,
  "end": 7, "text": "Germany", "labels": ["LOC"]}}``, offsets in code
  points, ``end`` exclusive; one item per span, a span with several labels
  (``choice="multiple"``) as one item listing them.
* ``<HyperText>`` and ``<Paragraphs>`` spans are located by XPath offsets or
  paragraph indices instead, so they are refused with that reason.
"""

from __future__ import annotations

import numbers
from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Sequence
from xml.etree.ElementTree import Element

import numpy as np

from backend.labelstudio.tasktypes.base import (Control, NotPredicted, ObjectTag, TaskType, bound_objects, describe,
                                                margin_rows)
from backend.learning.span_model import SpanModel, Tagged, sequence_uncertainties, span_scores

#: A span of an answer: ``(start, end, label, text)``, the text as the annotator's result gave it (``None`` if
#: absent), which locates the span again when the offsets disagree with the task's text (``spans.align_span``).
AnswerSpan = tuple[int, int, str, str | None]
#: Object tags whose spans are not character offsets into one text.
OFFSETS_ELSEWHERE = {"HyperText": "XPath positions in the page", "Paragraphs": "paragraph indices and offsets"}


@dataclass(frozen=True)
class LabelsControl(Control):
    """One ``<Labels>`` block over one ``<Text>``: its entity labels, in document order."""

    labels: tuple[str, ...] = ()
    task_type: str = "labels"


def _label_values(el: Element) -> tuple[str, ...]:
    """``<Label>`` values (or aliases, which Label Studio stores instead) in document order, each once."""
    labels: dict[str, None] = {}
    for child in el.iter("Label"):
        label = child.get("alias") or child.get("value")
        if label:
            labels.setdefault(label, None)
    return tuple(labels)


def _offset(x: Any) -> int | None:
    """A span offset as an int; ``None`` for anything else (a float such as 3.0 is read as 3)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return None
    return int(x) if float(x).is_integer() and x >= 0 else None


class LabelsTask(TaskType):
    """Named entities: a CRF tagger per ``<Labels>`` control, trained on the annotators' spans."""

    name = "labels"
    tags = ("Labels",)
    result_type = "labels"
    supported = "<Labels> over <Text> (named entities, as character spans)"
    model_input = "text"
    empty_is_answer = True

    # -- the label config ----------------------------------------------------
    def parse(self, el: Element, objects: dict[str, Element]) -> LabelsControl:
        if (el.get("value") or "").startswith("$"):
            raise NotPredicted("its labels come from task data (dynamic labels), which is not supported")
        for to_name in (n.strip() for n in el.get("toName", "").split(",")):
            obj = objects.get(to_name)
            if obj is not None and obj.tag in OFFSETS_ELSEWHERE:
                raise NotPredicted(f"it labels spans of {describe(obj)}, which Label Studio locates by "
                                   f"{OFFSETS_ELSEWHERE[obj.tag]}, not by character offsets into one text; "
                                   "span labels are predicted over <Text>")
        bound = bound_objects(el, objects, ("Text",))
        if len(bound) != 1:
            raise NotPredicted(f"it labels spans of {len(bound)} texts; bind it to one <Text>")
        labels = _label_values(el)
        if not labels:
            raise NotPredicted("it needs at least one <Label> (got none)")
        return LabelsControl(name=el.get("name", ""), objects=bound, labels=labels)

    def control_from_dict(self, d: dict) -> LabelsControl:
        return LabelsControl(name=d["name"], objects=tuple(ObjectTag(**o) for o in d["objects"]),
                             labels=tuple(d["labels"]))

    # -- annotations -> training targets ---------------------------------------
    def answer(self, control: LabelsControl, items: list[dict]) -> Hashable | None:
        """The annotation's spans, sorted: ``((start, end, label, text), ...)``; ``()`` means "no entities".

        Called for every annotation that is not cancelled, with this
        control's items, which may be none: an annotator who submits a text
        without marking anything says it has no entities.  A span whose
        offsets are not whole numbers with ``start < end`` makes the whole
        annotation unreadable (``None``: it is skipped, never half-read).
        Labels the config no longer has are dropped, as for choices: under
        the new config that text is no entity.
        """
        spans: set[AnswerSpan] = set()
        for item in items:
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, dict):
                return None
            start, end = _offset(value.get("start")), _offset(value.get("end"))
            labels = value.get("labels")
            if start is None or end is None or start >= end or not isinstance(labels, list):
                return None
            text = value.get("text") if isinstance(value.get("text"), str) else None
            spans.update((start, end, label, text) for label in labels
                         if isinstance(label, str) and label in control.labels)
        return tuple(sorted(spans, key=lambda s: (s[0], s[1], s[2], s[3] or "")))

    def targets(self, control: LabelsControl, answers: Sequence[Hashable]) -> list:
        """The spans themselves: :class:`SpanModel` turns them into BIO tags against each task's text."""
        return list(answers)

    def training_summary(self, control: LabelsControl, y: list) -> dict:
        """Entities trained on per label, and how many tasks have none."""
        return {"entities": dict(Counter(s[2] for spans in y for s in spans)),
                "no_entity_tasks": sum(1 for spans in y if not spans)}

    def answer_key(self, answer: Hashable) -> str:
        return "; ".join(f"{s[0]}-{s[1]} {s[2]}" for s in answer) or "(no entities)"

    def distribution(self, answers: Iterable[Hashable]) -> dict[str, int]:
        """Entities per label, and the tasks without any under ``(no entities)``."""
        counts: Counter[str] = Counter()
        for spans in answers:
            counts.update([s[2] for s in spans] or ["(no entities)"])
        return dict(counts)

    # -- the model ---------------------------------------------------------------
    def make_model(self, control: LabelsControl) -> SpanModel:
        return SpanModel()

    def load_model(self, raw: bytes) -> SpanModel:
        return SpanModel.from_bytes(raw)

    def output(self, model: SpanModel, X: Any) -> list[Tagged]:
        """Per text (``X`` is the list of texts, ``model_input``): its tokens and the tagger's view of them."""
        return model.tag(list(X))

    # -- model output -> Label Studio --------------------------------------------
    def results(self, control: LabelsControl, model: SpanModel, output: list[Tagged],
                min_confidence: float = 0.0) -> list[list[dict]]:
        """Per text, one ``labels`` item per predicted entity, its ``score`` the mean marginal of its tags.

        ``start``/``end`` are the first token's start and the last token's
        end, so ``text`` is exactly ``task_text[start:end]``.  An entity
        whose score is below ``min_confidence``, or whose label the config no
        longer has, is left out; a text without entities gets ``[]``.
        """
        classes = list(model.classes_)
        to_name = control.to_names[0]
        out: list[list[dict]] = []
        for tagged in output:
            items = []
            for i, j, label, p in span_scores(tagged.tagging, classes):
                if label not in control.labels or p < min_confidence:
                    continue
                start, end = tagged.tokens[i].start, tagged.tokens[j - 1].end
                items.append({"from_name": control.name, "to_name": to_name, "type": self.result_type,
                              "value": {"start": start, "end": end, "text": tagged.text[start:end],
                                        "labels": [label]},
                              "score": round(p, 6)})
            out.append(items)
        return out

    def measures(self, model: SpanModel, output: list[Tagged]) -> dict[str, np.ndarray]:
        """All four sequence uncertainties of issue 17 per text (``span_model.sequence_uncertainties``)."""
        return sequence_uncertainties([t.tagging for t in output], list(model.classes_))

    def uncertainty(self, model: SpanModel, output: list[Tagged]) -> np.ndarray:
        """Least confidence of the whole tagging, ``1 - P(best sequence)``: what the queue ranks by.

        The whole sequence's probability is what an annotator accepts or
        corrects.  Chosen by measurement over the issue's measures
        (``al-backend simulate conll2003-en``, ``docs/ner.md``): per sentence
        labeled, it gained most entity F1 over random, because a long
        sentence the tagger is unsure of holds more entities to learn from;
        the length-normalised form (Shen et al. 2018) asked for short
        sentences with little in them and did worse than random.
        """
        return self.measures(model, output)["least_confident_raw"]

    def as_probabilities(self, model: SpanModel, output: list[Tagged]) -> np.ndarray:
        """Rows whose margin uncertainty is :meth:`uncertainty`, so every strategy ranks by it (``margin_rows``)."""
        return margin_rows(self.uncertainty(model, output))
