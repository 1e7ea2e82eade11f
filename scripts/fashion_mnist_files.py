"""Write Fashion-MNIST as files a user would bring to ``al-backend simulate``.

Usage: .venv/bin/python scripts/fashion_mnist_files.py OUT_DIR [--limit 5000]

Writes, for the first ``--limit`` test images (Debian's dataset-fashion-mnist):

* ``OUT_DIR/images/fashion-00042.png`` and ``OUT_DIR/images.csv`` (``image,kind``):
  images by path, for ``--image-column image``;
* ``OUT_DIR/pixels.jsonl``: each image's 784 pixels as a list of numbers
  (``pixels``, for ``--number-column pixels``) and as a text of the same
  values (``text``, for ``--text-column text``), with its class (``kind``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.simulation.datasets import load_fashion_mnist  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--limit", type=int, default=5000)
    args = ap.parse_args()
    from PIL import Image

    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, labels = load_fashion_mnist(limit=args.limit)
    with open(out / "images.csv", "w", newline="") as f, open(out / "pixels.jsonl", "w") as jsonl:
        rows = csv.writer(f)
        rows.writerow(["image", "kind"])
        for i, (image, label) in enumerate(zip(images, labels)):
            name = f"images/fashion-{i:05d}.png"
            Image.fromarray(image).save(out / name)
            rows.writerow([name, label])
            pixels = image.ravel().tolist()
            jsonl.write(json.dumps({"pixels": pixels, "text": " ".join(map(str, pixels)), "kind": label}) + "\n")
    print(f"wrote {len(images)} images, {out / 'images.csv'} and {out / 'pixels.jsonl'}")


if __name__ == "__main__":
    main()
