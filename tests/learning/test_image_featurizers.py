"""The image featurizers: EfficientNet-Lite0 (onnxruntime, no torch) and HOG + pixels.

Real images throughout: Fashion-MNIST from Debian's ``dataset-fashion-mnist``
(28x28 grey photos of clothes), scikit-learn's 8x8 digits, and the photos
bundled with scikit-image.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import os
import pickle
import re
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from threadpoolctl import threadpool_limits

from backend.learning.featurizers.base import FeaturizerError
from backend.learning.featurizers.efficientnet import (
    EfficientNetFeaturizer,
    _Unpickler,
    fingerprint,
    load_state_dict,
    make_session,
    preprocess,
    weights_path,
)
from backend.learning.featurizers.hog import HogFeaturizer

FASHION = Path("/usr/share/datasets/fashion-mnist")
FEATURIZERS = [EfficientNetFeaturizer(), HogFeaturizer()]
IDS = ["efficientnet", "hog"]


def read_fashion(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test images (uint8, n x 28 x 28) and labels: gzip IDX, 16- and 8-byte headers."""
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(16 + n * 28 * 28), np.uint8, offset=16).reshape(n, 28, 28)
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(8 + n), np.uint8, offset=8)
    return images, labels


@pytest.fixture(scope="module")
def fashion() -> tuple[np.ndarray, np.ndarray]:
    return read_fashion(300)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return np.clip(d.images[:300] * (255 / 16), 0, 255).round().astype(np.uint8), d.target[:300]


def cv_accuracy(X: np.ndarray, y: np.ndarray) -> float:
    """3-fold CV of the project's kind of model (logistic regression, C=10) on the rows.

    One BLAS thread: on a busy 2-core machine two threads made these fits up to 50x slower.
    """
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    with threadpool_limits(1):
        return float(cross_val_score(LogisticRegression(C=10, max_iter=1000), X, y, cv=folds).mean())


def pixels(images: np.ndarray) -> np.ndarray:
    """The baseline: 16x16 grey thumbnails, L2-normalised."""
    X = np.stack([np.asarray(Image.fromarray(a).resize((16, 16), Image.Resampling.BILINEAR), np.float32).ravel()
                  for a in images])
    return X / np.linalg.norm(X, axis=1, keepdims=True)


# -- the contract ----------------------------------------------------------------------------------
@pytest.mark.parametrize("f", FEATURIZERS, ids=IDS)
def test_rows_are_unit_float32_for_any_shape(f, fashion, digits):
    rng = np.random.default_rng(0)
    images = [fashion[0][0], digits[0][0], rng.integers(0, 256, (600, 400, 3), dtype=np.uint8),
              rng.integers(0, 256, (3, 500), dtype=np.uint8), fashion[0][1][:, :, None],
              rng.integers(0, 256, (40, 30, 4), dtype=np.uint8), np.full((1, 1), 200, np.uint8)]
    X = f.transform(images)
    assert X.shape == (len(images), f.n_features) and X.dtype == np.float32 and X.flags.c_contiguous
    norms = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(norms[:-1], 1.0, rtol=1e-5)
    # a 1x1 image is constant: the network still sees an image; HOG + centred pixels see nothing (a zero row)
    assert norms[-1] == pytest.approx(1.0 if f.name == "efficientnet" else 0.0, abs=1e-5)
    assert f.transform([]).shape == (0, f.n_features) and f.transform([]).dtype == np.float32
    assert f.n_features == (1280 if f.name == "efficientnet" else 2020)


@pytest.mark.parametrize("f", FEATURIZERS, ids=IDS)
def test_grey_is_rgb_with_equal_channels(f, fashion):
    grey = fashion[0][:3]
    np.testing.assert_allclose(f.transform(list(grey)), f.transform([np.repeat(a[:, :, None], 3, 2) for a in grey]),
                               atol=1e-6)


@pytest.mark.parametrize("f", FEATURIZERS, ids=IDS)
@pytest.mark.parametrize("bad", [np.zeros((0, 5), np.uint8), np.zeros((4, 4), np.float32),
                                 np.zeros((4, 4, 2), np.uint8), np.zeros((2, 2, 2, 3), np.uint8)],
                         ids=["empty", "float", "2-channel", "4-d"])
def test_images_that_are_not_uint8_grey_or_rgb_are_refused(f, bad):
    with pytest.raises(ValueError, match="uint8"):
        f.transform([bad])


@pytest.mark.parametrize("f", [*FEATURIZERS, EfficientNetFeaturizer(image_size=112)],
                         ids=[*IDS, "efficientnet-112"])
def test_a_row_does_not_depend_on_its_batch(f, fashion):
    """11 images: a full mini-batch of 8 and a short one; each row equals the image alone, and reruns agree."""
    images = list(fashion[0][:11])
    batch = f.transform(images)
    for i in (0, 7, 8, 10):
        np.testing.assert_allclose(batch[i:i + 1], f.transform([images[i]]), atol=1e-5)
    np.testing.assert_array_equal(batch, f.transform(images))
    assert not np.allclose(batch[0], batch[1])  # not one row for everything


