"""Per-project options: environment defaults, overridden by the backend's
``extra_params`` in Label Studio (*Settings → Model → Extra params*, JSON).

Validated at ``/setup`` so a typo is a clear 4xx shown in Label Studio,
not a surprise in the worker later.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backend.learning import auto_features, featurizers
from backend.progress import estimators
from backend.selection import strategies
from backend.settings import Settings, default, host_port


#: ``plugin``'s form: a dotted module path, a colon, a class name.
PLUGIN_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)


class ProjectOptions(BaseModel):
    """What a project can tune; unknown keys are refused with the list of known ones."""

    model_config = ConfigDict(extra="forbid")

    # Defaults are the settings' (backend/settings.py), the one place they are written.
    head_size: int = Field(
        default("head_size"), ge=1, le=20_000, description="tasks pushed to Label Studio per version")
    set_sampling: bool = Field(
        default("set_sampling"), description="switch the project to 'Uncertainty sampling' on push")
    train_every: int = Field(
        default("train_every"), ge=1, le=100_000, description="retrain after this many changed labels")
    keep_versions: int = Field(
        default("keep_versions"), ge=1, le=100, description="pushed versions kept in Label Studio")
    train_interval: float = Field(
        default("train_interval"), ge=0,
        description="also retrain this many seconds after the last training if any label changed (0: off)",
    )
    features: str = Field(
        featurizers.KIND_DEFAULT,
        description=f"representation of the task data: {featurizers.KIND_DEFAULT!r} (n-grams for text, the pretrained "
        "embedding for images, standardised numbers for tables), one of " + ", ".join(featurizers.FEATURIZERS)
        + f", or {auto_features.AUTO!r} (the best of them by cross-validation on the labels, re-checked as they grow)"
    )
    class_weight: Literal["default", "balanced", "none"] = Field(
        "default", description="label weights of the model: 'balanced' weighs a rare label up, 'none' weighs every "
                               "label alike, 'default' is balanced for single choice and none for multiple choice")
    strategy: str = Field(default("strategy"), description="selection strategy (see the README's table)")
    weights: dict[str, float] = Field(
        default_factory=lambda: default("weights"), description="hybrid strategy: score name -> weight")
    batch_size: int = Field(100, ge=1, le=100_000, description="tasks chosen together as one diverse batch")
    control_share: float = Field(
        default("control_share"), ge=0, le=1, description="fraction of the queue given to random tasks"
    )
    min_confidence: float = Field(
        default("min_confidence"), ge=0, le=1,
        description="show a pre-annotation only when the model's probability for it reaches this (0: always)",
    )
    # When to stop (backend/progress/estimators.py; 0 turns a rule off).
    label_budget: int = Field(0, ge=0, description="stop once this many tasks are labeled (0: no budget)")
    target_accuracy: float = Field(0, ge=0, le=1, description="stop once the estimated accuracy reaches this")
    target_macro_f1: float = Field(0, ge=0, le=1, description="stop once the estimated macro-F1 reaches this")
    target_mae: float = Field(0, ge=0, allow_inf_nan=False,
                              description="numbers to predict: stop once the estimated mean absolute error is this "
                                          "low or lower, in the numbers' own units (0: off)")
    target_entity_f1: float = Field(0, ge=0, le=1, description="named entities (<Labels> only): stop once the "
                                    "estimated entity-level F1 reaches this (0: off)")
    plateau_versions: int = Field(5, ge=2, le=1000, description="plateau: versions looked back over")
    plateau_min_gain: float = Field(0.005, ge=0, le=1, description="plateau: smallest accuracy gain that counts "
                                    "(for numbers to predict, the smallest gain in skill, 1 - MAE / MAE of the mean; "
                                    "for named entities, in entity F1)")
    stop_kappa: float = Field(0.99, ge=-1, le=1, description="stable predictions: mean kappa of successive models")
    # Bring your own model (docs/remote.md): rank by another ML backend's predictions instead of training one.
    model: Literal["own", "remote", "plugin"] = Field(
        "own", description="'own': this backend trains its models; 'remote': rank by the predictions of the ML "
                           "backend at remote_url (its host:port must be listed in AL_REMOTE_ALLOW_HOSTS); "
                           "'plugin': rank by the predictions of the class named in plugin, run in the worker "
                           "(it must be listed in AL_PLUGINS)")
    plugin: str = Field("", max_length=300, description="model 'plugin': the model class, 'package.module:ClassName'")
    remote_url: str = Field("", max_length=2000,
                            description="model 'remote': the other ML backend, http(s)://host:port")
    remote_batch: int = Field(default("remote_batch"), ge=1, le=10_000, description="tasks per remote /predict call")
    remote_timeout: float = Field(default("remote_timeout"), gt=0, le=3600,
                                  description="seconds a remote /predict call may take")

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value not in strategies.STRATEGIES:
            raise ValueError(f"unknown strategy {value!r}; known: {', '.join(sorted(strategies.STRATEGIES))}")
        return value

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: str) -> str:
        if value == auto_features.AUTO:
            return value
        try:
            return featurizers.check(value)
        except featurizers.FeaturizerError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _remote_url_given(self) -> "ProjectOptions":
        if self.model == "remote" and host_port(self.remote_url) is None:
            raise ValueError("model 'remote' needs remote_url, the other ML backend's http(s)://host:port "
                             f"(got {self.remote_url[:200]!r})")
        if self.model == "plugin" and not PLUGIN_PATH.fullmatch(self.plugin):
            raise ValueError("model 'plugin' needs plugin, the model class as 'package.module:ClassName' "
                             f"(got {self.plugin[:200]!r})")
        return self

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, value: dict[str, float]) -> dict[str, float]:
        return strategies.check_weights(value)

    def featurizer(self, kind: str) -> str:
        """The featurizer ``features`` names for a config reading ``kind`` data (``auto``: the kind's default).

        Raises :class:`InvalidOptionsError` when it reads another kind (``/setup`` refuses the options).
        """
        try:
            return featurizers.resolve(featurizers.KIND_DEFAULT if self.features == auto_features.AUTO
                                       else self.features, kind)
        except featurizers.FeaturizerError as exc:
            raise InvalidOptionsError(f"invalid extra_params (features: {exc})") from None

    def model_params(self) -> dict[str, Any]:
        """What the options change in a control's model (``sklearn`` ``set_params`` names); empty: the task type's."""
        if self.class_weight == "default":
            return {}
        return {"class_weight": None if self.class_weight == "none" else "balanced"}

    def selection_params(self) -> strategies.SelectionParams:
        """The part of the options the selection strategies read."""
        return strategies.SelectionParams(
            strategy=self.strategy, weights=dict(self.weights), batch_size=self.batch_size,
            control_share=self.control_share,
        )

    def stop_rules(self) -> "estimators.StopRules":
        """The part of the options the stopping rules read."""
        return estimators.StopRules(
            label_budget=self.label_budget, target_accuracy=self.target_accuracy,
            target_macro_f1=self.target_macro_f1, target_mae=self.target_mae, target_entity_f1=self.target_entity_f1,
            plateau_versions=self.plateau_versions, plateau_min_gain=self.plateau_min_gain, stop_kappa=self.stop_kappa,
        )


class InvalidOptionsError(ValueError):
    """``extra_params`` do not validate; the message names the key."""


def resolve(settings: Settings, extra_params: dict[str, Any] | None) -> ProjectOptions:
    """Environment defaults overridden by ``extra_params``."""
    try:
        options = ProjectOptions(**{**settings.project_defaults(), **(extra_params or {})})
    except ValidationError as exc:
        known = ", ".join(ProjectOptions.model_fields)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidOptionsError(f"invalid extra_params ({problems}); known keys: {known}") from None
    if options.model == "remote" and not settings.remote_host_allowed(options.remote_url):
        # The URL comes from a Label Studio admin: only servers the operator listed are called.
        raise InvalidOptionsError(
            f"invalid extra_params (remote_url: {host_port(options.remote_url)} is not in AL_REMOTE_ALLOW_HOSTS; "
            "the operator of this backend must list that host:port in AL_REMOTE_ALLOW_HOSTS before a project "
            "may use it)")
    if options.model == "plugin" and not settings.plugin_allowed(options.plugin):
        # A class path from a Label Studio admin is code run in the worker: only classes the operator listed.
        raise InvalidOptionsError(
            f"invalid extra_params (plugin: {options.plugin} is not in AL_PLUGINS; the operator of this backend "
            "must list that module:Class in AL_PLUGINS before a project may use it)")
    return options
