"""A user's own ML backend, as a real server on loopback: what "bring your own model" is tested against.

It speaks Label Studio's ML backend protocol as ``label-studio-ml``'s
``LabelStudioMLBase`` servers do (``GET /health``, ``POST /setup``,
``POST /predict`` answering ``{"results": [...], "model_version": ...}``)
and predicts one rectangle per image-task, or one span per text-task, each
with its own score, which a test chooses per task (``data["confidence"]``).
It can be slow (``delay`` seconds per call) or broken (``fail``: HTTP 500),
and counts the calls, so the tests can check batching and back-off.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from harness.label_studio import free_port


@dataclass
class Behaviour:
    """What the server does; a test changes it while the server runs."""

    model_version: str = "detector-v1"
    delay: float = 0.0
    fail: bool = False
    calls: list[int] = field(default_factory=list)  # tasks per /predict call
    #: task id -> confidence, over ``data["confidence"]``: what another model version thinks
    confidence: dict[int, float] = field(default_factory=dict)


def _prediction(task: dict, version: str, overrides: dict[int, float]) -> dict:
    data = task.get("data") or {}
    confidence = float(overrides.get(task.get("id"), data.get("confidence", 0.9)))
    if "text" in data:
        text = str(data["text"])
        item = {"from_name": "label", "to_name": "text", "type": "labels", "score": confidence,
                "value": {"start": 0, "end": min(5, len(text)), "text": text[:5], "labels": ["PER"]}}
    else:
        item = {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "score": confidence,
                "original_width": 640, "original_height": 480, "image_rotation": 0,
                "value": {"x": 10.0, "y": 20.0, "width": 30.0, "height": 25.0, "rotation": 0,
                          "rectanglelabels": ["car"]}}
    return {"result": [item], "score": confidence, "model_version": version}


def make_app(behaviour: Behaviour) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "UP", "model_class": "Detector"}

    @app.post("/setup")
    def setup() -> dict:
        return {"model_version": behaviour.model_version}

    @app.post("/predict")
    async def predict(request: Request):
        body = await request.json()
        tasks = body.get("tasks") or []
        behaviour.calls.append(len(tasks))
        if behaviour.delay:
            time.sleep(behaviour.delay)  # blocks this server's one thread, as a busy model would
        if behaviour.fail:
            return JSONResponse({"error": "model crashed"}, status_code=500)
        return {"results": [_prediction(t, behaviour.model_version, behaviour.confidence) for t in tasks],
                "model_version": behaviour.model_version}

    return app


class RemoteBackend:
    """The server in a thread of this process: ``with RemoteBackend() as remote: remote.url``."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(make_app(self.behaviour), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> "RemoteBackend":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the remote backend did not start in 10 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
