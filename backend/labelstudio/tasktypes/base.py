"""The task-type interface: the one place that knows a Label Studio control tag.

A task type says, for one kind of control (``<Choices>``, ``<Labels>``,
``<Number>``…):

* which control tags it reads, and how to parse one into a :class:`Control`
  (or why it cannot be predicted);
* how to turn an annotation's result items into one training answer;
* which model it trains (a scikit-learn-style estimator, stored pickle-free);
* how to turn the model's output into Label Studio result items, each with
  the model's own ``score``;
* the task's uncertainty, which the default strategy ranks by.

Everything else (the HTTP service, the worker, the push, the simulator,
progress) goes through a task type, so a new kind of control is one new
module plus its registration in ``tasktypes/__init__.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Hashable, Iterable, Sequence
from xml.etree.ElementTree import Element

import numpy as np


class NotPredicted(Exception):
    """This control cannot be predicted; the message is the reason shown to the user."""


#: Object tag -> the kind of data it shows, which names the featurizers that can read it
#: (``Featurizer.input``) and how ``task_data.control_content`` reads it from a task.
OBJECT_KINDS = {
    "Text": "text", "HyperText": "text", "Paragraphs": "text",
    "Image": "image",
    # A series is read as a record of its summary numbers (``task_timeseries.py``): the numbers' featurizers apply.
    "Table": "numbers", "TimeSeries": "numbers",
}


@dataclass(frozen=True)
class ObjectTag:
    """An object tag (where the task's content lives in ``task.data``)."""

    name: str
    tag: str
    value_key: str
    is_url: bool = False
    name_key: str = "author"
    text_key: str = "text"
    #: ``<TimeSeries>``: the ``<Channel column>`` names (empty: every column but the time), the ``timeColumn``
    #: and the CSV separator (``sep``).
    channels: tuple[str, ...] = ()
    time_column: str = ""
    sep: str = ","

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))  # a stored config gives a list

    @property
    def kind(self) -> str:
        """``text``, ``image`` or ``numbers`` (``OBJECT_KINDS``)."""
        return OBJECT_KINDS.get(self.tag, "text")


@dataclass(frozen=True)
class Control:
    """One control tag the backend predicts: one model is trained per control."""

    name: str
    objects: tuple[ObjectTag, ...]
    #: The name of the task type that parsed it (``TASK_TYPES`` key), stored with the control.
    task_type: str = ""

    @property
    def to_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objects)

    @property
    def kind(self) -> str:
        """The kind of data the control reads (its objects share one; see ``bound_objects``)."""
        return self.objects[0].kind if self.objects else "text"


def describe(el: Element) -> str:
    """``<Tag name="x">`` as the user wrote it, for messages."""
    name = el.get("name")
    return f"<{el.tag} name=\"{name}\">" if name else f"<{el.tag}>"


def object_tag(el: Element) -> ObjectTag:
    """The object a control reads, or ``NotPredicted`` when it takes nothing from the task data."""
    value = (el.get("value") or "").strip()
    if not value.startswith("$") or len(value) < 2:
        raise NotPredicted(
            f"{describe(el)} must take its content from the task data, e.g. value=\"$text\" (got value=\"{value}\")"
        )
    if el.tag == "TimeSeries":  # Label Studio's default valueType for a series is "url" (a CSV file)
        return ObjectTag(
            name=el.get("name", ""), tag=el.tag, value_key=value[1:],
            is_url=(el.get("valueType") or "url").lower() == "url",
            channels=tuple(c.get("column", "") for c in el.iter("Channel") if c.get("column")),
            time_column=el.get("timeColumn") or "", sep=el.get("sep") or ",",
        )
    return ObjectTag(
        name=el.get("name", ""),
        tag=el.tag,
        value_key=value[1:],
        is_url=(el.get("valueType") or "").lower() == "url",
        name_key=el.get("nameKey") or "author",
        text_key=el.get("textKey") or "text",
    )


def bound_objects(el: Element, objects: dict[str, Element], supported: tuple[str, ...]) -> tuple[ObjectTag, ...]:
    """The object tags a control's ``toName`` names, all of one kind of data; ``NotPredicted`` otherwise.

    One model reads one kind of features, so a control bound to an image
    and a text at once is refused with the reason, not half-predicted.
    """
    bound: list[ObjectTag] = []
    for to_name in (n.strip() for n in el.get("toName", "").split(",")):
        if not to_name:
            continue
        if to_name not in objects:
            raise NotPredicted(f"toName=\"{to_name}\" names no object tag")
        obj = objects[to_name]
        if obj.tag not in supported:
            raise NotPredicted(f"it reads {describe(obj)}; only {', '.join(f'<{t}>' for t in supported)} are read")
        bound.append(object_tag(obj))
    if not bound:
        raise NotPredicted("its toName is empty")
    kinds = {o.kind for o in bound}
    if len(kinds) > 1:
        raise NotPredicted(f"it reads {' and '.join(sorted(kinds))} at once; bind it to one kind of data")
    if bound[0].kind != "text" and len(bound) > 1:
        raise NotPredicted(f"it reads {len(bound)} {bound[0].kind} objects; bind it to one")
    return tuple(bound)


