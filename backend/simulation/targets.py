"""What the simulator learns and how it scores it: a label to choose, or a number to predict.

Why this module exists
----------------------
The replayed loop (:mod:`backend.simulation.replay`) is the same for every
kind of control: split, ask the oracle, retrain, rank, score.  What differs
is the model the worker trains (the control's task type's), what a score is
(accuracy for choices, error for numbers), and whether the test split can be
stratified.  Each :class:`Target` says exactly that, so the loop and the
report stay free of task types.

Scores are higher-is-better in the **headline** metric (the first of
``metrics``), so one definition of area under the curve, labels to reach a
share of the full-data score and savings against random serves both:

``choices``
    ``accuracy`` (headline) and ``macro_f1``.
``number``
    ``skill = 1 - MAE / MAE(pool mean)`` (headline; 0 is no better than
    always answering the pool's mean, 1 is exact) and ``mae``, in the
    numbers' own units.  The baseline is fixed per repetition, so skill is a
    monotone transform of the MAE there: a strategy reaches a skill exactly
    when it reaches the matching MAE.  This is the dashboard's skill
    (:mod:`backend.progress.regression`) with the pool's mean as the
    constant.
``labels``
    ``entity_f1`` (headline) and ``entity_recall``: CoNLL's exact-match
    entity measure, micro-averaged over the test sentences
    (:func:`backend.learning.spans.entity_scores`).  The model reads each
    task's text itself (``model_input = "text"``), so the loop hands it the
    texts while the strategies' geometry stays the featurizer's rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np
from sklearn.metrics import f1_score

from backend.labelstudio.tasktypes import TASK_TYPES, ObjectTag, TaskType
from backend.labelstudio.tasktypes.base import result_items
from backend.labelstudio.tasktypes.labels import LabelsControl
from backend.learning.featurizers import Matrix
from backend.learning.spans import entity_scores
from backend.learning.model import SINGLE_CHOICE_CLASS_WEIGHT, ChoicesClassifier, NotEnoughLabelsError
from backend.learning.regressor import CommitteeRegressor
from backend.selection import strategies as named_strategies

__all__ = ["Target", "ChoicesTarget", "NumberTarget", "LabelsTarget", "TARGETS", "CHOICES", "NUMBER", "LABELS"]

CHOICES, NUMBER, LABELS = "choices", "number", "labels"


class Target(ABC):
    """One kind of answer the simulated annotators give, and how a model of it is trained and scored."""

    #: ``Dataset.target``: ``"choices"`` or ``"number"``.
    name: ClassVar[str]
    #: The score names of a curve, the headline (higher is better) first.
    metrics: ClassVar[tuple[str, str]]
    #: Each metric's short column name, whether it is a share (printed in %), and its plot title.
    labels: ClassVar[dict[str, tuple[str, bool, str]]]
    #: The task type whose model and probability view the worker uses.
    task_type: ClassVar[TaskType]
    #: The model reads each task's text itself, not the featurizer's rows (``TaskType.model_input``).
    reads_text: ClassVar[bool] = False

    def as_array(self, labels: Sequence) -> np.ndarray:
        """The answers as an array the loop can index by rows."""
        return np.asarray(labels)

    def classes(self, labels: Sequence) -> list[str]:
        """The label names the answers use (none for numbers)."""
        return sorted(set(labels))

    @abstractmethod
    def new_model(self, class_weight: str | None) -> Any:
        """A fresh estimator, as the worker makes one for the control."""

    def fit(self, X: Matrix, y: Sequence, init: Any = None,
            class_weight: str | None = SINGLE_CHOICE_CLASS_WEIGHT) -> Any | None:
        """The worker's model on the labels so far; ``None`` while it cannot be trained (the worker leaves it)."""
        try:
            return self.new_model(class_weight).fit(X, list(y), init=init)
        except NotEnoughLabelsError:
            return None

    @abstractmethod
    def score(self, model: Any | None, seen: Sequence, X_test: Matrix, y_test: np.ndarray,
              reference: np.ndarray) -> dict[str, float]:
        """Every metric on the test split; ``reference`` holds the pool's answers (the baseline's data)."""

    def selection_pool(self, X_pool: Matrix, model: Any | None, labeled_X: Matrix | None,
                       labeled_y: Sequence, name: str, inputs: Any = None) -> named_strategies.Pool:
        """The :class:`~backend.selection.strategies.Pool` the worker builds for one control named ``name``.

        Mirrors ``build_version``: probabilities (the task type's view, of
        ``inputs`` when the model reads texts, else of the rows ``X_pool``)
        and models only for a trained control, and the labeled set only when
        the control has a model.  ``X_pool`` is the geometry either way.
        """
        if model is None:
            return named_strategies.Pool(X=X_pool)
        probas = self.task_type.probabilities(model, X_pool if inputs is None else inputs)
        return named_strategies.Pool(
            X=X_pool, probas={name: probas}, models={name: model}, labeled_X=labeled_X, labeled_y=list(labeled_y),
        )

    @abstractmethod
    def stratify(self, y: np.ndarray) -> np.ndarray | None:
        """What the test split is stratified on (``None``: a plain random split)."""


