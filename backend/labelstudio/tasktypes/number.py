"""``<Number>`` and ``<Rating>``: numbers to predict (regression).

One :class:`backend.learning.regressor.CommitteeRegressor` per control, over
the task's features (text, an image or a table: the features come from the
featurizers, as for choices).  The committee's mean becomes a pre-filled
number or rating; the spread of its members is the task's uncertainty.

What Label Studio 1.23.2 stores, and so what this reads and writes (the
editor's ``web/libs/editor/src/tags/control/Number.js`` and ``Rating.js``;
the tests of ``label_studio/tasks/tests/test_api.py`` and
``label_studio/tests/sdk/test_prediction_validation.py`` in the 1.23.2 wheel;
the prediction validator ``label_studio_sdk/label_interface/control_tags.py``
of label-studio-sdk 2.1.2):

* ``<Number>``: ``{"from_name", "to_name", "type": "number", "value": {"number": 12.5}}``;
  the validator reads ``number`` as a float.  ``min``, ``max`` and ``step``
  are optional; the editor refuses a value off ``min + k * step`` only when
  ``step`` is given (the input's spinner steps by 1 either way).
* ``<Rating>``: ``{"from_name", "to_name", "type": "rating", "value": {"rating": 4}}``;
  an integer from 1 to ``maxRating`` (default 5; the editor stores no
  result for 0 stars, the validator accepts 0 to ``maxRating``).

That validator runs on imported predictions only behind Label Studio's flag
``fflag_feat_utc_210_prediction_validation_15082025`` (off in 1.23.2's
``feature_flags.json``); what :meth:`NumberTask.results` writes passes it
either way (checked against label-studio-sdk 2.1.2 when this was written).

Two result types, one task type: the base class's single ``result_type``
is ``"number"``, :attr:`NumberTask.result_types` lists both (the webhook
keeps annotation items of every listed type), and each parsed control
carries its own (:attr:`NumberControl.result_kind`), which is also the key
of its ``value``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar, Hashable, Sequence
from xml.etree.ElementTree import Element

import numpy as np

from backend.labelstudio.tasktypes.base import Control, NotPredicted, ObjectTag, TaskType, bound_objects, margin_rows
from backend.learning.regressor import CommitteeRegressor

TEXT_OBJECTS = ("Text", "HyperText", "Paragraphs")
#: The objects a number can be predicted for: text, or an image or a table (their features come from the
#: image and table featurizers).
SUPPORTED_OBJECTS = (*TEXT_OBJECTS, "Image", "Table", "TimeSeries")
#: ``<Rating>``'s ``maxRating`` when the config gives none (Label Studio's default).
DEFAULT_MAX_RATING = 5
#: The largest ``maxRating`` accepted (the editor draws one icon per point).
MAX_RATING_LIMIT = 1000
#: Decimal places of a predicted ``<Number>`` without ``step`` (no grid to snap to; this keeps the
#: float noise out of what the annotator sees).
FREE_DECIMALS = 6
RESULT_KINDS = {"Number": "number", "Rating": "rating"}


@dataclass(frozen=True)
class NumberControl(Control):
    """One ``<Number>`` or ``<Rating>``: what its result looks like and the range Label Studio accepts.

    ``result_kind`` is ``"number"`` or ``"rating"``: the result item's
    ``type`` and the key of its ``value``.  A ``<Rating>`` is stored as
    ``min=1``, ``max=maxRating``, ``step=1``.  ``None``: no bound (or no
    grid, for ``step``).
    """

    result_kind: str = "number"
    min: float | None = None
    max: float | None = None
    step: float | None = None
    task_type: str = "number"


def _number_attr(el: Element, attr: str) -> float | None:
    """A numeric attribute, ``None`` when absent, ``NotPredicted`` when not a finite number."""
    raw = el.get(attr)
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise NotPredicted(f"{attr}=\"{raw}\" is not a number") from None
    if not math.isfinite(value):
        raise NotPredicted(f"{attr}=\"{raw}\" is not a finite number")
    return value


def _is_true(el: Element, attr: str) -> bool:
    return (el.get(attr) or "").strip().lower() == "true"


class NumberTask(TaskType):
    """Numbers to predict: a bootstrap committee of ridge regressions per ``<Number>``/``<Rating>``.

    The model's output per task (:meth:`output`) is ``[mean, std]`` of the
    committee, which :meth:`results` turns into a pre-filled value and
    :meth:`uncertainty` into the ranking's utility.
    """

    name = "number"
    tags = ("Number", "Rating")
    #: The base class's single result type; the two this task type reads are in ``result_types``.
    result_type = "number"
    #: Every annotation result ``type`` this task type reads (the webhook filter keeps all of them):
    #: ``<Number>`` writes ``"number"``, ``<Rating>`` writes ``"rating"``.
    result_types: ClassVar[tuple[str, ...]] = ("number", "rating")
    supported = "<Number> or <Rating> over text, an image, a table or a time series (numbers to predict)"

    # -- the label config ----------------------------------------------------
    def parse(self, el: Element, objects: dict[str, Element]) -> NumberControl:
        kind = RESULT_KINDS.get(el.tag)
        if kind is None:
            raise NotPredicted(f"<{el.tag}> is not a <Number> or a <Rating>")
        what = "numbers" if kind == "number" else "ratings"
        if _is_true(el, "perRegion"):
            raise NotPredicted(f"per-region {what} are not predicted (only {what} about the whole task)")
        if _is_true(el, "perItem"):
            raise NotPredicted(f"per-item {what} are not predicted (only {what} about the whole task)")
        bound = bound_objects(el, objects, SUPPORTED_OBJECTS)
        if kind == "rating":
            low, high, step = 1.0, self._max_rating(el), 1.0
        else:
            low, high, step = _number_attr(el, "min"), _number_attr(el, "max"), _number_attr(el, "step")
            if step is not None and step <= 0:
                raise NotPredicted(f"step=\"{el.get('step')}\" must be greater than 0")
        if low is not None and high is not None and low >= high:
            raise NotPredicted(f"min ({low:g}) must be less than max ({high:g}); there is nothing to predict")
        if step is not None and low is not None and high is not None and low + step > high:
            raise NotPredicted(f"step ({step:g}) leaves a single value between min ({low:g}) and max ({high:g})")
        return NumberControl(name=el.get("name", ""), objects=bound, result_kind=kind, min=low, max=high,
                             step=step)

    @staticmethod
    def _max_rating(el: Element) -> float:
        raw = el.get("maxRating")
        if raw is None or not raw.strip():
            return float(DEFAULT_MAX_RATING)
        value = _number_attr(el, "maxRating")
        if value is None or not value.is_integer() or not 2 <= value <= MAX_RATING_LIMIT:
            raise NotPredicted(f"maxRating=\"{raw}\" must be a whole number from 2 to {MAX_RATING_LIMIT}")
        return value

    def control_from_dict(self, d: dict) -> NumberControl:
        kind = d.get("result_kind", "number")
        if kind not in RESULT_KINDS.values():
            raise ValueError(f"stored control {d.get('name')!r} has result_kind {kind!r}, "
                             f"expected one of {sorted(RESULT_KINDS.values())}")

        def bound(key: str) -> float | None:
            return None if d.get(key) is None else float(d[key])

        return NumberControl(name=d["name"], objects=tuple(ObjectTag(**o) for o in d["objects"]), result_kind=kind,
                             min=bound("min"), max=bound("max"), step=bound("step"))

    # -- annotations -> training targets ---------------------------------------
    def answer(self, control: NumberControl, items: list[dict]) -> Hashable | None:
        """The number in the first result item, as a float; ``None`` when it holds no finite number.

        Values outside ``min``/``max`` are kept as given: Label Studio's
        editor enforces the range, so such a value was imported through the
        API or given before the range was narrowed, and it is still the
        annotator's number (predictions are clipped to the range instead).
        """
        for item in items:
            value = item.get("value") if isinstance(item, dict) else None
            x = value.get(control.result_kind) if isinstance(value, dict) else None
            if isinstance(x, bool) or not isinstance(x, numbers.Real):  # malformed: no answer
                return None
            x = float(x)
            return x if math.isfinite(x) else None
        return None

    def consensus(self, given: Sequence[Hashable]) -> tuple[Hashable, bool]:
        """The median of the annotators' numbers: one careless outlier does not move it, and no tie arises.

        With an even count it is the mean of the middle two, which may lie
        off a ``<Number>``'s step grid; it is a training target, never shown.
        """
        return float(np.median(np.asarray(given, dtype=np.float64))), False

    def targets(self, control: NumberControl, answers: Sequence[Hashable]) -> list:
        return [float(a) for a in answers]

    def training_summary(self, control: NumberControl, y: list) -> dict:
        """The range and spread of the numbers trained on (what the model's error compares with)."""
        v = np.asarray(y, dtype=np.float64)
        if not v.size:
            return {}
        return {"targets": {"mean": round(float(v.mean()), 6), "std": round(float(v.std()), 6),
                            "min": float(v.min()), "max": float(v.max())}}

    # -- the model ---------------------------------------------------------------
    def make_model(self, control: NumberControl) -> CommitteeRegressor:
        return CommitteeRegressor()

    def load_model(self, raw: bytes) -> CommitteeRegressor:
        return CommitteeRegressor.from_bytes(raw)

    def output(self, model: CommitteeRegressor, X: Any) -> np.ndarray:
        """Per task row: ``[committee mean, committee standard deviation]``, shape ``(n, 2)``."""
        members = model.predict_members(X)
        return np.column_stack([members.mean(axis=1), members.std(axis=1)])

    # -- model output -> Label Studio --------------------------------------------
    def results(self, control: NumberControl, model: CommitteeRegressor, output: np.ndarray,
                min_confidence: float = 0.0) -> list[dict | None]:
        """A ``number`` or ``rating`` result per row, with the model's confidence as ``score``.

        The value is the committee mean clipped to ``min``/``max`` and put
        on the ``min + k * step`` grid (a rating: a whole number from 1 to
        ``maxRating``), so Label Studio accepts it as it is.  ``score`` is
        ``1 / (1 + std / y_scale_)``: 1 when the members agree, 0.5 when
        they disagree as much as the labeled numbers vary, in (0, 1].
        ``None`` for a row without a finite prediction, or whose score is
        below ``min_confidence`` (see ``docs/min-confidence.md``).  A
        control about several objects (``toName="a,b"``) names the first.
        """
        mean, std = self._columns(output)
        score = 1.0 - self._relative_spread(model, std)
        # One object's name: label-studio-sdk's validator (``validate_region``) accepts only a name from the
        # control's toName list, never the comma-joined list, and the editor resolves ``to_name`` as one tag.
        to_name = control.to_names[0]
        out: list[dict | None] = []
        for m, p in zip(mean, score):
            if not (math.isfinite(m) and math.isfinite(p)) or p < min_confidence:
                out.append(None)
                continue
            out.append({"from_name": control.name, "to_name": to_name, "type": control.result_kind,
                        "value": {control.result_kind: snap(control, float(m))}, "score": round(float(p), 6)})
        return out

    def uncertainty(self, model: CommitteeRegressor, output: np.ndarray) -> np.ndarray:
        """``std / (std + y_scale_)``: the committee's spread relative to the labels' own, in [0, 1).

        Monotone in the committee's standard deviation (query-by-committee:
        ask first where the members disagree most), and the same whatever
        the units of the numbers.  It is ``1 - score``, so Label Studio's
        lowest-score-first order agrees with this one.
        """
        _, std = self._columns(output)
        return self._relative_spread(model, std)

    def as_probabilities(self, model: CommitteeRegressor, output: np.ndarray) -> np.ndarray:
        """``[1 - u/2, u/2]`` per task, for ``u = uncertainty``: its margin uncertainty is ``u`` itself.

        So margin, entropy and least confidence rank by the committee's
        spread (query-by-committee), and a pool without any opinion (0.5,
        0.5) reads as most uncertain, as it does for choices.
        """
        return margin_rows(self.uncertainty(model, output))

    @staticmethod
    def _columns(output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = np.asarray(output, dtype=np.float64)
        if out.ndim != 2 or out.shape[1] != 2:
            raise ValueError(f"expected the output of NumberTask.output, shape (n, 2) [mean, std]; got {out.shape}")
        return out[:, 0], out[:, 1]

    @staticmethod
    def _relative_spread(model: CommitteeRegressor, std: np.ndarray) -> np.ndarray:
        std = np.maximum(np.nan_to_num(std, nan=np.inf), 0.0)
        scale = float(model.y_scale_)
        with np.errstate(invalid="ignore"):
            u = std / (std + scale)
        return np.where(np.isinf(std), 1.0, u)


def snap(control: NumberControl, value: float) -> int | float:
    """``value`` as Label Studio accepts it for ``control``: in ``[min, max]`` and on ``min + k * step``.

    The grid's origin is ``min`` (0 without one), as in the editor's check.
    A whole number comes back as an ``int`` (ratings always do); without a
    ``step``, the value is only rounded to ``FREE_DECIMALS`` places.
    """
    low, high, step = control.min, control.max, control.step
    if step is None:
        v = value
        if low is not None:
            v = max(v, low)
        if high is not None:
            v = min(v, high)
        v = round(v, FREE_DECIMALS)
    else:
        basis = low if low is not None else 0.0
        k = math.floor((value - basis) / step + 0.5)  # halves up, whatever the grid's origin
        if low is not None:
            k = max(k, 0)
        if high is not None:
            k = min(k, math.floor((high - basis) / step + 1e-9))
        v = basis + k * step
        # Float noise (0.1 * 3 = 0.30000000000000004) off, at the step's own precision.
        v = round(v, max(0, -math.floor(math.log10(step))) + FREE_DECIMALS)
    if control.result_kind == "rating" or float(v).is_integer():
        return int(round(v))
    return float(v)