class TaskType(ABC):
    """How the backend predicts one kind of Label Studio control (stateless; one instance is registered)."""

    #: The registry key, stored with every parsed config.
    name: ClassVar[str]
    #: The control tags it reads, e.g. ``("Choices",)``.
    tags: ClassVar[tuple[str, ...]]
    #: The ``type`` of the result items it reads from annotations and writes in predictions.
    result_type: ClassVar[str]
    #: Every result ``type`` it reads, when it reads more than one (the webhook keeps items of these);
    #: ``(result_type,)`` unless a subclass says otherwise.
    result_types: ClassVar[tuple[str, ...]]
    #: What it predicts, in the user's words (for the message that refuses a config).
    supported: ClassVar[str]
    #: What its model reads per task: ``"features"``, the featurizer's rows (cached by the worker), or
    #: ``"text"``, the control's text exactly as Label Studio shows it (``content.model_content``): a span
    #: model's offsets index that very string, and it tokenises it itself.  The diversity geometry reads the
    #: featurizer's rows either way.
    model_input: ClassVar[str] = "features"
    #: Whether an annotation without any item of the control still answers it (``answer`` is then called
    #: with no items): no spans marked means "no entities".  A choice or a number left empty is no answer.
    empty_is_answer: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "result_types" not in cls.__dict__ and "result_type" in cls.__dict__:
            cls.result_types = (cls.result_type,)

    # -- the label config ----------------------------------------------------
    @abstractmethod
    def parse(self, el: Element, objects: dict[str, Element]) -> Control:
        """One control from its XML element; raises ``NotPredicted`` with the reason otherwise."""

    @abstractmethod
    def control_from_dict(self, d: dict) -> Control:
        """A control stored by ``LabelConfig.to_dict``."""

    # -- annotations -> training targets ---------------------------------------
    @abstractmethod
    def answer(self, control: Control, items: list[dict]) -> Hashable | None:
        """One annotation's answer for ``control``, from its result items (``None``: no answer)."""

    def consensus(self, given: Sequence[Hashable]) -> tuple[Hashable, bool]:
        """One task's answer from its annotators' answers (oldest first), and whether it was a tie.

        The majority; a tie goes to the most recent of the tied answers and
        is reported, so it can be reviewed.
        """
        counts = Counter(given).most_common()
        top = [a for a, c in counts if c == counts[0][1]]
        if len(top) == 1:
            return top[0], False
        return next(a for a in reversed(given) if a in top), True

    @abstractmethod
    def targets(self, control: Control, answers: Sequence[Hashable]) -> list:
        """The ``y`` the model is fitted on, from the consensus answers (``build_labeled_set``)."""

    def training_summary(self, control: Control, y: list) -> dict:
        """What a version records about the targets a control was trained on (shown in ``/status``)."""
        return {}

    def answer_key(self, answer: Hashable) -> str:
        """An answer as a short text (the dashboard's label counts, the annotators' disagreements)."""
        return ",".join(sorted(map(str, answer))) if isinstance(answer, frozenset) else str(answer)

    def distribution(self, answers: Iterable[Hashable]) -> dict[str, int]:
        """How often each answer was given (the dashboard's label distribution)."""
        return dict(Counter(self.answer_key(a) for a in answers))

    # -- the model ---------------------------------------------------------------
    @abstractmethod
    def make_model(self, control: Control) -> Any:
        """A fresh, unfitted estimator for ``control`` (``fit``, ``predict_proba``, ``to_bytes``)."""

    @abstractmethod
    def load_model(self, raw: bytes) -> Any:
        """A model stored by its ``to_bytes``; never unpickles (``ValueError`` on anything else)."""

    # -- model output -> Label Studio --------------------------------------------
    def output(self, model: Any, X: Any) -> np.ndarray:
        """The model's output per task row, which ``results`` and ``uncertainty`` read (class probabilities)."""
        return model.predict_proba(X)

    @abstractmethod
    def results(self, control: Control, model: Any, proba: np.ndarray, min_confidence: float = 0.0
                ) -> list[dict | list[dict] | None]:
        """Per row of ``proba``: one Label Studio result item (with its ``score``), a list of them (a span per
        entity), or ``None``; :func:`result_items` reads any of the three."""

    @abstractmethod
    def uncertainty(self, model: Any, proba: np.ndarray) -> np.ndarray:
        """Per task, how unsure the model is, in [0, 1] (higher = ask sooner)."""

    def as_probabilities(self, model: Any, output: np.ndarray) -> np.ndarray:
        """``output`` as the class-probability rows the selection strategies read.

        The strategies (``backend/selection``) score probability matrices.
        A classifier's output is one already; a task type whose output is
        something else (a number and its spread) maps it to rows whose
        margin uncertainty is its own :meth:`uncertainty`, so every
        strategy ranks it by that.
        """
        return output

    def probabilities(self, model: Any, X: Any) -> np.ndarray:
        """The probability rows of the tasks ``X`` (``as_probabilities`` of ``output``): what rankings read."""
        return self.as_probabilities(model, self.output(model, X))


def margin_rows(u: np.ndarray) -> np.ndarray:
    """``[1 - u/2, u/2]`` per task: two-column probability rows whose margin uncertainty is ``u`` itself.

    What a task type whose output is not class probabilities (a number's
    spread, a sequence's confidence) gives the strategies, so margin,
    entropy and least confidence all rank by its own uncertainty; ``u = 1``
    reads as (0.5, 0.5), no opinion, as it does for choices.
    """
    u = np.asarray(u, dtype=np.float64)
    return np.column_stack([1.0 - u / 2.0, u / 2.0])


def result_items(row: dict | list[dict] | None) -> list[dict]:
    """One row of :meth:`TaskType.results` as a list of result items (``/predict`` and the push read it so)."""
    if row is None:
        return []
    return [row] if isinstance(row, dict) else list(row)
