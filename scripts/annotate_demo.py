"""Annotate a demo project as an annotator would: take /next, give the true label.

Usage: .venv/bin/python scripts/annotate_demo.py [N] [--images]   (with `make demo` running)

Shows the queue at work without clicking: after each answer the worker
retrains and pushes a new head, and /next follows it.  ``--images``
annotates the image project: the true class of each uploaded file comes from
its name (``fashion-00042.png`` is Fashion-MNIST test image 42).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.simulation.datasets import load_dataset, load_fashion_mnist  # noqa: E402
from harness.label_studio import _template_meta, template_dir  # noqa: E402
from scripts.demo import IMAGE_TITLE, IMAGES, TITLE  # noqa: E402


def _text_truth():
    ds = load_dataset("rotten-tomatoes")
    truth = dict(zip(ds.texts, ds.labels))
    return lambda data: truth[data["text"]], "sentiment", "text"


def _image_truth():
    _, labels = load_fashion_mnist(limit=IMAGES)

    def truth(data: dict) -> str:
        return labels[int(re.search(r"fashion-(\d+)\.png$", data["image"]).group(1))]

    return truth, "kind", "image"


def main(n: int, images: bool) -> None:
    token = _template_meta(template_dir())["token"]
    title = IMAGE_TITLE if images else TITLE
    truth, from_name, to_name = _image_truth() if images else _text_truth()
    with httpx.Client(base_url="http://127.0.0.1:8080", headers={"Authorization": f"Token {token}"}, timeout=60) as c:
        pid = next(p["id"] for p in c.get("/api/projects/").json()["results"] if p["title"] == title)
        for i in range(n):
            task = c.get(f"/api/projects/{pid}/next/").json()
            label = truth(task["data"])
            guess = [r["value"]["choices"][0] for p in task.get("predictions") or [] for r in p.get("result") or []]
            c.post(f"/api/tasks/{task['id']}/annotations/", json={"result": [
                {"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}]})
            shown = task["data"][to_name][-40:] if images else task["data"]["text"][:70]
            print(f"{i + 1:3}: task {task['id']} → {label:12} (model guessed {guess[0] if guess else '–'}): {shown}")
            time.sleep(0.5)
        print(json.dumps(httpx.get(f"http://127.0.0.1:9090/status/{pid}").json()["current"], indent=1)[:600])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=20)
    ap.add_argument("--images", action="store_true", help="annotate the image project")
    args = ap.parse_args()
    main(args.n, args.images)
