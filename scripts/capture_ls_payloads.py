"""Capture what a real Label Studio 1.23.2 sends for every state-changing event.

Starts a real Label Studio (the e2e harness), a tiny HTTP server posing as an
ML backend (answers ``/health``, ``/setup``; records every ``/webhook`` body),
then triggers each action: annotate, edit, the Data Manager's bulk actions
(create annotations from predictions, delete annotations, delete tasks), a
task deleted through the API, a prediction import naming an unknown task.
Writes each body to ``tests/fixtures/label-studio-payloads/`` (``--out``).

    AL_LS_HOME=/work/ls-cache .venv/bin/python scripts/capture_ls_payloads.py
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.label_studio import LabelStudio, free_port  # noqa: E402

CONFIG = ('<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
          '<Choice value="pos"/><Choice value="neg"/></Choices></View>')
RECEIVED: list[dict] = []


class Handler(BaseHTTPRequestHandler):
    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._answer({"status": "UP", "model_class": "capture"})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path.startswith("/webhook"):
            RECEIVED.append(body)
        self._answer({"model_version": "capture"} if self.path.startswith("/setup") else {"status": "ok"})

    def log_message(self, *args) -> None:
        pass


def _take(action: str) -> dict:
    for i, body in enumerate(RECEIVED):
        if body.get("action") == action:
            return RECEIVED.pop(i)
    raise SystemExit(f"Label Studio sent no {action}; got {[b.get('action') for b in RECEIVED]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests/fixtures/label-studio-payloads")
    args = ap.parse_args()
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out: dict[str, object] = {}
    with LabelStudio() as ls, ls.client() as c:
        pid = ls.create_project("capture", CONFIG)["id"]
        ls.connect_ml_backend(pid, f"http://127.0.0.1:{port}", title="capture")
        ids = ls.import_tasks(pid, [{"text": f"task {i}"} for i in range(6)])
        RECEIVED.clear()
        # A prediction import naming a task the project does not have: the whole batch is refused.
        preds = [{"task": ids[0], "score": 0.1, "model_version": "v1", "result": [
            {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["pos"]}}]},
            {"task": 10**8, "score": 0.2, "model_version": "v1", "result": []}]
        resp = c.post(f"/api/projects/{pid}/import/predictions", json=preds)
        out["import_predictions_unknown_task"] = {"status": resp.status_code, "body": resp.json()}
        # Bulk: create annotations from predictions (Data Manager action).
        c.post(f"/api/projects/{pid}/import/predictions", json=preds[:1]).raise_for_status()
        c.post(f"/api/projects/{pid}/import/predictions", json=[{**preds[0], "task": ids[1]}]).raise_for_status()
        sel = {"selectedItems": {"all": False, "included": ids[:2]}}
        c.post("/api/dm/actions", params={"id": "predictions_to_annotations", "project": pid},
               json=sel).raise_for_status()
        out["webhook_annotations_created"] = _take("ANNOTATIONS_CREATED")
        # Bulk: delete annotations (Data Manager action).
        c.post("/api/dm/actions", params={"id": "delete_tasks_annotations", "project": pid},
               json={"selectedItems": {"all": False, "included": ids[:1]}}).raise_for_status()
        out["webhook_annotations_deleted_bulk"] = _take("ANNOTATIONS_DELETED")
        # Bulk: delete tasks (Data Manager action).
        c.post("/api/dm/actions", params={"id": "delete_tasks", "project": pid},
               json={"selectedItems": {"all": False, "included": ids[2:4]}}).raise_for_status()
        out["webhook_tasks_deleted_bulk"] = _take("TASKS_DELETED")
        # One task deleted through the API.
        c.delete(f"/api/tasks/{ids[4]}/").raise_for_status()
        out["webhook_tasks_deleted"] = _take("TASKS_DELETED")
        out["other_actions_seen"] = [b.get("action") for b in RECEIVED]
    server.shutdown()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, body in out.items():
        (args.out / f"{name}.json").write_text(json.dumps(body, indent=1, sort_keys=False) + "\n")
        print(name, json.dumps(body)[:300])


if __name__ == "__main__":
    main()