def test_keys_name_what_the_rows_mean():
    sha = hashlib.sha256(weights_path().read_bytes()).hexdigest()[:8]
    keys = {EfficientNetFeaturizer().key, EfficientNetFeaturizer(112).key, EfficientNetFeaturizer(160).key,
            HogFeaturizer().key, HogFeaturizer(32).key, HogFeaturizer(128).key}
    assert len(keys) == 6
    assert all(re.fullmatch(r"[A-Za-z0-9-]+", k) for k in keys)
    assert EfficientNetFeaturizer().key == EfficientNetFeaturizer(224).key == f"lite0-224-{sha}"
    assert fingerprint() == sha
    assert HogFeaturizer().key == HogFeaturizer.from_params({"size": 64}).key


@pytest.mark.parametrize("f", [*FEATURIZERS, EfficientNetFeaturizer(112), HogFeaturizer(128)])
def test_params_round_trip(f):
    assert type(f).from_params(f.params()) == f
    assert type(f).from_dict(f.to_dict()) == f and f.to_dict()["featurizer"] == f.name
    assert type(f).from_params({}) == type(f)()
    assert pickle.loads(pickle.dumps(f.to_dict())) == f.to_dict()  # plain data


@pytest.mark.parametrize("cls,params", [
    (EfficientNetFeaturizer, {"image_size": 100}), (EfficientNetFeaturizer, {"image_size": "224"}),
    (EfficientNetFeaturizer, {"image_size": 224.0}), (EfficientNetFeaturizer, {"image_size": True}),
    (EfficientNetFeaturizer, {"image_size": None}), (EfficientNetFeaturizer, {"size": 224}),
    (HogFeaturizer, {"size": 50}), (HogFeaturizer, {"size": "64"}), (HogFeaturizer, {"image_size": 64}),
])
def test_bad_params_are_refused(cls, params):
    with pytest.raises(FeaturizerError):
        cls.from_params(params)


def test_both_can_run_here_and_say_what_they_read():
    for f in FEATURIZERS:
        assert f.unavailable() is None
        assert f.input == "image" and f.sparse is False
    assert EfficientNetFeaturizer.costly is True and HogFeaturizer.costly is False


def test_warm_up_builds_the_session_once_per_size():
    from backend.learning.featurizers import efficientnet

    f = EfficientNetFeaturizer(160)
    f.warm_up()
    session = efficientnet._session(160)
    f.warm_up()
    assert efficientnet._session(160) is session and efficientnet._session(224) is not session
    HogFeaturizer().warm_up()


# -- the rows are the real thing ---------------------------------------------------------------------
def test_the_weights_are_imagenet_weights():
    """The rebuilt network with its classifier: top-1 of scikit-image's cat and coffee photos."""
    from skimage import data

    embedding, logits = make_session(224, with_logits=True).run(None, {"pixels": preprocess(
        [data.chelsea(), data.coffee()], 224)})
    assert list(logits.argmax(1)) == [285, 967]  # Egyptian cat, espresso
    assert embedding.shape == (2, 1280) and np.all(embedding >= 0)  # pooled ReLU6 outputs
    assert "torch" not in sys.modules


def test_classes_are_learnable_from_the_rows(fashion, digits):
    """300 Fashion-MNIST images (chance 0.10): measured 0.83 (efficientnet), 0.81 (hog), 0.75 (pixels)."""
    images, y = fashion
    base = cv_accuracy(pixels(images), y)
    eff = cv_accuracy(EfficientNetFeaturizer().transform(list(images)), y)
    hog = cv_accuracy(HogFeaturizer().transform(list(images)), y)
    assert eff >= 0.78 and eff >= base + 0.03, (eff, base)
    assert hog >= 0.76 and hog >= base + 0.03, (hog, base)
    # 8x8 digits: HOG + pixels measured 0.99 (pixels 0.97); ImageNet features suit them less (0.90 at 112 px)
    images, y = digits
    assert cv_accuracy(HogFeaturizer().transform(list(images)), y) >= 0.93
    assert cv_accuracy(EfficientNetFeaturizer(112).transform(list(images)), y) >= 0.8


