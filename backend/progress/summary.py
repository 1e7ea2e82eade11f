"""The progress summary: what the dashboard, ``/status`` and ``/metrics`` show of a project.

Written by the evaluate job (``worker/progress.py``) once per trained
version and read by the serving processes, through
``backend/state/progress.py``.  Everything read back from Redis is
validated against these models: a value that does not fit is treated as no
summary (and logged), never as a 500 or a wrong figure on the page.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from backend.progress.estimators import KEEP_GOING

Fraction = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]


class _Part(BaseModel):
    # Keys a newer worker adds are ignored by an older serving process (rolling upgrades).
    model_config = ConfigDict(extra="ignore", frozen=True)


class Estimate(_Part):
    """An accuracy estimate: cross-validation, held-out control tasks, or recent control outcomes."""

    n: Count = 0
    accuracy: Fraction | None = None
    accuracy_std: float | None = None
    low: Fraction | None = None
    high: Fraction | None = None
    macro_f1: Fraction | None = None
    correct: Count | None = None
    folds: Count | None = None
    labels_from: Count | None = None
    labels_to: Count | None = None
    reason: str | None = None  # why there is no estimate yet


class ErrorEstimate(_Part):
    """A number-predicting model's error: cross-validation or held-out control tasks (``progress/regression.py``)."""

    n: Count = 0
    mae: Annotated[float, Field(ge=0)] | None = None
    mae_std: float | None = None
    low: Annotated[float, Field(ge=0)] | None = None
    high: Annotated[float, Field(ge=0)] | None = None
    baseline_mae: Annotated[float, Field(ge=0)] | None = None
    skill: float | None = None
    folds: Count | None = None
    reason: str | None = None


class CurvePoint(_Part):
    """One trained version on the learning curve (``evaluation.curve_points``)."""

    version: str
    labels: Count = 0
    control_n: Count = 0
    control_accuracy: Fraction | None = None
    control_low: Fraction | None = None
    control_high: Fraction | None = None
    control_macro_f1: Fraction | None = None
    cv_accuracy: Fraction | None = None
    cv_accuracy_std: float | None = None
    cv_macro_f1: Fraction | None = None
    holdout_accuracy: Fraction | None = None
    holdout_low: Fraction | None = None
    holdout_high: Fraction | None = None
    holdout_n: Count = 0
    kappa: float | None = None
    # numbers to predict (``ProgressSummary.measures == "error"``)
    cv_mae: float | None = None
    cv_skill: float | None = None
    holdout_mae: float | None = None
    holdout_skill: float | None = None
    holdout_mae_low: float | None = None
    holdout_mae_high: float | None = None
    # named entities (``ProgressSummary.measures == "entity_f1"``)
    cv_entity_f1: Fraction | None = None
    holdout_entity_f1: Fraction | None = None
    holdout_entity_f1_low: Fraction | None = None
    holdout_entity_f1_high: Fraction | None = None


class RandomPoint(_Part):
    n: Count
    accuracy: Fraction
    sem: float


class CurveFit(_Part):
    """``acc(n) = a - b * n**-c`` (``estimators.CurveFit``)."""

    a: float
    b: float
    c: float


class RandomCurve(_Part):
    """The random-selection learning curve of the labeled control tasks."""

    n: Count = 0
    points: list[RandomPoint] = []
    fit: CurveFit | None = None
    reason: str | None = None


class Savings(_Part):
    """Labels saved over random selection (``estimators.labels_saved``)."""

    random_labels: float | None = None
    saved: float | None = None
    ratio: float | None = None
    reason: str | None = None


class Recommendation(_Part):
    action: str = KEEP_GOING
    reason: str = ""
    signals: dict[str, Any] = {}


class ReviewItem(_Part):
    """A label to look at again: a model trained without it finds it unlikely, or annotators disagree."""

    task: int
    control: str
    reason: str
    label: str | None = None
    predicted: str | None = None
    proba_of_label: Fraction | None = None
    answers: dict[str, int] | None = None


class EntityEstimate(_Part):
    """A ``<Labels>`` control's entity-level figures: cross-validated or held out (``progress/entities.py``)."""

    n: Count = 0
    f1: Fraction | None = None
    precision: Fraction | None = None
    recall: Fraction | None = None
    low: Fraction | None = None  # held out: the F1's 95% bootstrap interval
    high: Fraction | None = None
    entities: Count = 0
    reason: str | None = None


class QueueHead(_Part):
    head: Count = 0
    control: Count = 0
    uncertain: Count = 0
    diverse: Count = 0


class Throughput(_Part):
    last_hour: Count = 0
    per_hour_24h: float = 0.0


class FeatureChoice(_Part):
    """``features: "auto"``: the last comparison of representations (``backend/learning/auto_features.py``)."""

    chosen: str
    previous: str = ""
    labels: Count = 0
    accuracy: dict[str, Fraction] = {}  # mean cross-validated accuracy per representation
    reason: str = ""


class ProgressSummary(_Part):
    """A project's progress as of its current trained version."""

    version: str
    updated_at: float
    labeled_tasks: Count = 0
    annotations: Count = 0
    pool: Count = 0
    control: str | None = None
    strategy: str | None = None
    features: str | None = None  # the representation this version was trained on
    feature_choice: FeatureChoice | None = None  # how it was chosen, when the project says "auto"
    control_share: Fraction | None = None
    #: What the headline figures measure: ``accuracy`` (choices); ``error`` (a number to predict, when the
    #: project has no single-choice control; then ``error`` holds the figures and ``accuracy`` is ``None``);
    #: ``entity_f1`` (named entities, when it has only ``<Labels>``: ``entity`` holds the figures).
    measures: str = "accuracy"
    accuracy: Fraction | None = None
    accuracy_source: str = "cross-validation"
    macro_f1: Fraction | None = None
    error: ErrorEstimate | None = None
    cv_error: ErrorEstimate | None = None
    holdout_error: ErrorEstimate | None = None
    entity: EntityEstimate | None = None
    cv_entity: EntityEstimate | None = None
    holdout_entity: EntityEstimate | None = None
    recent_control: Estimate | None = None
    control_holdout: Estimate = Estimate()
    cv: Estimate = Estimate()
    curve: list[CurvePoint] = []
    random_curve: RandomCurve = RandomCurve()
    savings: Savings = Savings()
    kappa: float | None = None
    stop_set: Count = 0
    recommendation: Recommendation = Recommendation()
    rules: dict[str, bool | int | float] = {}
    review: list[ReviewItem] = []
    queue: QueueHead = QueueHead()
    label_distribution: dict[str, dict[str, int]] = {}
    #: Per ``<Labels>`` control: entity-level F1 by cross-validation (the headline is choices' or numbers' if any).
    entities: dict[str, EntityEstimate] = {}
    throughput: Throughput = Throughput()
    control_outcomes: Count = 0
    pending_controls: Count = 0
    timings_s: dict[str, float] = {}

    @property
    def unbiased(self) -> bool:
        """Whether ``accuracy`` comes from held-out control tasks (else from cross-validation)."""
        return self.accuracy_source.startswith("control")
