"""Annotate the demo project as an annotator would: take /next, give the true label.

Usage: .venv/bin/python scripts/annotate_demo.py [N]   (with `make demo` running)

Shows the queue at work without clicking: after each answer the worker
retrains and pushes a new head, and /next follows it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.simulation.datasets import load_dataset  # noqa: E402
from harness.label_studio import _template_meta, template_dir  # noqa: E402
from scripts.demo import TITLE  # noqa: E402


def main(n: int) -> None:
    token = _template_meta(template_dir())["token"]
    truth = dict(zip(*[load_dataset("rotten-tomatoes").texts, load_dataset("rotten-tomatoes").labels]))
    with httpx.Client(base_url="http://127.0.0.1:8080", headers={"Authorization": f"Token {token}"}, timeout=60) as c:
        pid = next(p["id"] for p in c.get("/api/projects/").json()["results"] if p["title"] == TITLE)
        for i in range(n):
            task = c.get(f"/api/projects/{pid}/next/").json()
            label = truth[task["data"]["text"]]
            c.post(f"/api/tasks/{task['id']}/annotations/", json={"result": [
                {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]})
            print(f"{i + 1:3}: task {task['id']} → {label}: {task['data']['text'][:70]}")
            time.sleep(0.5)
        print(json.dumps(httpx.get(f"http://127.0.0.1:9090/status/{pid}").json()["current"], indent=1)[:600])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
