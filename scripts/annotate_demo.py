"""Annotate a demo project as an annotator would: take /next, give the true label.

Usage: .venv/bin/python scripts/annotate_demo.py [N] [--images | --ner]   (with `make demo` running)

Shows the queue at work without clicking: after each answer the worker
retrains and pushes a new head, and /next follows it.  ``--images``
annotates the image project: the true class of each uploaded file comes from
its name (``fashion-00042.png`` is Fashion-MNIST test image 42).  ``--ner``
annotates the named-entity project: each sentence gets its true CoNLL-2003
entities as span regions (an empty annotation for a sentence without any,
which means "no entities").
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
from scripts.demo import BACKEND_PORT, IMAGE_TITLE, IMAGES, LS_PORT, NER_TITLE, TITLE, ner_sentences  # noqa: E402


def _text_truth():
    ds = load_dataset("rotten-tomatoes")
    truth = dict(zip(ds.texts, ds.labels))

    def result(data: dict) -> tuple[list[dict], str]:
        label = truth[data["text"]]
        return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}], label

    return result


def _image_truth():
    _, labels = load_fashion_mnist(limit=IMAGES)

    def result(data: dict) -> tuple[list[dict], str]:
        label = labels[int(re.search(r"fashion-(\d+)\.png$", data["image"]).group(1))]
        return [{"from_name": "kind", "to_name": "image", "type": "choices", "value": {"choices": [label]}}], label

    return result


def _ner_truth():
    truth = dict(ner_sentences())

    def result(data: dict) -> tuple[list[dict], str]:
        text = data["text"]
        spans = sorted(truth[text])
        items = [{"id": f"r{k}", "from_name": "label", "to_name": "text", "type": "labels", "origin": "manual",
                  "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}}
                 for k, (s, e, label) in enumerate(spans)]
        return items, _shown_spans(text, spans)

    return result


def _shown_spans(text: str, spans) -> str:
    return " ".join(f"[{text[s:e]}]{label}" for s, e, label in sorted(spans)) or "(no entities)"


def _guess(task: dict, ner: bool) -> str:
    items = [r for p in task.get("predictions") or [] for r in p.get("result") or []]
    if ner:
        spans = [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in items
                 if r.get("type") == "labels"]
        return _shown_spans(task["data"]["text"], spans) if task.get("predictions") else "–"
    return items[0]["value"]["choices"][0] if items else "–"


def main(n: int, images: bool, ner: bool) -> None:
    token = _template_meta(template_dir())["token"]
    title = IMAGE_TITLE if images else NER_TITLE if ner else TITLE
    truth = _image_truth() if images else _ner_truth() if ner else _text_truth()
    ls_url = f"http://127.0.0.1:{LS_PORT}"
    with httpx.Client(base_url=ls_url, headers={"Authorization": f"Token {token}"}, timeout=60) as c:
        projects = c.get("/api/projects/", params={"page_size": 100}).json()["results"]
        pid = next(p["id"] for p in projects if p["title"] == title)
        for i in range(n):
            task = c.get(f"/api/projects/{pid}/next/").json()
            result, label = truth(task["data"])
            guess = _guess(task, ner)
            c.post(f"/api/tasks/{task['id']}/annotations/", json={"result": result}).raise_for_status()
            if ner:
                print(f"{i + 1:3}: task {task['id']}: {task['data']['text'][:70]}\n"
                      f"       true {label}\n       model {guess}")
            else:
                shown = task["data"]["image"][-40:] if images else task["data"]["text"][:70]
                print(f"{i + 1:3}: task {task['id']} → {label:12} (model guessed {guess}): {shown}")
            time.sleep(0.5)
        status = httpx.get(f"http://127.0.0.1:{BACKEND_PORT}/status/{pid}", timeout=30).json()
        print(json.dumps(status["current"], indent=1)[:600])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=20)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--images", action="store_true", help="annotate the image project")
    which.add_argument("--ner", action="store_true", help="annotate the named-entity project")
    args = ap.parse_args()
    main(args.n, args.images, args.ner)
