"""A model version: per-control classifiers plus what places unranked tasks.

The worker builds a version (``pack_version``) and publishes it atomically;
every serving process loads it once (``backend/state/versions.py``) and keeps it until the
project's ``current`` pointer moves.  Only numeric arrays are stored.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import numpy as np
import orjson

from backend.labelstudio.tasktypes import TASK_TYPES
from backend.learning import featurizers
from backend.learning.featurizers import Featurizer, Matrix
from backend.learning.model import ChoicesClassifier
from backend.selection import scores, strategies

MODEL_PREFIX = "model:"
RANK_META = "rank_meta"
MODEL_TYPES = "model_types"  # control -> task type name; absent in versions stored before task types

log = logging.getLogger(__name__)


@dataclass
class LoadedVersion:
    """What ``/predict`` needs of one version, loaded once per process."""

    name: str
    meta: dict
    spec: Featurizer  # the representation the models were trained on
    models: dict[str, ChoicesClassifier] = field(default_factory=dict)
    quantiles: np.ndarray = field(default_factory=lambda: np.zeros(0))
    centroid: np.ndarray | None = None

    @property
    def featurizer(self) -> Featurizer:
        return self.spec


def task_utility(
    models: dict[str, ChoicesClassifier],
    probas: dict[str, np.ndarray],
    geometry_X: Matrix,
    centroid: np.ndarray | None,
) -> np.ndarray:
    """How useful labeling each task is right now (higher = sooner).

    With trained models: mean margin uncertainty over the controls that have
    a model.  Before the first model (cold start): similarity to the pool's
    centroid, so typical tasks come before outliers.
    """
    n = geometry_X.shape[0]
    if any(name in models for name in probas):
        return strategies.mean_uncertainty(models, probas, n)
    if centroid is None:
        return np.zeros(n)
    return scores.centroid_similarity(geometry_X, centroid)


def pack_version(
    models: dict[str, ChoicesClassifier], quantiles: np.ndarray, centroid: np.ndarray | None,
    model_types: dict[str, str] | None = None,
) -> dict[str, bytes]:
    """The artifacts of a version, as Redis hash fields of plain arrays.

    ``model_types`` names each control's task type, whose ``load_model`` reads the model back.
    """
    buf = io.BytesIO()
    arrays = {"quantiles": np.asarray(quantiles, dtype=np.float64)}
    if centroid is not None:
        nz = np.flatnonzero(centroid)
        arrays.update(centroid_idx=nz.astype(np.int32), centroid_val=centroid[nz].astype(np.float32))
    np.savez_compressed(buf, **arrays)
    return {RANK_META: buf.getvalue(), **pack_models(models, model_types)}


def pack_models(models: dict, model_types: dict[str, str] | None) -> dict[str, bytes]:
    """Each model's arrays, and the name of its task type (read back by ``load_models``)."""
    types = {name: t for name, t in (model_types or {}).items() if name in models}
    return {MODEL_TYPES: orjson.dumps(types), **{MODEL_PREFIX + name: m.to_bytes() for name, m in models.items()}}


def load_models(arts: dict[str, bytes]) -> dict:
    """Each control's model, read by its task type (a name Redis holds is checked, never trusted)."""
    try:
        types = orjson.loads(arts.get(MODEL_TYPES) or b"{}")
    except orjson.JSONDecodeError:
        types = None
    if not isinstance(types, dict):
        log.warning("a stored version's model types are unreadable; reading its models as <Choices>")
        types = {}
    models = {}
    for key, raw in arts.items():
        if not key.startswith(MODEL_PREFIX):
            continue
        name = key[len(MODEL_PREFIX):]
        task_type = TASK_TYPES.get(types.get(name, "choices"))
        if task_type is None:
            log.warning("model %r has unknown task type %r; not served", name, types.get(name))
            continue
        models[name] = task_type.load_model(raw)
    return models


def unpack_version(name: str, meta: dict, arts: dict[str, bytes]) -> LoadedVersion:
    """A published version from its metadata and stored arrays (``backend/state/versions.py`` reads them)."""
    spec = featurizers.from_dict(meta["feature_spec"])
    models = load_models(arts)
    quantiles, centroid = np.zeros(0), None
    if RANK_META in arts:
        with np.load(io.BytesIO(arts[RANK_META]), allow_pickle=False) as z:
            quantiles = z["quantiles"]
            if "centroid_idx" in z:
                centroid = np.zeros(spec.n_features, dtype=np.float32)
                centroid[z["centroid_idx"]] = z["centroid_val"]
    return LoadedVersion(name=name, meta=meta, spec=spec, models=models, quantiles=quantiles, centroid=centroid)