def _variants(image: np.ndarray) -> list[np.ndarray]:
    """Brighter, shifted by one pixel, recompressed as JPEG (quality 90)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=90)
    jpeg = np.asarray(Image.open(buf).convert("L" if image.ndim == 2 else "RGB"))
    return [np.clip(image.astype(np.int16) + 12, 0, 255).astype(np.uint8), np.roll(image, 1, axis=1), jpeg]


@pytest.mark.parametrize("f", FEATURIZERS, ids=IDS)
def test_near_duplicates_are_near(f, fashion):
    from skimage import data

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.camera()]
    X = f.transform(photos)
    for variant in zip(*[_variants(p) for p in photos]):
        assert np.all(np.sum(X * f.transform(list(variant)), axis=1) >= 0.9)  # the selection's threshold
    assert (X @ X.T)[~np.eye(len(photos), dtype=bool)].max() < 0.6  # different photos are not
    # 28x28 clothes: a pixel is 4% of the width, so shifts matter more; other classes are much farther
    images, y = fashion[0][:30], fashion[1][:30]
    F = f.transform(list(images))
    near = np.concatenate([np.sum(F * f.transform(list(v)), axis=1) for v in zip(*[_variants(a) for a in images])])
    other = (F @ F.T)[y[:, None] != y[None, :]]
    assert near.mean() >= 0.9 and np.quantile(near, 0.1) >= 0.8
    assert other.mean() <= near.mean() - 0.3, (other.mean(), near.mean())


# -- the weights file is read safely ---------------------------------------------------------------
class _Payload:
    """Runs a shell command when unpickled by a plain unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_the_unpickler_refuses_any_other_global(tmp_path):
    marker = tmp_path / "ran"
    for payload in (_Payload(marker), {"w": _Payload(marker)}, [print], collections.Counter("ab")):
        with pytest.raises(pickle.UnpicklingError, match="refusing global"):
            _Unpickler(io.BytesIO(pickle.dumps(payload, protocol=2)), {}).load()
    assert not marker.exists()
    # the check is not vacuous: a plain unpickler would have run it
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def _legacy_file(path: Path, tensors: dict, *, header: object = 0x1950A86A20F9469CFC6C,
                 state: dict | None = None) -> None:
    """A legacy ``torch.save`` file of float32 ``(storage, offset, size, stride)`` tensors, written without torch.

    A throwaway ``torch`` module in ``sys.modules`` gives the pickler the globals a real file names.
    ``state``: attributes the file then sets on each tensor (pickle's BUILD), as a crafted file could.
    """
    fake_torch, fake_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake_torch.FloatStorage, fake_torch._utils = FloatStorage, fake_utils
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storages = {id(s): (str(i), s) for i, (s, *_) in enumerate(tensors.values())}

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return (_rebuild_tensor_v2, self.args) + ((state,) if state else ())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, np.ndarray):
                return ("storage", FloatStorage, storages[id(obj)][0], "cpu", obj.size)
            return None

    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake_torch, "torch._utils": fake_utils})
    try:
        with open(path, "wb") as f:
            for record in (header, 1001, {"protocol_version": 1001, "little_endian": True}):
                pickle.dump(record, f, protocol=2)
            Pickler(f, protocol=2).dump(collections.OrderedDict((k, Tensor(*v)) for k, v in tensors.items()))
            pickle.dump([key for key, _ in storages.values()], f, protocol=2)
            for _, storage in storages.values():
                f.write(struct.pack("<q", storage.size) + storage.astype("<f4").tobytes())
    finally:
        for k, module in saved.items():
            if module is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = module


def test_the_reader_reads_tensors_and_refuses_bad_files(tmp_path):
    data = np.arange(24, dtype=np.float32)
    path = tmp_path / "ok.pth"
    _legacy_file(path, {"a": (data, 0, (2, 3), (3, 1)), "b": (data, 5, (3, 2), (1, 3)), "c": (data[:4], 0, (4,), (1,))})
    sd = load_state_dict(path)
    np.testing.assert_array_equal(sd["a"], data[:6].reshape(2, 3))
    np.testing.assert_array_equal(sd["b"], data[5:11].reshape(2, 3).T)  # a transposed view
    np.testing.assert_array_equal(sd["c"], data[:4])
    assert all(v.flags.c_contiguous and v.dtype == np.float32 for v in sd.values())

    _legacy_file(tmp_path / "outside.pth", {"a": (data, 20, (2, 3), (3, 1))})  # reads past the storage's end
    with pytest.raises(pickle.UnpicklingError, match="outside its storage"):
        load_state_dict(tmp_path / "outside.pth")
    _legacy_file(tmp_path / "build.pth", {"a": (data, 0, (2,), (1,))}, state={"offset": -5})  # checked, then changed
    with pytest.raises(pickle.UnpicklingError, match="refusing to set the state"):
        load_state_dict(tmp_path / "build.pth")
    marker = tmp_path / "ran"
    _legacy_file(tmp_path / "header.pth", {"a": (data, 0, (2,), (1,))}, header=_Payload(marker))  # even the header
    with pytest.raises(pickle.UnpicklingError, match="refusing global"):
        load_state_dict(tmp_path / "header.pth")
    (tmp_path / "cut.pth").write_bytes(path.read_bytes()[:-10])
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        load_state_dict(tmp_path / "cut.pth")
    assert not marker.exists()


def test_the_shipped_weights_load_without_torch():
    sd = load_state_dict(weights_path())
    assert len(sd) == 296 and sd["_conv_stem.weight"].shape == (32, 3, 3, 3) and sd["_fc.weight"].shape == (1000, 1280)
    assert all(v.dtype == np.float32 or k.endswith("num_batches_tracked") for k, v in sd.items())
    assert "torch" not in sys.modules