class ChoicesTarget(Target):
    """A single-choice ``<Choices>``: :class:`ChoicesClassifier`, accuracy and macro-F1."""

    name = CHOICES
    metrics = ("accuracy", "macro_f1")
    labels = {"accuracy": ("acc", True, "test accuracy"), "macro_f1": ("F1", True, "test macro-F1")}
    task_type = TASK_TYPES[CHOICES]

    def new_model(self, class_weight: str | None) -> ChoicesClassifier:
        return ChoicesClassifier(class_weight=class_weight)

    def score(self, model, seen, X_test, y_test, reference) -> dict[str, float]:
        """An untrained model answers the one label seen."""
        if model is None:
            pred = np.full(len(y_test), seen[0] if len(seen) else "", dtype=object)
        else:
            pred = np.asarray(model.predict(X_test), dtype=object)
        y = np.asarray(y_test).astype(str)
        return {
            "accuracy": float(np.mean(pred.astype(str) == y)),
            "macro_f1": float(f1_score(y, pred.astype(str), labels=np.unique(np.asarray(reference).astype(str)),
                                       average="macro", zero_division=0)),
        }

    def stratify(self, y: np.ndarray) -> np.ndarray:
        return y


class NumberTarget(Target):
    """A ``<Number>`` or ``<Rating>``: :class:`CommitteeRegressor`, skill and mean absolute error."""

    name = NUMBER
    metrics = ("skill", "mae")
    labels = {"skill": ("skill", True, "test skill (1 - MAE / MAE of the mean)"),
              "mae": ("MAE", False, "test mean absolute error")}
    task_type = TASK_TYPES[NUMBER]

    def new_model(self, class_weight: str | None) -> CommitteeRegressor:
        return CommitteeRegressor()  # no class weights for numbers

    def classes(self, labels: Sequence) -> list[str]:
        return []

    def score(self, model, seen, X_test, y_test, reference) -> dict[str, float]:
        """An untrained model answers the mean of the numbers seen (0 before any)."""
        y = np.asarray(y_test, dtype=np.float64)
        if model is None:
            pred = np.full(y.shape, float(np.mean(seen)) if len(seen) else 0.0)
        else:
            pred = model.predict(X_test)
        mae = float(np.mean(np.abs(pred - y)))
        baseline = float(np.mean(np.abs(float(np.mean(reference)) - y)))
        return {"skill": 1.0 - mae / baseline if baseline > 0 else 0.0, "mae": mae}

    def stratify(self, y: np.ndarray) -> None:
        return None


class LabelsTarget(Target):
    """A ``<Labels>`` over a ``<Text>``: the span tagger, entity-level F1 and recall.

    Answers are tuples of spans ``(start, end, label)``; ``()`` is a
    sentence without entities.
    """

    name = LABELS
    metrics = ("entity_f1", "entity_recall")
    labels = {"entity_f1": ("F1", True, "test entity F1 (exact spans)"),
              "entity_recall": ("recall", True, "test entity recall (exact spans)")}
    task_type = TASK_TYPES[LABELS]
    reads_text = True

    def as_array(self, labels: Sequence) -> np.ndarray:
        out = np.empty(len(labels), dtype=object)  # one tuple of spans per row, never a 2-D array
        for i, spans in enumerate(labels):
            out[i] = spans
        return out

    def new_model(self, class_weight: str | None) -> Any:
        return self.task_type.make_model(self._control(()))

    def classes(self, labels: Sequence) -> list[str]:
        """The entity labels."""
        return sorted({s[2] for spans in labels for s in spans})

    @staticmethod
    def _control(labels: Sequence) -> LabelsControl:
        return LabelsControl(name="label", objects=(ObjectTag(name="text", tag="Text", value_key="text"),),
                             labels=tuple(labels))

    def score(self, model, seen, X_test, y_test, reference) -> dict[str, float]:
        """The tagger's spans on the test texts, as the worker would pre-annotate them; none while untrained."""
        if model is None:
            predicted: list = [[] for _ in y_test]
        else:
            control = self._control(sorted({s[2] for spans in reference for s in spans}))
            rows = self.task_type.results(control, model, self.task_type.output(model, list(X_test)))
            predicted = [[(i["value"]["start"], i["value"]["end"], i["value"]["labels"][0]) for i in result_items(r)]
                         for r in rows]
        got = entity_scores([[(s[0], s[1], s[2]) for s in spans] for spans in y_test], predicted)
        return {"entity_f1": got["f1"], "entity_recall": got["recall"]}

    def stratify(self, y: np.ndarray) -> None:
        return None


#: ``Dataset.target`` -> its :class:`Target`.
TARGETS: dict[str, Target] = {t.name: t for t in (ChoicesTarget(), NumberTarget(), LabelsTarget())}
