"""Where near-duplicate images sit, for the queue's near-duplicate collapse.

Usage: python bench/bench_image_duplicates.py [--images 400] [--out docs/results/image-duplicates.json]

For each image featurizer, on real Fashion-MNIST images: the cosine of each
image to its nearest *other* image (distinct images, which must stay in the
queue) and to three copies of itself (brightened by 6 grey levels, saved as
JPEG at quality 85, shifted by one pixel: near-duplicates, of which one
should stay), both on the rows as they are and around the pool's mean row
(what ``strategies._collapse`` compares for dense rows).  A threshold works
when the copies sit above it and distinct images below it; the featurizer's
``duplicate_cosine`` is that threshold.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _copies(image: np.ndarray) -> dict[str, np.ndarray]:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=85)
    return {"brightened": np.clip(image.astype(int) + 6, 0, 255).astype(np.uint8),
            "jpeg": np.asarray(Image.open(io.BytesIO(buf.getvalue()))),
            "shifted": np.roll(image, 1, axis=1)}


def _unit(X: np.ndarray, centre: np.ndarray | None) -> np.ndarray:
    Z = X - centre if centre is not None else X
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def measure(name: str, images: list[np.ndarray]) -> dict:
    from backend.learning.featurizers import get

    f = get(name)
    X = f.transform(images)
    copies = [_copies(im) for im in images[:100]]
    out: dict = {"duplicate_cosine": f.duplicate_cosine}
    for how, centre in (("raw", None), ("around_pool_mean", X.mean(axis=0))):
        Xu = _unit(X, centre)
        S = Xu @ Xu.T
        np.fill_diagonal(S, -1.0)
        nearest = S.max(axis=1)
        row = {"distinct_nearest": {p: round(float(np.percentile(nearest, p)), 3) for p in (50, 95, 99, 100)}}
        for kind in ("brightened", "jpeg", "shifted"):
            Y = _unit(f.transform([c[kind] for c in copies]), centre)
            sim = (Xu[:100] * Y).sum(axis=1)
            row[kind] = {p: round(float(np.percentile(sim, p)), 3) for p in (5, 50)}
            row[kind]["caught"] = round(float((sim >= f.duplicate_cosine).mean()), 2)
        row["distinct_caught"] = round(float((nearest >= f.duplicate_cosine).mean()), 3)
        out[how] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "image-duplicates.json"))
    args = ap.parse_args()
    from backend.simulation.datasets import load_fashion_mnist

    images, _ = load_fashion_mnist(limit=args.images)
    results = {name: measure(name, images) for name in ("efficientnet", "hog")}
    for name, r in results.items():
        for how in ("raw", "around_pool_mean"):
            row = r[how]
            print(f"{name:12} {how:17} distinct nearest p50/p99/max {row['distinct_nearest'][50]}/"
                  f"{row['distinct_nearest'][99]}/{row['distinct_nearest'][100]}; copies p5: brightened "
                  f"{row['brightened'][5]}, jpeg {row['jpeg'][5]}, shifted {row['shifted'][5]}; at "
                  f"{r['duplicate_cosine']}: {row['distinct_caught']:.1%} of distinct images called twins")
    Path(args.out).write_text(json.dumps({
        "command": "python bench/bench_image_duplicates.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "images": args.images,
        "data": "Fashion-MNIST t10k (Debian dataset-fashion-mnist), the first images", "results": results,
    }, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
