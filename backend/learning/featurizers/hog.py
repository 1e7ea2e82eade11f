"""Model-free image features: HOG + downsampled pixels (scikit-image), the fallback without a network.

Why these features
------------------
Histograms of oriented gradients (Dalal & Triggs 2005) describe local shape
and survive small shifts and brightness changes; a 16x16 thumbnail keeps the
coarse layout and the light/dark areas HOG ignores.  Measured in
``docs/research/image-embeddings.md`` (500 images, logistic regression,
5-fold CV), HOG + pixels is the best option without a pretrained model:
0.82 on Fashion-MNIST (raw pixels 0.77-0.81, HOG alone 0.75-0.78; the
``efficientnet`` featurizer 0.84) and 0.95 on 8x8 digits (pixels 0.93-0.94,
EfficientNet 0.88-0.91), at ~0.1 ms an image and no dependency but
scikit-image.

Each image is made grey and resized to ``size`` x ``size``; HOG uses 8x8
cells of ``size // 8`` pixels (9 orientations, 2x2 blocks, L2-Hys), so the
width does not depend on ``size``.  The HOG part and the thumbnail are each
centred on their own mean, L2-normalised and weighted 1/sqrt(2), so neither
dominates and the row has unit norm.  Centring makes each part's cosine a
correlation: both parts are non-negative, so without it any two images
have a high cosine (different photos 0.74 on average, and a third of 300
Fashion-MNIST images had a neighbour above the 0.9 near-duplicate
threshold of the selection; centred: 0.0 and a tenth, like EfficientNet),
at no cost in accuracy.  A constant image (a 1x1 one, a blank page) has
neither gradients nor contrast: its row is zero.

Optional: ``pip install 'label-studio-active-learning[images]'``.

References
----------
Dalal & Triggs (2005), "Histograms of Oriented Gradients for Human
Detection", CVPR.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from backend.learning.featurizers.base import Featurizer, FeaturizerError, normalise_rows
from backend.learning.featurizers.efficientnet import INSTALL_HINT, to_pil

NEEDS = ("skimage", "PIL")
SIZES = (32, 64, 128)
CELLS = 8  # cells per side
ORIENTATIONS = 9
THUMBNAIL = 16  # side of the downsampled grey pixels
N_HOG = (CELLS - 1) ** 2 * 2 * 2 * ORIENTATIONS


def available() -> str | None:
    """``None`` when scikit-image (and pillow) are installed, else why not and what to run."""
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        return f"the 'hog' featurizer needs the optional packages {', '.join(missing)}: {INSTALL_HINT}"
    return None


def _centred_unit(part: np.ndarray) -> np.ndarray:
    """``part`` minus its mean, at unit norm; zero when it is constant (in float64: no rounding residue)."""
    part = part.astype(np.float64) - part.mean(dtype=np.float64)
    norm = np.linalg.norm(part)
    return part / norm if norm > 1e-6 else np.zeros_like(part)


@dataclass(frozen=True)
class HogFeaturizer(Featurizer):
    """HOG of the grey image at ``size`` px, then a 16x16 grey thumbnail (dense float32, 2,020 columns)."""

    name = "hog"
    sparse = False
    input = "image"
    batch = 256  # decoded images are up to 512x512x3 bytes each: a refresh holds one batch of them at a time
    # Around the pool's mean, distinct Fashion-MNIST images reach 0.94 on these rows (0.87 on the embedding's).
    duplicate_cosine = 0.96

    size: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size not in SIZES:
            raise FeaturizerError(f"hog size must be one of {SIZES}, got {self.size!r}")

    @property
    def n_features(self) -> int:
        return N_HOG + THUMBNAIL * THUMBNAIL

    @property
    def key(self) -> str:
        return f"hog{self.size}-px{THUMBNAIL}"

    def params(self) -> dict:
        return {"size": self.size}

    @classmethod
    def from_params(cls, params: dict) -> HogFeaturizer:
        unknown = set(params) - {"size"}
        if unknown:
            raise FeaturizerError(f"unknown hog parameters {sorted(unknown)}")
        return cls(size=params.get("size", 64))

    def unavailable(self) -> str | None:
        return available()

    def transform(self, images: list[np.ndarray]) -> np.ndarray:
        from PIL import Image
        from skimage.feature import hog

        out = np.zeros((len(images), self.n_features), np.float32)
        cell = self.size // CELLS
        for i, image in enumerate(images):
            grey = to_pil(image).convert("L")
            big = np.asarray(grey.resize((self.size, self.size), Image.Resampling.BILINEAR), np.float32) / 255.0
            small = np.asarray(grey.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR), np.float64)  # 0-255
            parts = [hog(big, orientations=ORIENTATIONS, pixels_per_cell=(cell, cell), cells_per_block=(2, 2)),
                     small.ravel()]
            out[i] = np.concatenate([_centred_unit(p) for p in parts]) / np.sqrt(2.0)
        return normalise_rows(out)
