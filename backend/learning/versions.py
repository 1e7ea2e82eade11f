"""A model version: per-control classifiers plus what places unranked tasks.

The worker builds a version (``pack_version``) and publishes it atomically;
every serving process loads it once (``load_version``) and keeps it until the
project's ``current`` pointer moves.  Only numeric arrays are stored.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from backend.labelstudio.label_config import ChoicesControl
from backend.learning import featurizers
from backend.learning.featurizers import Featurizer, Matrix
from backend.learning.model import ChoicesClassifier
from backend.selection import scores, strategies
from backend.state.store import ProjectStore

MODEL_PREFIX = "model:"
RANK_META = "rank_meta"


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
    models: dict[str, ChoicesClassifier], quantiles: np.ndarray, centroid: np.ndarray | None
) -> dict[str, bytes]:
    """The artifacts of a version, as Redis hash fields of plain arrays."""
    buf = io.BytesIO()
    arrays = {"quantiles": np.asarray(quantiles, dtype=np.float64)}
    if centroid is not None:
        nz = np.flatnonzero(centroid)
        arrays.update(centroid_idx=nz.astype(np.int32), centroid_val=centroid[nz].astype(np.float32))
    np.savez_compressed(buf, **arrays)
    out = {RANK_META: buf.getvalue()}
    out.update({MODEL_PREFIX + name: m.to_bytes() for name, m in models.items()})
    return out


def load_version(store: ProjectStore, name: str) -> LoadedVersion | None:
    """Load a published version; ``None`` if it is not (or no longer) stored."""
    meta = store.version_meta(name)
    if meta is None:
        return None
    spec = featurizers.from_dict(meta["feature_spec"])
    arts = store.artifacts(name)
    models = {
        k[len(MODEL_PREFIX):]: ChoicesClassifier.from_bytes(v) for k, v in arts.items() if k.startswith(MODEL_PREFIX)
    }
    quantiles, centroid = np.zeros(0), None
    if RANK_META in arts:
        with np.load(io.BytesIO(arts[RANK_META]), allow_pickle=False) as z:
            quantiles = z["quantiles"]
            if "centroid_idx" in z:
                centroid = np.zeros(spec.n_features, dtype=np.float32)
                centroid[z["centroid_idx"]] = z["centroid_val"]
    return LoadedVersion(name=name, meta=meta, spec=spec, models=models, quantiles=quantiles, centroid=centroid)


def choices_result(
    control: ChoicesControl, classes: np.ndarray, proba: np.ndarray, allowed: np.ndarray,
    min_confidence: float = 0.0,
) -> dict | None:
    """A Label Studio ``choices`` result carrying the model's own probability.

    ``None`` when nothing is proposed, or when that probability is below
    ``min_confidence`` (the option ``min_confidence``: a pre-annotation the
    model is unsure of is not shown; see ``docs/min-confidence.md``).
    """
    to_name = ",".join(control.to_names)
    if control.multiple:
        chosen = [i for i in np.flatnonzero(proba >= 0.5) if allowed[i]]
        if not chosen:
            return None
        labels = [str(classes[i]) for i in chosen]
        p = float(np.min(proba[chosen]))
    else:
        masked = np.where(allowed, proba, -1.0)
        best = int(np.argmax(masked))
        if masked[best] < 0:
            return None
        labels, p = [str(classes[best])], float(proba[best])
    if p < min_confidence:
        return None
    return {
        "from_name": control.name,
        "to_name": to_name,
        "type": "choices",
        "value": {"choices": labels},
        "score": round(p, 6),
    }
